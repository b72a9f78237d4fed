"""Features before the projection (``project=False``): what the projection maps to the
projected features, and the layer the paper's ViT probes read (appendix A.3)."""

from __future__ import annotations

import pytest
import torch
from support import TINY_RESNET, TINY_VIT, random_tokens

from clip_ref import CLIP


def _model(config):
    torch.manual_seed(0)
    return CLIP(config).double().eval()


def _images(config, n=3):
    generator = torch.Generator().manual_seed(1)
    size = (n, 3, config.image_resolution, config.image_resolution)
    return torch.randn(size, generator=generator, dtype=torch.float64)


def test_a_vits_unprojected_features_are_the_class_token_after_ln_post():
    model, images = _model(TINY_VIT), _images(TINY_VIT)
    states = {}
    model.visual.ln_post.register_forward_hook(lambda m, i, o: states.update(o=o))
    projected = model.encode_image(images)
    unprojected = model.encode_image(images, project=False)
    assert unprojected.shape == (3, TINY_VIT.vision_width)
    assert projected.shape == (3, TINY_VIT.embed_dim)
    assert torch.equal(unprojected, states["o"])
    torch.testing.assert_close(unprojected @ model.visual.proj, projected)


def test_a_resnets_unprojected_features_are_the_attention_pool_before_c_proj():
    model, images = _model(TINY_RESNET), _images(TINY_RESNET)
    inputs = {}
    model.visual.attnpool.c_proj.register_forward_pre_hook(
        lambda m, i: inputs.update(i=i[0])
    )
    projected = model.encode_image(images)
    unprojected = model.encode_image(images, project=False)
    assert unprojected.shape == (3, 32 * TINY_RESNET.vision_width)
    assert torch.equal(unprojected, inputs["i"])
    torch.testing.assert_close(model.visual.attnpool.c_proj(unprojected), projected)


@pytest.mark.parametrize("config", [TINY_VIT, TINY_RESNET])
def test_text_features_before_the_projection(config):
    model = _model(config)
    tokens = random_tokens(4, config.context_length)
    unprojected = model.encode_text(tokens, project=False)
    assert unprojected.shape == (4, config.transformer_width)
    torch.testing.assert_close(
        unprojected @ model.text_projection, model.encode_text(tokens)
    )
    # and the projection is not the identity: the two differ
    assert not torch.allclose(
        unprojected[:, : config.embed_dim], model.encode_text(tokens)
    )
