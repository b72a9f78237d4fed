"""Multi-label and open-set scores: each label against a negative caption, per-label
thresholds fitted on labelled images, and the metrics that judge them (AUROC, F1),
each against a direct computation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from clip_ref.evaluate import auroc, f1_scores
from clip_ref.zeroshot import fit_label_thresholds, label_scores


def _unit(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator), dim=0)


def test_label_scores_are_a_softmax_over_the_label_and_its_negative():
    images = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    W, negatives, generic = _unit(8, 3), _unit(8, 3, seed=2), _unit(8, 1, seed=3)
    unit = F.normalize(images, dim=-1)
    for negative in (negatives, generic):
        scores = label_scores(images, W, negative, logit_scale=30.0)
        assert scores.shape == (5, 3)
        for c in range(3):
            n = negative[:, c if negative.shape[1] == 3 else 0]
            pair = torch.stack([unit @ W[:, c], unit @ n], dim=-1)  # [B, 2]
            expected = (30.0 * pair).softmax(dim=-1)[:, 0]
            torch.testing.assert_close(scores[:, c], expected)
    # not a softmax over labels: rows need not sum to 1
    assert not torch.allclose(scores.sum(-1), torch.ones(5))


def test_label_scores_refuse_mismatched_negatives():
    with pytest.raises(ValueError, match=r"negative must be \[E, C\] or \[E, 1\]"):
        label_scores(torch.randn(2, 8), _unit(8, 3), _unit(8, 2))


def _best_f1_by_brute_force(s, y):
    best = 0.0
    for t in torch.cat([s, s.max()[None] + 1]).tolist():
        predicted = s >= t
        best = max(best, f1_scores(predicted[:, None], y[:, None]).item())
    return best


def test_fitted_thresholds_reach_the_best_f1_and_sit_between_scores():
    generator = torch.Generator().manual_seed(4)
    positive = torch.rand(40, 5, generator=generator) < 0.3
    scores = positive.float() * 0.8 + torch.rand(40, 5, generator=generator)
    scores[:, 4] = scores[:, 4].round(decimals=1)  # ties
    thresholds = fit_label_thresholds(scores, positive)
    got = f1_scores(scores >= thresholds, positive)
    for c in range(5):
        assert got[c].item() == pytest.approx(
            _best_f1_by_brute_force(scores[:, c], positive[:, c])
        )
        assert not (scores[:, c] == thresholds[c]).any()  # halfway, never on a score
    assert got.min() > 0.5  # the labels are learnable here, so the test means much


def test_a_label_without_examples_accepts_nothing():
    scores = torch.tensor([[0.2], [0.9]])
    threshold = fit_label_thresholds(scores, torch.zeros(2, 1, dtype=torch.bool))
    assert not (scores >= threshold).any()


def test_auroc_is_the_chance_that_a_positive_outranks_a_negative():
    generator = torch.Generator().manual_seed(5)
    scores = torch.randint(0, 6, (30, 3), generator=generator).float()  # many ties
    positive = torch.rand(30, 3, generator=generator) < 0.4
    got = auroc(scores, positive)
    for c in range(3):
        pos, neg = scores[positive[:, c], c], scores[~positive[:, c], c]
        pairs = list(itertools.product(pos.tolist(), neg.tolist()))
        expected = sum((a > b) + 0.5 * (a == b) for a, b in pairs) / len(pairs)
        assert got[c].item() == pytest.approx(expected)
    assert (
        auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75
    )
    with pytest.raises(ValueError, match="column 0 has 0 positives"):
        auroc(torch.rand(4), torch.zeros(4, dtype=torch.bool))


def test_f1_counts_true_and_false_positives_per_label():
    predicted = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.bool)
    positive = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    # label 0: TP 2, FN 1 -> 4/5; label 1: TP 1, FP 1 -> 2/3; label 2: nothing -> 0
    expected = torch.tensor([0.8, 2 / 3, 0.0], dtype=torch.float64)
    torch.testing.assert_close(f1_scores(predicted, positive), expected)
