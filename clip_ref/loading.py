"""``load``: a released model or a local checkpoint, ready to use, with its
preprocessing (paper §3.1).

The paper's zero-shot experiments (§3.1) start from a trained model and the image
pipeline it was trained with. ``model, preprocess = load("ViT-B/32")`` gives both, as
OpenAI's ``clip.load`` does: the weights are found or downloaded and verified
(:mod:`clip_ref.download`), read without running anything from the file
(:mod:`clip_ref.checkpoint`), built with strict key-for-key loading
(:func:`clip_ref.model.build_model`), and paired with the preprocessing at the
resolution the checkpoint was trained at.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch

from .checkpoint import read_state_dict
from .device import default_device
from .download import RELEASED, download_weights
from .model import CLIP, build_model, convert_weights
from .preprocess import Preprocess
from .transformers_format import is_transformers_folder, read_transformers_folder

__all__ = ["ModelNotFoundError", "load"]


class ModelNotFoundError(FileNotFoundError, RuntimeError):
    """Neither a released model's name nor an existing checkpoint. Both a
    ``FileNotFoundError`` and, as OpenAI's ``clip.load`` raises here, a
    ``RuntimeError``."""


def load(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = None,
    jit: bool = False,
    download_root: str | os.PathLike | None = None,
    *,
    source: str = "auto",
    offline: bool | None = None,
    progress: bool = True,
) -> tuple[CLIP, Callable]:
    """Load a CLIP model and its image preprocessing.

    Args:
        name_or_path: a released model name (``clip_ref.available_models()``, e.g.
            ``"ViT-B/32"``), or the path of a local checkpoint: OpenAI's TorchScript
            ``.pt`` archive, open_clip's safetensors mirror of it, a ``torch.save``
            state dict with OpenAI's key names, or a folder in Hugging Face
            ``transformers`` format (``config.json`` and ``model.safetensors``).
        device: where to put the model; CUDA if available, else the CPU.
        jit: accepted so that OpenAI's ``clip.load(name, device, jit=...)`` calls run
            unchanged. ``jit=True`` returns the same eager model as ``jit=False``, with
            a warning: OpenAI's TorchScript model is the archive's own code, and
            clip_ref never runs code from a checkpoint file (both compute the same
            features).
        download_root: cache directory for downloads (default ``$CLIP_REF_CACHE``, else
            ``~/.cache/clip_ref``).
        source: where a released model comes from: ``"auto"``, ``"openai"`` or ``"hf"``
            (see :func:`clip_ref.download.download_weights`).
        offline: never touch the network (default ``$CLIP_REF_OFFLINE``).
        progress: show a progress bar while downloading.

    Returns:
        ``(model, preprocess)``: the model in eval mode, fp16 on CUDA (as released) and
        fp32 elsewhere, and the PIL-image-to-tensor transform at the model's input
        resolution.

    Precision: the fp16 model that CUDA gets is for inference, not for training. Its
    convolutions, linear layers and projections are fp16
    (:func:`clip_ref.model.convert_weights`; embeddings and normalisation layers stay
    fp32), which halves memory and runs fast, but Adam cannot step fp16
    weights: its epsilon (1e-8 by default) is 0 in fp16, so every weight whose gradient
    is exactly zero (and fp16 gradients round to zero easily) gets the update 0/0 = NaN
    at the first step, and updates smaller than a weight's fp16 spacing are rounded
    away. To fine-tune, keep fp32 master weights and let autocast compute in half
    precision::

        model, preprocess = load("ViT-B/32", device="cpu")  # fp32 master weights
        model = model.cuda().train()   # still fp32; wrap the forward in torch.autocast

    (or ``model.float()`` on the fp16 model: OpenAI's files store these weights in fp16,
    so nothing is lost either way), which is what ``python -m clip_ref.train --init
    ViT-B/32 --data pairs.csv`` does. Compare features in fp32 too: ``features.float()``
    before normalising. On a CPU the model is fp32: older PyTorch versions have no fp16
    version of many CPU kernels ("not implemented for 'Half'"), and fp16 brings a CPU
    little speed.
    """
    if jit:
        warnings.warn(
            "jit=True: clip_ref returns its eager model (it never runs the TorchScript "
            "code stored in a checkpoint); the features are the same",
            stacklevel=2,
        )
    device = torch.device(device) if device is not None else default_device()
    path = _locate(name_or_path, download_root, source, offline, progress)
    if is_transformers_folder(path):
        state_dict = read_transformers_folder(path)
    else:
        state_dict = read_state_dict(path)
    model = build_model(state_dict).to(device)
    if device.type == "cuda":
        # the heavy weights in fp16, as OpenAI's release runs on GPUs
        convert_weights(model)
    return model.eval(), Preprocess(model.visual.input_resolution)


def _locate(name_or_path, download_root, source, offline, progress) -> str:
    if isinstance(name_or_path, str) and name_or_path in RELEASED:
        return download_weights(
            name_or_path,
            download_root,
            source=source,
            offline=offline,
            progress=progress,
        )
    path = os.path.expanduser(os.fspath(name_or_path))
    if os.path.isfile(path) or is_transformers_folder(path):
        return path
    raise ModelNotFoundError(
        f"{name_or_path!r} is neither a released model ({', '.join(RELEASED)}) nor an "
        "existing checkpoint file or transformers folder"
    )
