"""Gradient caching and gradient checkpointing compute the full batch's gradients: in
float64 to 1e-10 against a plain backward pass, for every weight and the temperature;
and a few training steps on the command line with and without chunks give the same
weights within float32 rounding."""

from __future__ import annotations

import pytest
import torch
from support import random_tokens

from clip_ref import CLIP, CLIPConfig, contrastive_loss
from clip_ref.grad_cache import cached_contrastive_backward
from clip_ref.toy import PRESETS
from clip_ref.train import set_grad_checkpointing
from clip_ref.training_run import Features

VIT = PRESETS["tiny"].model  # 32 px, 8 px patches, one block per encoder, E = 64
RESNET = CLIPConfig(
    embed_dim=16,
    image_resolution=32,
    vision_layers=(1, 1, 1, 1),
    vision_width=8,
    vision_patch_size=None,
    transformer_width=32,
    transformer_heads=2,
    transformer_layers=1,
    context_length=16,
)
N = 11  # pairs; chunks of 4 leave a last chunk of 3


def _batch(config: CLIPConfig, n: int = N, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    size = (n, 3, config.image_resolution, config.image_resolution)
    images = torch.randn(size, generator=generator, dtype=torch.float64)
    return images, random_tokens(n, config.context_length, seed)


def _model(config: CLIPConfig, seed: int = 0) -> CLIP:
    torch.manual_seed(seed)
    model = CLIP(config).double()
    with torch.no_grad():  # a temperature away from its start, so its gradient is not
        model.logit_scale.fill_(3.0)  # special
    return model


def _gradients(model: CLIP) -> dict[str, torch.Tensor]:
    grads = {
        n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }
    model.zero_grad(set_to_none=True)
    return grads


def _full_batch(model, images, tokens):
    image_features, text_features, scale = Features(model)(images, tokens)
    loss = contrastive_loss(image_features, text_features, scale)
    loss.backward()
    return loss.detach(), _gradients(model)


@pytest.mark.parametrize("chunk_size", [1, 4, N])
def test_chunked_gradients_equal_the_full_batch_in_float64(chunk_size):
    model = _model(VIT).train()
    images, tokens = _batch(VIT)
    loss, expected = _full_batch(model, images, tokens)
    chunked_loss, scale = cached_contrastive_backward(
        Features(model), images, tokens, chunk_size
    )
    got = _gradients(model)
    assert got.keys() == expected.keys()
    assert "logit_scale" in got and "visual.conv1.weight" in got
    torch.testing.assert_close(chunked_loss, loss, rtol=0, atol=1e-12)
    assert scale == model.logit_scale.exp()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-10)
    # and not trivially: the gradients are far from zero
    assert expected["logit_scale"].abs() > 1e-3
    assert expected["visual.conv1.weight"].abs().max() > 1e-4


def test_a_frozen_image_encoder_gets_no_gradient_and_the_rest_the_full_ones():
    model = _model(VIT).train()
    model.visual.requires_grad_(False)  # LiT
    images, tokens = _batch(VIT)
    _, expected = _full_batch(model, images, tokens)
    cached_contrastive_backward(Features(model), images, tokens, 3)
    got = _gradients(model)
    assert not any(name.startswith("visual.") for name in got)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-10)


def test_resnet_chunks_normalise_per_chunk_and_update_running_statistics_once():
    # In eval mode BatchNorm uses its stored statistics: the full batch's gradients.
    model = _model(RESNET).eval()
    images, tokens = _batch(RESNET)
    _, expected = _full_batch(model, images, tokens)
    cached_contrastive_backward(Features(model), images, tokens, 4)
    for name, grad in _gradients(model).items():
        torch.testing.assert_close(grad, expected[name], rtol=0, atol=1e-10)
    # In training mode the statistics move once per chunk, as in a plain pass per chunk.
    chunked, plain = _model(RESNET).train(), _model(RESNET).train()
    cached_contrastive_backward(Features(chunked), images, tokens, 4)
    with torch.no_grad():
        for part in images.split(4):
            plain.encode_image(part)
    for (name, a), (_, b) in zip(chunked.named_buffers(), plain.named_buffers()):
        assert torch.equal(a, b), name
    running = dict(chunked.named_buffers())["visual.bn1.running_mean"]
    assert running.abs().max() > 0  # they did move


def test_gradient_checkpointing_gives_the_same_gradients():
    model = _model(VIT).train()
    images, tokens = _batch(VIT)
    _, expected = _full_batch(model, images, tokens)
    set_grad_checkpointing(model)
    assert all(
        t.grad_checkpointing for t in (model.transformer, model.visual.transformer)
    )
    _, got = _full_batch(model, images, tokens)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-12)
    set_grad_checkpointing(model, False)
    assert not model.transformer.grad_checkpointing


def test_a_chunk_size_below_one_is_refused():
    model = _model(VIT)
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        cached_contrastive_backward(Features(model), *_batch(VIT), 0)


def test_command_line_steps_with_chunks_give_the_weights_without_them(tmp_path):
    from clip_ref.cli import main

    common = ["--preset", "tiny", "--steps", "4", "--warmup-steps", "1"]
    common += ["--device", "cpu", "--no-progress", "--batch-size", "16"]
    plain = main(common + ["--out", str(tmp_path / "plain")])
    chunked = main(
        common
        + ["--out", str(tmp_path / "chunked"), "--chunk-size", "5"]
        + ["--grad-checkpointing"]
    )
    assert plain["steps"] == chunked["steps"] == 4
    a = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "chunked" / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    torch.manual_seed(PRESETS["tiny"].train.seed)  # the run's initial weights
    start = CLIP(PRESETS["tiny"].model).state_dict()
    moved = 0
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5)
        moved += not torch.equal(a[name], start[name])
    assert moved > len(a) // 2  # training changed most tensors, so equality means much
    assert plain["final_loss"] == pytest.approx(chunked["final_loss"], abs=1e-4)
