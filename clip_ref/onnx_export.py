"""ONNX export of the two encoders, for deployment outside PyTorch (onnxruntime,
TensorRT, ...).

``export_onnx(model, out_dir)`` writes ``image_encoder.onnx`` (pixels [B, 3, R, R]
float32, as :class:`clip_ref.Preprocess` makes them -> features [B, E]) and
``text_encoder.onnx`` (token ids [T, L] int64 from :func:`clip_ref.tokenize` ->
features [T, E]), each with a dynamic batch dimension. The features are the
unnormalised outputs of ``encode_image`` and ``encode_text``; normalise them and scale
by ``model.logit_scale.exp()`` as ``CLIP.forward`` does. The model is exported in fp32
(cast an fp16 model with ``model.float()`` first if you want fp32 graphs; an fp16 model
exports in fp16). Needs the optional ``onnx`` package (and ``onnxruntime`` to run the
files).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .model import CLIP

__all__ = ["export_onnx"]

IMAGE_FILE, TEXT_FILE = "image_encoder.onnx", "text_encoder.onnx"


class _ImageEncoder(nn.Module):
    def __init__(self, model: CLIP):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)


class _TextEncoder(nn.Module):
    def __init__(self, model: CLIP):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)


def export_onnx(
    model: CLIP, out_dir: str | os.PathLike, opset_version: int = 17
) -> dict[str, Path]:
    """Write ``image_encoder.onnx`` and ``text_encoder.onnx`` for ``model`` into
    ``out_dir`` (created if needed); returns their paths, ``{"image": ..., "text":
    ...}``. The batch dimension (named ``batch``) is dynamic."""
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ONNX export needs the onnx package: pip install onnx"
        ) from err
    if not isinstance(model, CLIP):
        raise TypeError(f"expected a clip_ref.CLIP, got {type(model).__name__}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    parameter = next(model.parameters())
    device, dtype = parameter.device, model.dtype
    resolution = model.visual.input_resolution
    pixels = torch.zeros(2, 3, resolution, resolution, device=device, dtype=dtype)
    tokens = torch.zeros(2, model.context_length, dtype=torch.long, device=device)
    tokens[:, 0], tokens[:, 1] = model.vocab_size - 2, model.vocab_size - 1
    paths = {"image": out_dir / IMAGE_FILE, "text": out_dir / TEXT_FILE}
    # The graphs are traced in eval mode (batch norm reads its running statistics).
    # The wrappers are put in eval mode too: the exporter restores *their* mode
    # afterwards, and a new module's default, training, would switch the model to it.
    image_encoder, text_encoder = (
        _ImageEncoder(model).eval(),
        _TextEncoder(model).eval(),
    )
    try:
        _export(image_encoder, text_encoder, pixels, tokens, paths, opset_version)
    finally:
        model.train(was_training)
    return paths


def _export(image_encoder, text_encoder, pixels, tokens, paths, opset_version):
    batch = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        # the exporter's notes on Python checks it traces through (shape checks)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # its note that negative indices would break the end-token gather: the
        # indices here are arange(T) and argmax(ids), never negative
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            image_encoder,
            (pixels,),
            str(paths["image"]),
            input_names=["pixels"],
            output_names=["image_features"],
            dynamic_axes={"pixels": batch, "image_features": batch},
            opset_version=opset_version,
            dynamo=False,
        )
        torch.onnx.export(
            text_encoder,
            (tokens,),
            str(paths["text"]),
            input_names=["tokens"],
            output_names=["text_features"],
            dynamic_axes={"tokens": batch, "text_features": batch},
            opset_version=opset_version,
            dynamo=False,
        )
