"""Building blocks shared by the image and text encoders (paper §2.4, "Choosing and
Scaling a Model").

CLIP's text encoder is a GPT-2 style Transformer and its ViT image encoder uses the same
residual attention block, so both live here: the fp32-computing ``LayerNorm``,
``QuickGELU``, multi-head self-attention, the pre-norm residual block and the stack of
blocks.

Shapes follow the book's notation: B batch, L tokens, D width, H heads, D // H the width
of one head. Unlike OpenAI's code, which keeps tokens first (L, B, D), every tensor here
is batch-first (B, L, D). Parameter names match OpenAI's state dict exactly
(``attn.in_proj_weight``, ``mlp.c_fc.weight``, ...).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class LayerNorm(nn.LayerNorm):
    """LayerNorm that normalises in (at least) fp32 and returns the input's dtype.

    The released weights run in fp16, where the variance of wide activations loses too
    many digits; normalising in fp32 keeps the statistics exact and costs nothing for
    fp32 or fp64 inputs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compute_dtype = torch.promote_types(x.dtype, torch.float32)
        weight = None if self.weight is None else self.weight.to(compute_dtype)
        bias = None if self.bias is None else self.bias.to(compute_dtype)
        y = F.layer_norm(
            x.to(compute_dtype), self.normalized_shape, weight, bias, self.eps
        )
        return y.to(x.dtype)


class QuickGELU(nn.Module):
    """The sigmoid approximation of GELU, ``x * sigmoid(1.702 x)``, that the released
    models were trained with.

    Exact GELU differs by up to about 0.02 per activation; with these weights that
    difference compounds over the layers and lowers accuracy silently, so the
    approximation is part of the architecture.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def causal_mask(length: int, device=None) -> torch.Tensor:
    """Additive attention mask [L, L]: 0 where token i may look at token j (j <= i),
    -inf above the diagonal."""
    mask = torch.full((length, length), float("-inf"), device=device)
    return mask.triu(1)


class MultiheadSelfAttention(nn.Module):
    """Multi-head self-attention with one packed input projection, as in OpenAI's
    checkpoints.

    ``in_proj_weight`` stacks the query, key and value projections [3D, D]; ``out_proj``
    mixes the heads.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        # The same starting point as torch.nn.MultiheadAttention: Xavier-uniform
        # projections, zero biases.
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor):
        """Project x [B, L, D] to queries, keys and values, each [B, H, L, D/H]."""
        B, L, D = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [B, L, 3D]
        # [3, B, H, L, D/H]
        qkv = qkv.view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self._heads(x)
        # [B, H, L, D/H]
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        # [B, L, D]: heads side by side again
        out = out.transpose(1, 2).reshape(B, L, D)
        return self.out_proj(out)

    def attention_weights(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """The softmax attention matrix [B, H, L, L] that ``forward`` applies (for
        pictures and teaching)."""
        q, k, _ = self._heads(x)
        scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5)  # [B, H, L, L]
        if causal:
            scores = scores + causal_mask(x.shape[1], device=x.device).to(scores.dtype)
        return scores.softmax(dim=-1)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm Transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); the MLP
    is 4x wider."""

    def __init__(self, width: int, heads: int, causal: bool = False):
        super().__init__()
        self.causal = causal
        self.attn = MultiheadSelfAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, 4 * width)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(4 * width, width)),
                ]
            )
        )
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=self.causal)
        x = x + self.mlp(self.ln_2(x))
        return x


class Transformer(nn.Module):
    """A stack of ``layers`` residual attention blocks over [B, L, D]; ``causal`` for
    the text encoder."""

    def __init__(self, width: int, layers: int, heads: int, causal: bool = False):
        super().__init__()
        self.resblocks = nn.Sequential(
            *[ResidualAttentionBlock(width, heads, causal) for _ in range(layers)]
        )
        # recompute each block's activations in the backward pass instead of keeping
        # them (clip_ref.train.set_grad_checkpointing)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            for block in self.resblocks:
                x = checkpoint(block, x, use_reentrant=False)
            return x
        return self.resblocks(x)
