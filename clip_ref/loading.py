"""``load``: a released model or a local checkpoint, ready to use, with its preprocessing (paper §3.1).

The paper's zero-shot experiments (§3.1) start from a trained model and the image pipeline it was trained
with. ``model, preprocess = load("ViT-B/32")`` gives both, as OpenAI's ``clip.load`` does: the weights are
found or downloaded and verified (:mod:`clip_ref.download`), read without running anything from the file
(:mod:`clip_ref.checkpoint`), built with strict key-for-key loading (:func:`clip_ref.model.build_model`), and
paired with the preprocessing at the resolution the checkpoint was trained at.
"""

from __future__ import annotations

import os
from typing import Callable

import torch

from .checkpoint import read_state_dict
from .download import RELEASED, download_weights
from .model import CLIP, build_model, convert_weights
from .preprocess import transform

__all__ = ["load"]


def load(name_or_path: str | os.PathLike, device: str | torch.device | None = None,
         download_root: str | os.PathLike | None = None, *, source: str = "auto",
         offline: bool | None = None, progress: bool = True) -> tuple[CLIP, Callable]:
    """Load a CLIP model and its image preprocessing.

    Args:
        name_or_path: a released model name (``clip_ref.available_models()``, e.g. ``"ViT-B/32"``), or the
            path of a local checkpoint: OpenAI's TorchScript ``.pt`` archive, open_clip's safetensors
            mirror of it, or a ``torch.save`` state dict with OpenAI's key names.
        device: where to put the model; CUDA if available, else the CPU.
        download_root: cache directory for downloads (default ``$CLIP_REF_CACHE``, else
            ``~/.cache/clip_ref``).
        source: where a released model comes from: ``"auto"``, ``"openai"`` or ``"hf"``
            (see :func:`clip_ref.download.download_weights`).
        offline: never touch the network (default ``$CLIP_REF_OFFLINE``).
        progress: show a progress bar while downloading.

    Returns:
        ``(model, preprocess)``: the model in eval mode, fp16 on CUDA (as released) and fp32 elsewhere, and
        the PIL-image-to-tensor transform at the model's input resolution.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    path = _locate(name_or_path, download_root, source, offline, progress)
    model = build_model(read_state_dict(path)).to(device)
    if device.type == "cuda":
        convert_weights(model)  # the heavy weights in fp16, as OpenAI's release runs on GPUs
    return model.eval(), transform(model.visual.input_resolution)


def _locate(name_or_path, download_root, source, offline, progress) -> str:
    if isinstance(name_or_path, str) and name_or_path in RELEASED:
        return download_weights(name_or_path, download_root, source=source, offline=offline, progress=progress)
    path = os.path.expanduser(os.fspath(name_or_path))
    if os.path.isfile(path):
        return path
    raise FileNotFoundError(f"{name_or_path!r} is neither a released model ({', '.join(RELEASED)}) "
                            "nor an existing checkpoint file")
