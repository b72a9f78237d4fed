"""Building blocks shared by the image and text encoders (paper §2.4, "Choosing and
Scaling a Model").

CLIP's text encoder is a GPT-2 style Transformer and its ViT image encoder uses the same
residual attention block, so both live here: the fp32-computing ``LayerNorm``,
``QuickGELU``, multi-head self-attention, the pre-norm residual block and the stack of
blocks.

Shapes follow the book's notation: B batch, L tokens, D width, H heads, D // H the width
of one head. The modules take OpenAI's layout at their boundary, tokens first [L, B, D]
(torch's ``nn.MultiheadAttention`` convention), so that client code written for OpenAI's
model, which drives these modules directly, gets the same numbers; the encoders turn
their batch-first [B, L, D] tensors around once, on the way in and out. Parameter names
match OpenAI's state dict exactly (``attn.in_proj_weight``, ``mlp.c_fc.weight``, ...).
"""

from __future__ import annotations

import math
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
    -inf above the diagonal (OpenAI's ``build_attention_mask``)."""
    mask = torch.full((length, length), float("-inf"), device=device)
    return mask.triu(1)


def _is_causal(mask: torch.Tensor | None) -> bool:
    """Whether ``mask`` is exactly :func:`causal_mask` of its size (checked once, when a
    block is built)."""
    if mask is None or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    return torch.equal(
        mask.detach().cpu().float(), causal_mask(mask.shape[0], device="cpu")
    )


class MultiheadSelfAttention(nn.Module):
    """Multi-head attention with one packed input projection, as in OpenAI's
    checkpoints; called like ``torch.nn.MultiheadAttention``, which OpenAI's blocks use.

    ``in_proj_weight`` stacks the query, key and value projections [3D, D]; ``out_proj``
    mixes the heads. ``forward`` has torch's calling convention (tokens first):
    ``attn(query, key, value, need_weights=..., attn_mask=...)`` with inputs [L, B, D]
    returns ``(output [L, B, D], weights)``, the weights averaged over heads [B, L, S]
    (per head, [B, H, L, S], with ``average_attn_weights=False``), or None when
    ``need_weights=False``; client code written for OpenAI's model gets the same
    numbers. :meth:`attend` is the same computation batch-first, [B, L, D], which the
    blocks use.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.embed_dim, self.num_heads = width, heads
        self.heads = heads
        self.batch_first = False  # as torch.nn.MultiheadAttention reports it
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        # The same starting point as torch.nn.MultiheadAttention: Xavier-uniform
        # projections, zero biases.
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, query, key, value):
        """Project [B, L, D] inputs to queries [B, H, L, D/H], keys and values [B, H,
        S, D/H]."""
        if query is key and key is value:  # self-attention: one packed projection
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, -1)
        else:
            qkv = [
                F.linear(x, w, b)
                for x, w, b in zip(
                    (query, key, value),
                    self.in_proj_weight.chunk(3),
                    self.in_proj_bias.chunk(3),
                )
            ]
        B, D = query.shape[0], query.shape[-1]
        return [t.view(B, -1, self.heads, D // self.heads).transpose(1, 2) for t in qkv]

    def attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batch-first attention: [B, L, D] queries, [B, S, D] keys and values, an
        additive ``mask`` broadcastable to [B, H, L, S] or ``is_causal`` -> (output [B,
        L, D], per-head weights [B, H, L, S] if ``need_weights``, else None)."""
        B, L, D = query.shape
        q, k, v = self._heads(query, key, value)  # [B, H, L or S, D/H]
        weights = None
        if need_weights:
            if is_causal:
                mask = causal_mask(L, device=q.device)
            scores = q @ k.transpose(-2, -1) / math.sqrt(D // self.heads)
            if mask is not None:
                scores = scores + mask.to(scores.dtype)
            weights = scores.softmax(dim=-1)  # [B, H, L, S]
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal
            )
        # [B, L, D]: heads side by side again
        out = out.transpose(1, 2).reshape(B, L, D)
        return self.out_proj(out), weights

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.ndim != 3 or x.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"expected {name} of shape [L, B, {self.embed_dim}] (tokens "
                    f"first, as torch.nn.MultiheadAttention), got {list(x.shape)}"
                )
        L, B, _ = query.shape
        S = key.shape[0]
        if is_causal and attn_mask is None and key_padding_mask is None:
            mask = None
        else:
            is_causal = False
            mask = _additive_mask(attn_mask, key_padding_mask, B, L, S, query.dtype)
        # [L, B, D] -> [B, L, D] (views), and the output back
        out, weights = self.attend(
            query.transpose(0, 1),
            key.transpose(0, 1),
            value.transpose(0, 1),
            mask,
            is_causal,
            need_weights,
        )
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)  # [B, L, S]
        return out.transpose(0, 1), weights


def _additive_mask(attn_mask, key_padding_mask, B, L, S, dtype):
    """torch's ``attn_mask`` ([L, S] or [B * H, L, S]; boolean True = masked, or
    additive) and ``key_padding_mask`` ([B, S]) as one additive mask broadcastable to
    [B, H, L, S], or None."""

    def additive(mask):
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
                mask, float("-inf")
            )
        return mask.to(dtype)

    mask = None
    if attn_mask is not None:
        if tuple(attn_mask.shape[-2:]) != (L, S) or attn_mask.ndim not in (2, 3):
            raise ValueError(
                f"attn_mask has shape {list(attn_mask.shape)}, expected [{L}, {S}] or "
                f"[B * heads, {L}, {S}] for these queries and keys"
            )
        mask = additive(attn_mask)
        if mask.ndim == 3:  # [B * H, L, S] -> [B, H, L, S]
            mask = mask.view(B, -1, L, S)
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (B, S):
            raise ValueError(
                f"key_padding_mask has shape {list(key_padding_mask.shape)}, "
                f"expected [{B}, {S}]"
            )
        padding = additive(key_padding_mask).view(B, 1, 1, S)
        mask = padding if mask is None else mask + padding
    return mask


class ResidualAttentionBlock(nn.Module):
    """Pre-norm Transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); the MLP
    is 4x wider. Input and output tokens first, [L, B, D], as OpenAI's block; inside,
    batch-first (a transposed view: no copy when the encoder's tensor is batch-first).

    ``attn_mask`` is OpenAI's: an additive [L, L] mask (the text encoder's causal mask)
    or None. When it is exactly the causal mask, attention takes the fused causal path
    instead of reading it; assigning another mask to ``block.attn_mask`` is honoured.
    """

    def __init__(self, width: int, heads: int, attn_mask: torch.Tensor | None = None):
        super().__init__()
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
        self.attn_mask = attn_mask
        self._causal_mask = attn_mask if _is_causal(attn_mask) else None

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention of batch-first x [B, L, D] under the block's mask."""
        if self.attn_mask is None:
            return self.attn.attend(x, x, x)[0]
        if self.attn_mask is self._causal_mask:
            return self.attn.attend(x, x, x, is_causal=True)[0]
        L = x.shape[1]
        mask = _additive_mask(self.attn_mask, None, x.shape[0], L, L, x.dtype)
        return self.attn.attend(x, x, x, mask.to(x.device))[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(0, 1)  # [L, B, D] -> [B, L, D]
        x = x + self.attention(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x.transpose(0, 1)  # [B, L, D] -> [L, B, D]


class Transformer(nn.Module):
    """A stack of ``layers`` residual attention blocks over tokens-first input [L, B,
    D], OpenAI's layout, so that client code driving ``model.transformer`` (prompt
    learning, patch-token extraction) gets OpenAI's numbers; ``attn_mask`` as in
    :class:`ResidualAttentionBlock`."""

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        attn_mask: torch.Tensor | None = None,
    ):
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.Sequential(
            *[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)]
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
