"""``MultiheadSelfAttention.attention_weights`` (the matrix the chapters draw) is the
matrix ``forward`` applies: weights x values, heads merged, projected, gives
``forward``'s output."""

from __future__ import annotations

import pytest
import torch

from clip_ref.layers import MultiheadSelfAttention


@pytest.mark.parametrize("causal", [False, True])
def test_attention_weights_are_what_forward_applies(causal):
    torch.manual_seed(0)
    B, L, D, H = 2, 7, 32, 4
    attention = MultiheadSelfAttention(D, H).double()
    torch.nn.init.normal_(attention.in_proj_bias)  # non-zero, so biases count too
    x = torch.randn(B, L, D, dtype=torch.float64)
    weights = attention.attention_weights(x, causal=causal)  # [B, H, L, L]
    assert weights.shape == (B, H, L, L)
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(B, H, L, dtype=torch.float64)
    )
    if causal:  # nothing attends to a later token
        assert (weights.triu(diagonal=1) == 0).all()
    _, _, v = attention._heads(x)  # [B, H, L, D/H]
    merged = (weights @ v).transpose(1, 2).reshape(B, L, D)
    expected = attention(x, causal=causal)
    torch.testing.assert_close(
        attention.out_proj(merged), expected, rtol=1e-12, atol=1e-12
    )


def test_the_check_sees_a_wrong_matrix():
    torch.manual_seed(0)
    attention = MultiheadSelfAttention(16, 2).double()
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    weights = attention.attention_weights(x, causal=False)
    _, _, v = attention._heads(x)
    merged = (weights.transpose(-1, -2) @ v).transpose(1, 2).reshape(1, 5, 16)
    assert not torch.allclose(attention.out_proj(merged), attention(x))
