"""Linear probes: parity with scikit-learn's LogisticRegression, the choice of l2 on
a validation split, determinism, input errors, and the zero-shot equivalent k of
Figure 7."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import clip_ref.probe
from clip_ref.probe import linear_probe, zero_shot_equivalent_k


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(
        1
        # tiny problems: a second thread only adds overhead (conftest restores it)
    )


def _blobs(n: int, e: int, c: int, seed: int):
    """Overlapping Gaussian classes with unequal feature scales: a problem with a
    finite optimum."""
    g = torch.Generator().manual_seed(seed)
    means = 1.5 * torch.randn(c, e, generator=g, dtype=torch.float64)
    labels = torch.arange(n) % c
    spread = 1 + torch.rand(e, generator=g, dtype=torch.float64)
    return means[labels] + spread * torch.randn(
        n, e, generator=g, dtype=torch.float64
    ), labels


def _sklearn(x, y, c_inverse):
    return LogisticRegression(
        C=c_inverse, solver="lbfgs", tol=1e-12, max_iter=100_000
    ).fit(x.numpy(), y.numpy())


@pytest.mark.filterwarnings("error::RuntimeWarning")  # and L-BFGS converges
@pytest.mark.parametrize("l2", [1e-3, 0.1, 10.0, 300.0])
def test_agrees_with_sklearn_logistic_regression(l2):
    x, y = _blobs(200, 6, 4, seed=0)
    probe = linear_probe(x, y, l2=l2)
    reference = _sklearn(x, y, 1 / l2)

    points = torch.cat(
        [
            x,
            2
            * torch.randn(
                50, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64
            ),
        ]
    )
    ours = probe.predict_proba(points)
    assert ours.shape == (250, 4) and ours.dtype == torch.float64
    np.testing.assert_allclose(
        ours.numpy(), reference.predict_proba(points.numpy()), rtol=0, atol=1e-4
    )
    np.testing.assert_allclose(probe.weight.numpy(), reference.coef_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        probe.bias.numpy(), reference.intercept_, rtol=0, atol=1e-4
    )
    assert probe.l2 == l2
    assert torch.equal(probe.predict(points), ours.argmax(dim=1))


def test_two_classes_match_sklearns_binary_model_at_twice_c():
    # scikit-learn fits one weight vector v for two classes; our two rows settle at -v/2
    # and +v/2, whose penalty l2/2 * (2 * |v/2|^2) = l2/4 * |v|^2 is scikit-learn's with
    # C = 2 / l2.
    x, y = _blobs(120, 5, 2, seed=2)
    probe = linear_probe(x, y, l2=1.0)
    reference = _sklearn(x, y, 2.0)
    np.testing.assert_allclose(
        probe.predict_proba(x).numpy(),
        reference.predict_proba(x.numpy()),
        rtol=0,
        atol=1e-4,
    )
    np.testing.assert_allclose(
        (probe.weight[1] - probe.weight[0]).numpy(),
        reference.coef_[0],
        rtol=0,
        atol=1e-4,
    )


def _mislabelled_few_shot(n: int, seed: int, mislabel: bool):
    """Four examples per class, one of them mislabelled, among 17 noise features:
    strong l2 wins."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    x = 0.3 * torch.randn(n, 20, generator=g, dtype=torch.float64)
    x[:, :3] += 2 * torch.eye(3, dtype=torch.float64)[labels]
    if mislabel:
        labels = labels.clone()
        labels[:3] = torch.tensor([1, 2, 0])
    return x, labels


def _hidden_under_nuisance(n: int, seed: int):
    """The class is x0 - x1, hidden under a large shared nuisance: only a weakly
    regularised probe finds it."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    nuisance = 10 * torch.randn(n, generator=g, dtype=torch.float64)
    signal = labels.double() + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([signal + nuisance, nuisance], dim=1), labels


def test_deterministic_and_accepts_numpy():
    x, y = _blobs(90, 5, 3, seed=3)
    first, second = (
        linear_probe(x, y, l2=0.5),
        linear_probe(x.numpy(), y.numpy(), l2=0.5),
    )
    assert torch.equal(first.weight, second.weight) and torch.equal(
        first.bias, second.bias
    )
    x, y = _mislabelled_few_shot(12, seed=0, mislabel=True)
    vx, vy = _mislabelled_few_shot(60, seed=1, mislabel=False)
    chosen, again = linear_probe(x, y, vx, vy), linear_probe(x, y, vx, vy)
    assert chosen.l2 == again.l2
    assert torch.equal(chosen.weight, again.weight) and torch.equal(
        chosen.bias, again.bias
    )


def _top1(probe, x, y) -> float:
    return (probe.predict(x) == y).double().mean().item()


@pytest.mark.parametrize(
    "problem, strong_wins",
    [
        (
            lambda seed, val: _mislabelled_few_shot(
                300 if val else 12, seed, mislabel=not val
            ),
            True,
        ),
        (lambda seed, val: _hidden_under_nuisance(300 if val else 60, seed), False),
    ],
)
def test_l2_chosen_on_the_validation_split(problem, strong_wins):
    x, y = problem(0, val=False)
    vx, vy = problem(1, val=True)
    probe = linear_probe(x, y, vx, vy)

    # The choice moves the right way: the best regularisation of each problem, by a wide
    # margin. When strong wins, 1e2 .. 1e6 all classify the validation split perfectly,
    # and ties go to the strongest.
    assert (probe.l2 == 1e6) if strong_wins else (probe.l2 <= 10)
    # It lies on the search grid (8 steps per decade, 1e-6 .. 1e6) ...
    steps = 8 * math.log10(probe.l2)
    assert abs(steps - round(steps)) < 1e-9 and -48 <= round(steps) <= 48
    # ... is at least as good on the validation split as every starting point of the
    # search ...
    chosen_top1 = _top1(probe, vx, vy)
    for exponent in range(-6, 7, 2):
        assert chosen_top1 >= _top1(linear_probe(x, y, l2=10.0**exponent), vx, vy)
    # ... and the returned probe is the one fitted on the training split with that l2.
    refit = linear_probe(x, y, l2=probe.l2)
    assert torch.equal(probe.weight, refit.weight) and torch.equal(
        probe.bias, refit.bias
    )


def test_warns_when_lbfgs_runs_out_of_iterations(monkeypatch):
    monkeypatch.setattr(clip_ref.probe, "MAX_ITER", 2)
    x, y = _blobs(60, 4, 3, seed=5)
    with pytest.warns(RuntimeWarning, match="without converging"):
        linear_probe(x, y, l2=1e-3)


_X, _Y = _blobs(12, 4, 3, seed=6)


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        (
            (_X, _Y[:-1]),
            {"l2": 1.0},
            ValueError,
            "has 11 labels but the features have 12 rows",
        ),
        (
            (_X, torch.tensor([0, 2] * 6)),
            {"l2": 1.0},
            ValueError,
            r"classes \[1\] have no training example",
        ),
        (
            (_X, torch.zeros(12, dtype=torch.long)),
            {"l2": 1.0},
            ValueError,
            "single class",
        ),
        (
            (torch.where(torch.arange(12)[:, None] == 3, math.nan, _X), _Y),
            {"l2": 1.0},
            ValueError,
            "train_features contains non-finite",
        ),
        (
            (torch.where(torch.arange(12)[:, None] == 3, math.inf, _X), _Y),
            {"l2": 1.0},
            ValueError,
            "train_features contains non-finite",
        ),
        (
            (_X, _Y, _X.clone().fill_(math.nan), _Y),
            {},
            ValueError,
            "val_features contains non-finite",
        ),
        ((_X, _Y), {}, ValueError, "no l2 and no validation split"),
        ((_X, _Y, _X), {}, ValueError, "no l2 and no validation split"),
        ((_X, _Y, _X, _Y), {"l2": 1.0}, ValueError, "not both"),
        (
            (_X[0], _Y[:1]),
            {"l2": 1.0},
            ValueError,
            r"train_features must be 2-D \[N, E\], got shape \(4,\)",
        ),
        ((_X[None], _Y), {"l2": 1.0}, ValueError, "train_features must be 2-D"),
        ((_X, _Y.double()), {"l2": 1.0}, TypeError, "integer class indices"),
        ((_X, _Y == 1), {"l2": 1.0}, TypeError, "integer class indices"),
        ((_X, _Y - 1), {"l2": 1.0}, ValueError, "negative class index"),
        ((_X, _Y[:, None]), {"l2": 1.0}, ValueError, "train_labels must be 1-D"),
        ((_X.to(torch.complex128), _Y), {"l2": 1.0}, TypeError, "real numbers"),
        ((_X[:0], _Y[:0]), {"l2": 1.0}, ValueError, "no rows"),
        (
            (_X, _Y, _X[:, :3], _Y),
            {},
            ValueError,
            "val_features have 3 columns but train_features have 4",
        ),
        ((_X, _Y, _X, _Y[:-1]), {}, ValueError, "val_labels has 11 labels"),
        (
            (_X, _Y, _X, _Y + 2),
            {},
            ValueError,
            r"val_labels hold class 4, but the training classes are 0 \.\. 2",
        ),
        ((_X, _Y, _X[:0], _Y[:0]), {}, ValueError, "val_features has no rows"),
    ]
    + [
        ((_X, _Y), {"l2": bad}, ValueError, "l2 must be a finite number > 0")
        for bad in (0, -1.0, math.nan, math.inf, True, "1")
    ],
)
def test_errors_name_the_problem(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        linear_probe(*args, **kwargs)


def test_predict_checks_the_width():
    probe = linear_probe(_X, _Y, l2=1.0)
    with pytest.raises(
        ValueError, match=r"features must be \[N, 4\], got shape \(12, 3\)"
    ):
        probe.predict_proba(_X[:, :3])


K = [1, 2, 4, 8, 16]
ACCURACY = [0.2, 0.4, 0.6, 0.7, 0.8]


@pytest.mark.parametrize(
    "zero_shot, expected",
    [
        (0.5, 2 * 2**0.5),  # halfway from 0.4 (k=2) to 0.6 (k=4) in log k: sqrt(2 * 4)
        (0.45, 2 * 2**0.25),  # a quarter of the way
        (0.6, 4.0),  # exactly a measured point
        (0.75, 8 * 2**0.5),  # halfway from k=8 to k=16
        (0.8, 16.0),  # the last point
        (0.2, 1.0),  # equal to the smallest probe
        # the 1-shot probe already beats zero-shot: worth fewer than 1 example
        (
            0.1,
            0.0,
        ),
        (0.9, math.inf),  # zero-shot beats every probe
    ],
)
def test_zero_shot_equivalent_k(zero_shot, expected):
    assert zero_shot_equivalent_k(K, ACCURACY, zero_shot) == pytest.approx(
        expected, rel=1e-12
    )


def test_zero_shot_equivalent_k_takes_the_first_crossing():
    # Not monotone: 0.45 is first reached between k=1 (0.3) and k=2 (0.5), three
    # quarters of the way.
    assert zero_shot_equivalent_k(
        [1, 2, 4, 8], [0.3, 0.5, 0.4, 0.6], 0.45
    ) == pytest.approx(2**0.75)
    # "all" as the mean examples per class of a full training set: between k=16 and
    # k=100.
    assert zero_shot_equivalent_k(K + [100], ACCURACY + [0.9], 0.85) == pytest.approx(
        40.0
    )


@pytest.mark.parametrize(
    "k, accuracy, message",
    [
        ([1, 2], [0.5], "one accuracy per k"),
        ([], [], "one accuracy per k"),
        ([2, 1], [0.1, 0.2], "strictly increasing"),
        ([0, 1], [0.1, 0.2], "positive"),
        ([1, 2], [0.1, math.nan], "finite"),
    ],
)
def test_zero_shot_equivalent_k_errors(k, accuracy, message):
    with pytest.raises(ValueError, match=message):
        zero_shot_equivalent_k(k, accuracy, 0.5)
