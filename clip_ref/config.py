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
            return RELEASED[name].config
        except KeyError:
            raise ValueError(
                f"unknown model {name!r}; available models: {available_models()}"
            ) from None


# OpenAI's files live at {_OPENAI_URL}/{sha256}/{filename}.
_OPENAI_URL = "https://openaipublic.azureedge.net/clip/models"


@dataclass(frozen=True)
class ReleasedModel:
    """One of the nine released models: its architecture, OpenAI's file and open_clip's
    Hugging Face mirror of it (which holds the same tensors as safetensors)."""

    name: str  # e.g. "ViT-B/32"
    config: CLIPConfig
    sha256: str  # of OpenAI's file; also the folder in its address
    hf_repo: str
    url: str = ""  # OpenAI's address; derived from the name and checksum when empty

    def __post_init__(self):
        if not self.url:
            object.__setattr__(
                self, "url", f"{_OPENAI_URL}/{self.sha256}/{self.filename}"
            )

    @property
    def filename(self) -> str:
        """The file's name, e.g. ViT-L/14@336px -> ViT-L-14-336px.pt"""
        return self.name.replace("/", "-").replace("@", "-") + ".pt"


def _released(
    name, E, R, layers, width, P, text_width, sha256, hf_repo
) -> ReleasedModel:
    # Every released text encoder has 12 layers of 64-channel heads (paper, Tables 19
    # and 20 of the appendix).
    config = CLIPConfig(
        embed_dim=E,
        image_resolution=R,
        vision_layers=layers,
        vision_width=width,
        vision_patch_size=P,
        transformer_width=text_width,
        transformer_heads=text_width // 64,
        transformer_layers=12,
    )
    return ReleasedModel(name, config, sha256, f"timm/{hf_repo}.openai")


# The one registry of the released models: name, architecture, checksum, mirror.
# fmt: off
RELEASED = {r.name: r for r in [
    #          name        E     R    vision layers    width  P   text D
    _released("RN50", 1024, 224, (3, 4, 6, 3), 64, None, 512,
              "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
              "resnet50_clip"),
    _released("RN101", 512, 224, (3, 4, 23, 3), 64, None, 512,
              "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599",
              "resnet101_clip"),
    _released("RN50x4", 640, 288, (4, 6, 10, 6), 80, None, 640,
              "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd",
              "resnet50x4_clip"),
    _released("RN50x16", 768, 384, (6, 8, 18, 8), 96, None, 768,
              "52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa",
              "resnet50x16_clip"),
    _released("RN50x64", 1024, 448, (3, 15, 36, 10), 128, None, 1024,
              "be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c",
              "resnet50x64_clip"),
    _released("ViT-B/32", 512, 224, 12, 768, 32, 512,
              "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
              "vit_base_patch32_clip_224"),
    _released("ViT-B/16", 512, 224, 12, 768, 16, 512,
              "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
              "vit_base_patch16_clip_224"),
    _released("ViT-L/14", 768, 224, 24, 1024, 14, 768,
              "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
              "vit_large_patch14_clip_224"),
    _released("ViT-L/14@336px", 768, 336, 24, 1024, 14, 768,
              "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
              "vit_large_patch14_clip_336"),
]}
# fmt: on


def available_models() -> list:
    """Names of the nine models OpenAI released, as accepted by
    ``CLIPConfig.from_name`` and ``load``."""
    return list(RELEASED)


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
            f"cannot infer the architecture: key {key!r} is missing (the state dict "
            f"has {len(state_dict)} keys, e.g. {sorted(state_dict)[:5]})"
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
