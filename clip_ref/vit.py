"""The Vision Transformer image encoder (paper §2.4; Dosovitskiy et al., 2020).

The image is cut into P x P patches, each linearly embedded (a convolution with stride
P), a learned class token is prepended and positions are added. CLIP's one change to ViT
is an extra LayerNorm, ``ln_pre``, on these combined embeddings before the Transformer.
The class token's final state, normalised by ``ln_post`` and projected by ``proj``, is
the image embedding.

Shapes: B batch, D width, P patch size, G = resolution / P grid side, L = G*G + 1
tokens, E embedding dim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LayerNorm, Transformer


class VisionTransformer(nn.Module):
    def __init__(
        self,
        input_resolution: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
    ):
        super().__init__()
        if input_resolution % patch_size:
            raise ValueError(
                f"resolution {input_resolution} is not a multiple of the patch size "
                f"{patch_size}"
            )
        self.input_resolution, self.patch_size = input_resolution, patch_size
        self.output_dim = output_dim
        grid = input_resolution // patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(
            3, width, kernel_size=patch_size, stride=patch_size, bias=False
        )
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn(grid**2 + 1, width)
        )
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Image [B, 3, R, R] -> the Transformer's input [B, 1 + G*G, D] (class
        token, patches, positions)."""
        # [B, D, G, G]: one embedding per patch
        x = self.conv1(x.to(self.conv1.weight.dtype))
        x = x.flatten(2).transpose(1, 2)  # [B, G*G, D]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # [B, 1, D]
        x = torch.cat([cls, x], dim=1)  # [B, 1 + G*G, D]
        x = x + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)

    def forward(self, x: torch.Tensor, project: bool = True) -> torch.Tensor:
        x = self.tokens(x)  # [B, L, D]
        # The Transformer takes OpenAI's tokens-first layout (see clip_ref.layers).
        x = self.transformer(x.permute(1, 0, 2))  # [B, L, D] -> [L, B, D]
        x = x.permute(1, 0, 2)  # [L, B, D] -> [B, L, D]
        x = self.ln_post(x[:, 0])  # the class token's state [B, D]
        return x @ self.proj if project else x  # [B, E], or [B, D] before projecting


def resize_positional_embedding(
    positional_embedding: torch.Tensor, grid: int
) -> torch.Tensor:
    """A ViT's positional embedding [1 + G*G, D] resized to a G' x G' grid: [1 + G'*G',
    D].

    The embeddings of the patches form a G x G picture with D channels; it is resized
    like a picture (bicubic, antialiased when shrinking, as open_clip and timm do), so a
    patch at a given place in the image gets the embedding of that place. The class
    token has no place: its row is kept as it is. This is how a ViT trained at one
    resolution starts at another: the paper trained ViT-L/14 for one more epoch at 336
    pixels (a 24 x 24 grid of 14-pixel patches) after training it at 224 (16 x 16), as
    FixRes does (§2.5). The same grid gives back the same tensor.
    """
    rows, width = positional_embedding.shape
    old = math.isqrt(rows - 1)
    if rows < 2 or old * old != rows - 1:
        raise ValueError(
            "expected a positional embedding of shape [1 + G*G, D], got "
            f"{list(positional_embedding.shape)}"
        )
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"the new grid side must be a positive int, got {grid!r}")
    cls, patches = positional_embedding[:1], positional_embedding[1:]
    # [1, D, G, G]: a D-channel picture
    patches = patches.reshape(1, old, old, width).permute(0, 3, 1, 2)
    patches = F.interpolate(
        patches.float(),
        size=(grid, grid),
        mode="bicubic",
        align_corners=False,
        antialias=True,
    ).to(positional_embedding.dtype)
    patches = patches.permute(0, 2, 3, 1).reshape(grid * grid, width)  # [G'*G', D]
    return torch.cat([cls, patches])


def resize_state_dict(state_dict: Mapping[str, torch.Tensor], resolution: int) -> dict:
    """A ViT CLIP's state dict for input images of ``resolution`` pixels, which
    ``build_model`` builds.

    Only ``visual.positional_embedding`` depends on the resolution (through the grid
    side G = R / P); it is resized with :func:`resize_positional_embedding`, and
    OpenAI's ``input_resolution`` entry, if present, is updated. Everything else is
    shared, unchanged, with ``state_dict``, which is left untouched. Pair the model with
    ``clip_ref.Preprocess(resolution)``. The resized model works at once, somewhat worse
    than at its own resolution; the paper's 336-pixel ViT-L/14 was trained further after
    this step.
    """
    if (
        "visual.positional_embedding" not in state_dict
        or "visual.conv1.weight" not in state_dict
    ):
        raise ValueError(
            "not a Vision Transformer CLIP state dict: it has no "
            "visual.positional_embedding and visual.conv1.weight (a ResNet's "
            "resolution is set by its attention pool)"
        )
    # P: the patch embedding's kernel
    patch = state_dict["visual.conv1.weight"].shape[-1]
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or resolution < patch
        or resolution % patch
    ):
        raise ValueError(
            f"resolution must be a positive multiple of the patch size {patch}, got "
            f"{resolution!r}"
        )
    resized = dict(state_dict)
    resized["visual.positional_embedding"] = resize_positional_embedding(
        state_dict["visual.positional_embedding"], resolution // patch
    )
    # a tensor in OpenAI's archives, maybe an int elsewhere
    if "input_resolution" in resized:
        old = resized["input_resolution"]
        resized["input_resolution"] = (
            torch.tensor(resolution) if isinstance(old, torch.Tensor) else resolution
        )
    return resized
