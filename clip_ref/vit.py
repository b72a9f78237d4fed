"""The Vision Transformer image encoder (paper §2.4; Dosovitskiy et al., 2020).

The image is cut into P x P patches, each linearly embedded (a convolution with stride P), a learned class
token is prepended and positions are added. CLIP's one change to ViT is an extra LayerNorm, ``ln_pre``, on
these combined embeddings before the Transformer. The class token's final state, normalised by ``ln_post``
and projected by ``proj``, is the image embedding.

Shapes: B batch, D width, P patch size, G = resolution / P grid side, L = G*G + 1 tokens, E embedding dim.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import LayerNorm, Transformer


class VisionTransformer(nn.Module):
    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int, heads: int,
                 output_dim: int):
        super().__init__()
        if input_resolution % patch_size:
            raise ValueError(f"resolution {input_resolution} is not a multiple of the patch size {patch_size}")
        self.input_resolution, self.patch_size = input_resolution, patch_size
        grid = input_resolution // patch_size
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Image [B, 3, R, R] -> the Transformer's input [B, 1 + G*G, D] (class token, patches, positions)."""
        x = self.conv1(x.to(self.conv1.weight.dtype))  # [B, D, G, G]: one embedding per patch
        x = x.flatten(2).transpose(1, 2)  # [B, G*G, D]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # [B, 1, D]
        x = torch.cat([cls, x], dim=1)  # [B, 1 + G*G, D]
        x = x + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.transformer(self.tokens(x))  # [B, L, D]
        x = self.ln_post(x[:, 0])  # the class token's state [B, D]
        return x @ self.proj  # [B, E]
