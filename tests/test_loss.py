"""The contrastive loss: parity with open_clip's ClipLoss, a closed form, the sharded
math, and its errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from support import TINY_VIT, perturbed_state_dict, random_tokens

from clip_ref import CLIP
from clip_ref.loss import MAX_LOGIT_SCALE, contrastive_loss, local_contrastive_loss


def _features(n: int, e: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    # Unnormalised, with varied norms, and correlated pairs so the loss is not at its
    # random value.
    image = torch.randn(n, e, generator=g) * (1 + 3 * torch.rand(n, 1, generator=g))
    text = 0.5 * image + torch.randn(n, e, generator=g)
    return image.double(), text.double()


@pytest.mark.parametrize(
    "n, e, scale, seed",
    [(1, 8, 1.0, 0), (7, 16, 14.285714, 1), (64, 32, 100.0, 2), (33, 5, 3.5, 3)],
)
def test_loss_and_gradients_equal_open_clip(n, e, scale, seed):
    image, text = _features(n, e, seed)
    ours_inputs = [
        t.clone().requires_grad_()
        for t in (image, text, torch.tensor(scale, dtype=torch.float64))
    ]
    theirs_inputs = [
        t.clone().requires_grad_()
        for t in (image, text, torch.tensor(scale, dtype=torch.float64))
    ]

    ours = contrastive_loss(*ours_inputs)
    # open_clip's ClipLoss expects normalised features (its model normalises): normalise
    # in the graph.
    i, t, s = theirs_inputs
    theirs = ClipLoss()(F.normalize(i, dim=-1), F.normalize(t, dim=-1), s)
    ours.backward()
    theirs.backward()

    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for a, b in zip(ours_inputs, theirs_inputs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_closed_form_for_orthonormal_pairs():
    # Two perfectly matched, mutually orthogonal pairs: each row has logits (s, 0), so
    # both directions give -log(e^s / (e^s + 1)) = log(1 + e^-s).
    features = torch.eye(2, dtype=torch.float64) * torch.tensor(
        [[3.0], [0.5]], dtype=torch.float64
    )
    for scale in (1.0, 10.0, 100.0):
        expected = math.log1p(math.exp(-scale))
        assert contrastive_loss(features, features, scale).item() == pytest.approx(
            expected, rel=1e-12
        )


def test_random_features_give_log_n_at_zero_temperature_limit():
    # With a tiny scale every logit is ~0: each row is a uniform guess among N, the loss
    # is log N.
    image, text = _features(50, 16, 4)
    assert contrastive_loss(image, text, 1e-9).item() == pytest.approx(
        math.log(50), rel=1e-6
    )


def test_symmetric_in_image_and_text_and_invariant_to_feature_norms():
    image, text = _features(12, 8, 5)
    loss = contrastive_loss(image, text, 20.0)
    torch.testing.assert_close(contrastive_loss(text, image, 20.0), loss)
    torch.testing.assert_close(contrastive_loss(3 * image, 0.1 * text, 20.0), loss)
    # ...but not to which text goes with which image.
    assert contrastive_loss(image, text.roll(1, dims=0), 20.0) > loss + 0.5


def test_loss_is_cross_entropy_of_clip_forward_logits():
    torch.manual_seed(0)
    model = CLIP(TINY_VIT)
    model.load_state_dict(perturbed_state_dict(TINY_VIT, seed=1))
    images = torch.randn(6, 3, 32, 32)
    tokens = random_tokens(6, TINY_VIT.context_length, seed=2)
    with torch.no_grad():
        logits_per_image, logits_per_text = model(images, tokens)
        labels = torch.arange(6)
        expected = (
            F.cross_entropy(logits_per_image, labels)
            + F.cross_entropy(logits_per_text, labels)
        ) / 2
        ours = contrastive_loss(
            model.encode_image(images),
            model.encode_text(tokens),
            model.logit_scale.exp(),
        )
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_sharded_losses_average_to_the_full_batch_loss_with_the_same_gradients():
    # What each process computes under distributed=True, simulated here in one process:
    # W shards of n pairs, each scored against all N = W * n. The mean of the shard
    # losses is the full loss, gradients included.
    world, n, e = 4, 5, 8
    image, text = _features(world * n, e, 6)
    full_i, full_t = image.clone().requires_grad_(), text.clone().requires_grad_()
    contrastive_loss(full_i, full_t, 30.0).backward()

    shard_i, shard_t = image.clone().requires_grad_(), text.clone().requires_grad_()
    all_i, all_t = F.normalize(shard_i, dim=-1), F.normalize(shard_t, dim=-1)
    losses = [
        local_contrastive_loss(
            all_i[r * n : (r + 1) * n],
            all_t[r * n : (r + 1) * n],
            all_i,
            all_t,
            30.0,
            r * n,
        )
        for r in range(world)
    ]
    mean = torch.stack(losses).mean()
    mean.backward()
    torch.testing.assert_close(mean, contrastive_loss(image, text, 30.0))
    torch.testing.assert_close(shard_i.grad, full_i.grad)
    torch.testing.assert_close(shard_t.grad, full_t.grad)

    # The labels must be offset by the shard's position: without the offset every shard
    # but the first would be trained to match its images with another shard's texts.
    wrong = torch.stack(
        [
            local_contrastive_loss(
                all_i[r * n : (r + 1) * n],
                all_t[r * n : (r + 1) * n],
                all_i,
                all_t,
                30.0,
                0,
            )
            for r in range(world)
        ]
    ).mean()
    assert wrong > mean + 1.0


def test_learns_the_temperature():
    image, text = _features(16, 8, 7)
    log_scale = torch.tensor(
        math.log(1 / 0.07), dtype=torch.float64, requires_grad=True
    )
    contrastive_loss(image, text, log_scale.exp()).backward()
    assert log_scale.grad is not None and log_scale.grad.abs() > 0


@pytest.mark.parametrize(
    "image_shape, text_shape, message",
    [
        ((4, 8), (5, 8), "pair up"),
        ((4, 8), (4, 6), "pair up"),
        ((4, 8, 1), (4, 8, 1), r"\(N, E\)"),
        ((8,), (8,), r"\(N, E\)"),
        ((0, 8), (0, 8), "empty"),
    ],
)
def test_shape_errors(image_shape, text_shape, message):
    with pytest.raises(ValueError, match=message):
        contrastive_loss(torch.randn(image_shape), torch.randn(text_shape), 10.0)


@pytest.mark.parametrize(
    "scale, message",
    [
        (0.0, "positive"),
        (-3.0, "positive"),
        (float("nan"), "positive"),
        (float("inf"), "positive"),
        (MAX_LOGIT_SCALE * 1.01, "clips"),
        (torch.ones(2), "scalar"),
    ],
)
def test_logit_scale_errors(scale, message):
    with pytest.raises(ValueError, match=message):
        contrastive_loss(torch.randn(4, 8), torch.randn(4, 8), scale)


def test_logit_scale_accepts_the_clamp_and_its_half_precision_rounding():
    image, text = _features(4, 8, 8)
    labels = torch.arange(4)
    for value in (
        torch.tensor(math.log(100.0)).exp(),
        torch.tensor(math.log(100.0)).half().float().exp(),
        100.0,
    ):
        logits = float(value) * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
        expected = (
            F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)
        ) / 2
        torch.testing.assert_close(contrastive_loss(image, text, value), expected)


def test_distributed_without_process_group_raises():
    with pytest.raises(RuntimeError, match="init_process_group"):
        contrastive_loss(torch.randn(4, 8), torch.randn(4, 8), 10.0, distributed=True)
