"""The supervised baseline of the robustness chapter (a label classifier on CLIP's
image encoder) and effective robustness (Taori et al., 2020)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from clip_ref import CLIP
from clip_ref.preprocess import normalize
from clip_ref.toy import PRESETS
from clip_ref.toy.data import ToyCaptions
from clip_ref.toy.supervised import (
    LabelClassifier,
    classifier_top1,
    effective_robustness,
    robustness_trend,
    train_classifier,
)
from clip_ref.train import TrainConfig

CONFIG = dataclasses.replace(PRESETS["toy"].model, vision_layers=1)
RECIPE = TrainConfig(steps=30, batch_size=32, lr=2e-3, warmup_steps=3)


def _data(size=96, seed=0):
    data = ToyCaptions("seen", size=size, seed=seed)
    return normalize(
        data.images
    ), data.colour_ids  # 6 colour classes: learnable in a few steps


def test_the_image_encoder_is_clips_own_and_the_head_maps_to_classes():
    torch.manual_seed(0)
    classifier = LabelClassifier(CONFIG, num_classes=6)
    torch.manual_seed(0)
    clip = CLIP(CONFIG)
    assert classifier.visual.state_dict().keys() == clip.visual.state_dict().keys()
    for (
        name,
        tensor,
    ) in clip.visual.state_dict().items():  # the same construction and initialisation
        assert torch.equal(classifier.visual.state_dict()[name], tensor), name
    images, _ = _data(size=5)
    assert classifier(images).shape == (5, 6)
    with pytest.raises(ValueError, match="2 classes"):
        LabelClassifier(CONFIG, num_classes=1)


def test_training_lowers_the_loss_learns_and_is_deterministic():
    images, labels = _data()
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = LabelClassifier(CONFIG, num_classes=6)
        before = torch.nn.functional.cross_entropy(model(images), labels).item()
        summary = train_classifier(model, images, labels, RECIPE, progress=False)
        results.append((summary["final_loss"], model.head.weight.detach().clone()))
        assert not model.training and summary["steps"] == RECIPE.steps
        assert summary["final_loss"] < 0.5 * before
        # batches that do not divide N
        assert classifier_top1(model, images, labels, batch_size=40) > 0.8
    assert results[0][0] == results[1][0] and torch.equal(results[0][1], results[1][1])


def test_training_refuses_bad_input():
    images, labels = _data(size=40)
    model = LabelClassifier(CONFIG, num_classes=6)
    with pytest.raises(ValueError, match="images"):
        train_classifier(model, images, labels[:-1], RECIPE, progress=False)
    with pytest.raises(ValueError, match="labels must lie"):
        train_classifier(model, images, labels + 6, RECIPE, progress=False)
    with pytest.raises(TypeError, match="integer class indices"):
        train_classifier(model, images, labels.float(), RECIPE, progress=False)
    with pytest.raises(ValueError, match="one batch"):
        train_classifier(model, images[:8], labels[:8], RECIPE, progress=False)


def test_classifier_top1_counts_correct_predictions():
    model = LabelClassifier(CONFIG, num_classes=3)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))  # always predicts class 1
    images = torch.zeros(10, 3, 32, 32)
    assert (
        classifier_top1(model, images, torch.tensor([1] * 7 + [0] * 3), batch_size=4)
        == 0.7
    )


def _logit(p):
    return math.log(p / (1 - p))


def test_trend_is_the_least_squares_line_on_logit_axes():
    original, shifted = [0.6, 0.8, 0.9], [0.3, 0.5, 0.7]
    trend = robustness_trend(original, shifted)
    x, y = [_logit(p) for p in original], [_logit(p) for p in shifted]
    mx, my = sum(x) / 3, sum(y) / 3
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum(
        (a - mx) ** 2 for a in x
    )
    assert trend.slope == pytest.approx(slope, rel=1e-12)
    assert trend.intercept == pytest.approx(my - slope * mx, rel=1e-12)
    expected = 1 / (1 + math.exp(-(slope * _logit(0.85) + my - slope * mx)))
    assert trend(0.85) == pytest.approx(expected, rel=1e-12)
    # Models exactly on a line have no effective robustness; one above it has the
    # distance.
    line = robustness_trend([0.5, 0.9], [0.2, 0.6])
    assert effective_robustness(0.5, 0.2, line) == pytest.approx(0.0, abs=1e-12)
    assert effective_robustness(0.9, 0.7, line) == pytest.approx(0.1, abs=1e-12)


@pytest.mark.parametrize(
    "original, shifted, match",
    [
        ([0.5], [0.4], "at least 2"),
        ([0.5, 0.6], [0.4], "original accuracies"),
        ([0.5, 1.0], [0.4, 0.5], "strictly between"),
        ([0.5, 0.6], [0.0, 0.5], "strictly between"),
        ([0.7, 0.7], [0.4, 0.5], "same original accuracy"),
    ],
)
def test_trend_refuses_what_fixes_no_line(original, shifted, match):
    with pytest.raises(ValueError, match=match):
        robustness_trend(original, shifted)
