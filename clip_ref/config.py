"""Architecture hyper-parameters: one frozen dataclass, the nine released models, and
inference from weights.

The paper (§2.4, Table 19 and 20 of the appendix) scales the ResNets in width, depth and
resolution together (EfficientNet-style) and the ViTs by the usual Base/Large sizes.
``config_from_state_dict`` reads the architecture back from tensor shapes, as OpenAI's
loader does, so a checkpoint carries its own config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .tokenizer import CONTEXT_LENGTH, VOCAB_SIZE


@dataclass(frozen=True)
class CLIPConfig:
    """Everything needed to build a :class:`clip_ref.model.CLIP`. Names follow
    OpenAI's constructor."""

    embed_dim: int  # E: the joint embedding both encoders project into
    image_resolution: int  # R: input images are R x R
    # ViT depth, or blocks per ResNet stage
    vision_layers: int | tuple[int, int, int, int]
    vision_width: int  # ViT width D, or ResNet stem width
    vision_patch_size: int | None  # ViT patch side P; None for a ResNet
    transformer_width: int  # text Transformer width
    transformer_heads: int
    transformer_layers: int
    context_length: int = CONTEXT_LENGTH  # L: 77 for every released model
    vocab_size: int = VOCAB_SIZE  # V: the BPE vocabulary, 49,408 tokens

    def __post_init__(self):
        if isinstance(self.vision_layers, (list, tuple)):
            object.__setattr__(
                self, "vision_layers", tuple(int(n) for n in self.vision_layers)
            )
            if len(self.vision_layers) != 4 or self.vision_patch_size is not None:
                raise ValueError(
                    "a ResNet config needs 4 stage depths and vision_patch_size=None, "
                    f"got vision_layers={self.vision_layers}, "
                    f"vision_patch_size={self.vision_patch_size}"
                )
        elif self.vision_patch_size is None:
            raise ValueError(
                "a ViT config (integer vision_layers) needs vision_patch_size"
            )

    @property
    def is_vit(self) -> bool:
        return self.vision_patch_size is not None

    @property
    def vision_heads(self) -> int:
        # Heads of 64 channels each: the ViT's width, or the 32x-wider ResNet output
        # that the pool attends over.
        return self.vision_width // 64 if self.is_vit else self.vision_width * 32 // 64

    def metadata(self) -> dict:
        """The non-tensor entries of OpenAI's archives (``METADATA_KEYS``), as this
        config implies them."""
        return {
            "input_resolution": self.image_resolution,
            "context_length": self.context_length,
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_name(cls, name: str) -> CLIPConfig:
        """The configuration of a released model, e.g.
        ``CLIPConfig.from_name("ViT-B/32")``."""
        try:
            return RELEASED_CONFIGS[name]
        except KeyError:
            raise ValueError(
                f"unknown model {name!r}; available models: {available_models()}"
            ) from None


def _released(
    embed_dim: int,
    resolution: int,
    layers,
    width: int,
    patch: int | None,
    text_width: int,
    text_heads: int,
) -> CLIPConfig:
    # Every released text encoder has 12 layers (paper, Table 19 and 20 of the
    # appendix).
    return CLIPConfig(
        embed_dim=embed_dim,
        image_resolution=resolution,
        vision_layers=layers,
        vision_width=width,
        vision_patch_size=patch,
        transformer_width=text_width,
        transformer_heads=text_heads,
        transformer_layers=12,
    )


RELEASED_CONFIGS = {
    #                              E   R    vision layers     width  P     text D  H
    "RN50": _released(1024, 224, (3, 4, 6, 3), 64, None, 512, 8),
    "RN101": _released(512, 224, (3, 4, 23, 3), 64, None, 512, 8),
    "RN50x4": _released(640, 288, (4, 6, 10, 6), 80, None, 640, 10),
    "RN50x16": _released(768, 384, (6, 8, 18, 8), 96, None, 768, 12),
    "RN50x64": _released(1024, 448, (3, 15, 36, 10), 128, None, 1024, 16),
    "ViT-B/32": _released(512, 224, 12, 768, 32, 512, 8),
    "ViT-B/16": _released(512, 224, 12, 768, 16, 512, 8),
    "ViT-L/14": _released(768, 224, 24, 1024, 14, 768, 12),
    "ViT-L/14@336px": _released(768, 336, 24, 1024, 14, 768, 12),
}


def available_models() -> list:
    """Names of the nine models OpenAI released, as accepted by
    ``CLIPConfig.from_name`` and ``load``."""
    return list(RELEASED_CONFIGS)


# Entries of OpenAI's archives that describe the model but are not parameters (see
# CLIPConfig.metadata).
METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")


class StateDictMismatchError(ValueError):
    """A state dict that does not describe a CLIP model this package can build."""


def _count_blocks(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many numbered blocks ``<prefix><n>.`` the state dict holds (0 if none)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in state_dict if (m := pattern.match(key))}
    return len(indices)


def _shape(state_dict, key):
    if key not in state_dict:
        raise StateDictMismatchError(
            f"cannot infer the architecture: key {key!r} is missing "
            f"(the state dict has {len(state_dict)} keys, e.g. "
            f"{sorted(state_dict)[:5]})"
        )
    return tuple(state_dict[key].shape)


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> CLIPConfig:
    """Read a :class:`CLIPConfig` off the tensor shapes of an OpenAI-format state
    dict."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"expected a mapping of names to tensors, got {type(state_dict).__name__}"
        )
    embed_dim = _shape(state_dict, "text_projection")[1]
    context_length = _shape(state_dict, "positional_embedding")[0]
    vocab_size = _shape(state_dict, "token_embedding.weight")[0]
    transformer_width = _shape(state_dict, "ln_final.weight")[0]
    transformer_layers = _count_blocks(state_dict, "transformer.resblocks.")

    # a ViT: the class token is projected by a bare matrix
    if "visual.proj" in state_dict:
        width, _, patch, _ = _shape(state_dict, "visual.conv1.weight")
        grid = round((_shape(state_dict, "visual.positional_embedding")[0] - 1) ** 0.5)
        layers = _count_blocks(state_dict, "visual.transformer.resblocks.")
        resolution = patch * grid
    # a modified ResNet: the attention pool's positions give the final grid, 1/32 of the
    # input
    else:
        layers = tuple(
            _count_blocks(state_dict, f"visual.layer{stage}.") for stage in (1, 2, 3, 4)
        )
        width = _shape(state_dict, "visual.layer1.0.conv1.weight")[0]
        grid = round(
            (_shape(state_dict, "visual.attnpool.positional_embedding")[0] - 1) ** 0.5
        )
        patch, resolution = None, grid * 32

    return CLIPConfig(
        embed_dim=embed_dim,
        image_resolution=resolution,
        vision_layers=layers,
        vision_width=width,
        vision_patch_size=patch,
        transformer_width=transformer_width,
        transformer_heads=transformer_width // 64,
        transformer_layers=transformer_layers,
        context_length=context_length,
        vocab_size=vocab_size,
    )
