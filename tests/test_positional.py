"""Resizing a ViT's positional embedding to another grid: the identity at the
original size, open_clip's numbers elsewhere, and a model that runs at another
resolution."""

from __future__ import annotations

import types

import pytest
import torch
from support import TINY_RESNET, TINY_VIT, perturbed_state_dict

import clip_ref
from clip_ref.vit import resize_positional_embedding, resize_state_dict


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_resizing_to_the_same_grid_is_the_identity(dtype):
    g = torch.Generator().manual_seed(0)
    embedding = torch.randn(1 + 7 * 7, 32, generator=g).to(dtype)
    resized = resize_positional_embedding(embedding, 7)
    assert torch.equal(resized, embedding) and resized.dtype == dtype


def test_the_same_resolution_gives_the_same_state_dict_and_model():
    state_dict = perturbed_state_dict(TINY_VIT)
    same = resize_state_dict(state_dict, TINY_VIT.image_resolution)
    assert same.keys() == state_dict.keys()
    assert all(torch.equal(same[k], state_dict[k]) for k in state_dict)


@pytest.mark.parametrize("new_grid", [3, 6, 24])
def test_the_class_token_is_kept_and_the_grid_resized_as_open_clip_does(new_grid):
    open_clip_model = pytest.importorskip("open_clip.model")
    g = torch.Generator().manual_seed(1)
    embedding = torch.randn(1 + 4 * 4, 64, generator=g)
    resized = resize_positional_embedding(embedding, new_grid)
    assert resized.shape == (1 + new_grid**2, 64)
    assert torch.equal(resized[0], embedding[0])
    theirs = {"visual.positional_embedding": embedding.clone()}
    open_clip_model.resize_pos_embed(
        theirs, types.SimpleNamespace(visual=types.SimpleNamespace(grid_size=new_grid))
    )
    # The same interpolation as open_clip's; fp32 kernels may round the last bit
    # differently from run to run (vectorised paths depend on the thread layout), so
    # parity is to fp32 precision, not bitwise.
    torch.testing.assert_close(
        resized, theirs["visual.positional_embedding"], rtol=1e-6, atol=1e-6
    )


def test_a_smooth_embedding_stays_smooth():
    """A picture of one value, or of a ramp along the rows, resized is still that
    (inside the grid)."""
    constant = torch.cat([torch.zeros(1, 3), torch.full((16, 3), 0.25)])
    torch.testing.assert_close(
        resize_positional_embedding(constant, 8)[1:], torch.full((64, 3), 0.25)
    )
    # [16, 1]: value = row index of the 4 x 4 grid
    rows = torch.arange(4.0).repeat_interleave(4)[:, None]
    ramp = resize_positional_embedding(torch.cat([torch.zeros(1, 1), rows]), 8)[
        1:
    ].reshape(8, 8)
    # constant along each row
    torch.testing.assert_close(ramp, ramp[:, :1].expand(8, 8))
    assert torch.all(ramp[1:, 0] >= ramp[:-1, 0])  # increasing down the columns


def test_a_model_runs_at_another_resolution():
    state_dict = perturbed_state_dict(TINY_VIT)
    # as in OpenAI's archives
    state_dict["input_resolution"] = torch.tensor(TINY_VIT.image_resolution)
    # 32 px with 8 px patches (4 x 4) -> 48 px (6 x 6)
    bigger = resize_state_dict(state_dict, 48)
    # input untouched
    assert (
        int(bigger["input_resolution"]) == 48
        and int(state_dict["input_resolution"]) == 32
    )
    model = clip_ref.build_model(bigger)
    assert (
        model.visual.input_resolution == 48
        and model.visual.positional_embedding.shape == (37, 64)
    )
    images = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        features = model.encode_image(images)
    assert features.shape == (2, TINY_VIT.embed_dim) and torch.isfinite(features).all()
    # Only the image's positions changed: the text side computes exactly what the
    # original model does.
    original = clip_ref.build_model(state_dict)
    tokens = clip_ref.tokenize(["a red circle"], context_length=TINY_VIT.context_length)
    with torch.no_grad():
        assert torch.equal(model.encode_text(tokens), original.encode_text(tokens))
    with pytest.raises(ValueError, match=r"\[B, 3, 48, 48\]"):
        model.encode_image(torch.randn(1, 3, 32, 32))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\[1 \+ G\*G, D\]"):
        resize_positional_embedding(torch.randn(1 + 15, 8), 4)
    with pytest.raises(ValueError, match="positive int"):
        resize_positional_embedding(torch.randn(1 + 16, 8), 0)
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        resize_state_dict(perturbed_state_dict(TINY_VIT), 44)
    with pytest.raises(ValueError, match="not a Vision Transformer"):
        resize_state_dict(perturbed_state_dict(TINY_RESNET), 96)
