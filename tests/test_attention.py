"""``clip_ref``'s attention is called like ``torch.nn.MultiheadAttention`` (tokens
first, ``attn(q, k, v, need_weights=..., attn_mask=...)``), as OpenAI's blocks call it,
and computes the same numbers on the same weights: outputs and weights, with and without
masks, for self- and cross-attention. The blocks and the stack take OpenAI's [L, B, D]
layout, so client code that drives them directly gets OpenAI's numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clip_ref.layers import (
    MultiheadSelfAttention,
    ResidualAttentionBlock,
    Transformer,
    causal_mask,
)

D, H = 32, 4


def pair(seed=0):
    """clip_ref's attention and torch's, with the same random weights (float64)."""
    torch.manual_seed(seed)
    ours = MultiheadSelfAttention(D, H).double()
    for p in ours.parameters():
        nn.init.normal_(p, std=0.3)  # biases non-zero, so they count too
    theirs = nn.MultiheadAttention(D, H).double()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours.eval(), theirs.eval()


def masks(L, S, B):
    bool_mask = torch.rand(L, S, generator=torch.Generator().manual_seed(1)) < 0.3
    bool_mask[:, 0] = False  # every query sees at least one key
    padding = torch.zeros(B, S, dtype=torch.bool)
    padding[0, -2:] = True
    return {
        "none": {},
        "causal additive": {"attn_mask": causal_mask(L).double()},
        "boolean": {"attn_mask": bool_mask},
        "key padding": {"key_padding_mask": padding},
        "both": {"attn_mask": bool_mask, "key_padding_mask": padding},
    }


@pytest.mark.parametrize("mask_name", list(masks(5, 5, 3)))
@pytest.mark.parametrize("average", [True, False])
def test_self_attention_equals_torch_multihead_attention(mask_name, average):
    ours, theirs = pair()
    L, B = 5, 3
    x = torch.randn(L, B, D, dtype=torch.float64)
    kwargs = masks(L, L, B)[mask_name]
    out, weights = ours(x, x, x, average_attn_weights=average, **kwargs)
    out_t, weights_t = theirs(x, x, x, average_attn_weights=average, **kwargs)
    torch.testing.assert_close(out, out_t, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weights, weights_t, rtol=1e-12, atol=1e-12)
    out, none = ours(x, x, x, need_weights=False, **kwargs)
    assert none is None
    torch.testing.assert_close(out, out_t, rtol=1e-12, atol=1e-12)


def test_cross_attention_equals_torch_multihead_attention():
    ours, theirs = pair(1)
    q = torch.randn(4, 2, D, dtype=torch.float64)
    kv = torch.randn(6, 2, D, dtype=torch.float64)
    for a, b in zip(ours(q, kv, kv), theirs(q, kv, kv)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_is_causal_without_a_mask_is_the_causal_mask():
    ours, _ = pair()
    x = torch.randn(6, 2, D, dtype=torch.float64)
    expected = ours(x, x, x, attn_mask=causal_mask(6).double())
    for a, b in zip(ours(x, x, x, is_causal=True), expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_comparison_sees_a_batch_first_input():
    """Feeding [B, L, D] where [L, B, D] is expected attends across the batch: the
    comparison with torch's tokens-first module notices."""
    ours, theirs = pair()
    x = torch.randn(3, 5, D, dtype=torch.float64)  # [B, L, D]
    wrong = ours.attend(x, x, x)[0].transpose(0, 1)  # batch-first, turned around
    right = theirs(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))[0]
    torch.testing.assert_close(wrong, right, rtol=1e-12, atol=1e-12)
    misused = ours(x, x, x)[0]  # batch-first where tokens first is expected
    assert misused.shape == right.transpose(0, 1).shape
    assert not torch.allclose(misused, right.transpose(0, 1))


def test_bad_masks_are_refused():
    ours, _ = pair()
    x = torch.randn(5, 2, D, dtype=torch.float64)
    with pytest.raises(ValueError, match="attn_mask has shape"):
        ours(x, x, x, attn_mask=causal_mask(77).double())
    with pytest.raises(ValueError, match="key_padding_mask has shape"):
        ours(x, x, x, key_padding_mask=torch.zeros(5, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"tokens first"):
        ours(x[0], x[0], x[0])


class OpenAIBlock(nn.Module):
    """OpenAI's residual attention block, written from its published structure: torch's
    MultiheadAttention on [L, B, D], the mask passed on every call."""

    def __init__(self, width, heads, attn_mask=None):
        super().__init__()
        from collections import OrderedDict

        from clip_ref.layers import LayerNorm, QuickGELU

        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = LayerNorm(width)
        self.attn_mask = attn_mask

    def forward(self, x):
        mask = None if self.attn_mask is None else self.attn_mask.to(x.dtype)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


@pytest.mark.parametrize("masked", [False, True])
def test_blocks_and_stack_take_openai_layout(masked):
    L, B = 7, 3
    mask = causal_mask(L) if masked else None
    torch.manual_seed(0)
    stack = Transformer(D, 2, H, attn_mask=mask).double().eval()
    for p in stack.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    reference = nn.Sequential(*[OpenAIBlock(D, H, mask) for _ in range(2)]).double()
    reference.load_state_dict(stack.resblocks.state_dict(), strict=True)
    x = torch.randn(L, B, D, dtype=torch.float64)  # tokens first
    with torch.no_grad():
        torch.testing.assert_close(stack(x), reference(x), rtol=1e-12, atol=1e-12)
        block = stack.resblocks[0]
        torch.testing.assert_close(block(x), reference[0](x), rtol=1e-12, atol=1e-12)
    assert (stack.width, stack.layers) == (D, 2)
    assert block.attn_mask is mask


def test_a_mask_assigned_to_a_block_is_honoured():
    torch.manual_seed(0)
    block = ResidualAttentionBlock(D, H, attn_mask=causal_mask(5)).double().eval()
    x = torch.randn(5, 2, D, dtype=torch.float64)
    with torch.no_grad():
        causal = block(x)
        block.attn_mask = None  # attend everywhere now
        full = block(x)
        block.attn_mask = causal_mask(5).clone()  # a new tensor: read, not assumed
        again = block(x)
    assert not torch.allclose(causal, full)
    torch.testing.assert_close(again, causal, rtol=1e-12, atol=1e-12)
