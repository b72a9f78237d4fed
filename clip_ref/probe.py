"""Linear probes: logistic regression on frozen image features (paper §3.2, and the
few-shot probes of §3.1.5).

A linear probe measures how much a representation knows without changing it: the encoder
is frozen, its features are computed once, and only a linear classifier ``logits =
features @ weight.T + bias`` is trained on them. The paper uses such probes twice:

* §3.2 (representation learning): a probe trained on a whole training set, with its L2
  regularisation chosen on a validation split;
* §3.1.5 (Figures 6 and 7): k-shot probes, trained on k labelled examples per class,
  compared with the zero-shot classifier on the same features. Figure 7 turns the
  comparison into one number, the labelled examples per class the zero-shot classifier
  is worth: :func:`zero_shot_equivalent_k`.

The paper fits its probes with scikit-learn's L-BFGS logistic regression (appendix A.3).
This module solves the same problem in torch: with ``l2`` given, :func:`linear_probe`
minimises over ``weight [C, E]`` and ``bias [C]``

    sum_n cross_entropy(features[n] @ weight.T + bias, labels[n])
        + l2 / 2 * ||weight||^2

(multinomial, bias not penalised), which is
``sklearn.linear_model.LogisticRegression(C=1 / l2)`` for three or more classes. (For
two classes scikit-learn fits one binary weight vector instead of two rows; the
predictions agree with ``C = 2 / l2``.) The solve is deterministic: zero initial
weights, float64, full-batch L-BFGS with a strong-Wolfe line search, to a tight
tolerance (a mean gradient of 1e-7, where scikit-learn's default ``tol`` is 1e-4).

Without ``l2`` the regularisation is chosen on the validation split the way appendix A.3
describes: a "parametric binary search" over 1e-6 .. 1e6 that starts from every second
decade (1e-6, 1e-4, ..., 1e6) and halves its step around the best validation top-1 until
it reaches 8 steps per decade (the paper's 96 log-spaced values). Ties go to the
strongest regularisation. Shapes: N examples, E features, C classes.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LinearProbe", "linear_probe", "zero_shot_equivalent_k"]

# L-BFGS stops when the largest |gradient| of the objective is below N * GRAD_TOL, when
# an iteration changes the objective by less than N * LOSS_TOL (per example: the ftol
# scikit-learn gives scipy's L-BFGS-B), or after MAX_ITER iterations (the paper's
# budget: scikit-learn's max_iter=1000).
MAX_ITER = 1000
# tighter, L-BFGS can crawl for hundreds of iterations in the flat valleys of l2 ~ 1e-6
GRAD_TOL = 1e-7
LOSS_TOL = 64 * torch.finfo(torch.float64).eps

# The regularisation search works on a grid of eighths of a decade: l2 = 10 ** (i / 8),
# i in -48 .. 48.
STEPS_PER_DECADE = 8
L2_EXPONENTS = (-6, 6)  # l2 from 1e-6 to 1e6


@dataclass(frozen=True, eq=False)
class LinearProbe:
    """A fitted multinomial logistic-regression probe (float64, on the features'
    device)."""

    weight: torch.Tensor  # [C, E]
    bias: torch.Tensor  # [C]
    # the regularisation strength it was fitted with (given, or chosen on the validation
    # split)
    l2: float

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``[N, E]`` features -> ``[N, C]`` logits."""
        features = torch.as_tensor(features).to(self.weight)
        if features.ndim != 2 or features.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"features must be [N, {self.weight.shape[1]}], got shape "
                f"{tuple(features.shape)}"
            )
        return features @ self.weight.T + self.bias

    def predict_proba(self, features: torch.Tensor) -> torch.Tensor:
        """``[N, E]`` features -> ``[N, C]`` class probabilities."""
        return self.logits(features).softmax(dim=-1)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """``[N, E]`` features -> ``[N]`` predicted class indices."""
        return self.logits(features).argmax(dim=-1)


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    *,
    l2: float | None = None,
) -> LinearProbe:
    """Fit a logistic-regression probe on frozen features, with ``l2`` given or chosen
    on a validation split.

    ``train_features [N, E]``, ``train_labels [N]`` (integers; the classes are 0 .. C-1
    and each must have at least one example). Give either ``l2 > 0`` or a validation
    split (``val_features [N', E]``, ``val_labels [N']``), not both.

    When ``l2`` is chosen, the returned probe is the one fitted on the training split
    alone with the chosen ``l2``, exactly what ``linear_probe(train_features,
    train_labels, l2=probe.l2)`` returns. The paper's final step folds the validation
    split back into training; we leave that to the caller (refit on the concatenation
    with ``l2=probe.l2``), because folding it in would make a k-shot probe see more than
    k examples per class.
    """
    x = _as_features(train_features, "train_features")
    y = _as_labels(train_labels, "train_labels", x)
    if len(y) == 0:
        raise ValueError("train_features has no rows: a probe needs training examples")
    num_classes = int(y.max()) + 1
    missing = sorted(set(range(num_classes)) - set(y.unique().tolist()))
    if missing:
        raise ValueError(
            f"classes {missing} have no training example; train_labels must cover 0 .. "
            f"{num_classes - 1}"
        )
    if num_classes < 2:
        raise ValueError(
            "train_labels hold a single class; a classifier needs at least two"
        )

    if l2 is not None:
        if val_features is not None or val_labels is not None:
            raise ValueError(
                "the validation split is only used to choose l2: give l2 or a "
                "validation split, not both"
            )
        if (
            isinstance(l2, bool)
            or not isinstance(l2, numbers.Real)
            or not math.isfinite(l2)
            or l2 <= 0
        ):
            raise ValueError(f"l2 must be a finite number > 0, got {l2!r}")
        return _checked(_fit(x, y, num_classes, float(l2)))

    if val_features is None or val_labels is None:
        raise ValueError(
            "no l2 and no validation split: give l2, or val_features and val_labels to "
            "choose it"
        )
    vx = _as_features(val_features, "val_features")
    vy = _as_labels(val_labels, "val_labels", vx)
    if vx.shape[1] != x.shape[1]:
        raise ValueError(
            f"val_features have {vx.shape[1]} columns but train_features have "
            f"{x.shape[1]}"
        )
    if len(vy) == 0:
        raise ValueError(
            "val_features has no rows: choosing l2 needs validation examples"
        )
    if int(vy.max()) >= num_classes:
        raise ValueError(
            f"val_labels hold class {int(vy.max())}, but the training classes are 0 .. "
            f"{num_classes - 1}"
        )
    return _checked(_choose_l2(x, y, vx, vy, num_classes))


def _as_features(features, name: str) -> torch.Tensor:
    features = torch.as_tensor(features)
    if features.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [N, E], got shape {tuple(features.shape)}"
        )
    if features.dtype == torch.bool or features.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {features.dtype}")
    features = features.detach().to(torch.float64)
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return features


def _as_labels(labels, name: str, features: torch.Tensor) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D [N], got shape {tuple(labels.shape)}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(
            f"{name} must hold integer class indices, got dtype {labels.dtype}"
        )
    if len(labels) != len(features):
        raise ValueError(
            f"{name} has {len(labels)} labels but the features have {len(features)} "
            "rows"
        )
    if len(labels) and int(labels.min()) < 0:
        raise ValueError(
            f"{name} hold a negative class index ({int(labels.min())}); classes are 0 "
            ".. C-1"
        )
    return labels.to(device=features.device, dtype=torch.long)


def _fit(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float
) -> tuple[LinearProbe, bool]:
    """Minimise the summed cross-entropy + l2 / 2 ||weight||^2 from zero by full-batch
    L-BFGS.

    Returns the probe and whether L-BFGS converged (rather than running out of
    iterations)."""
    n, e = x.shape
    # Two changes of variable give the same minimiser and let L-BFGS converge in tens of
    # iterations rather than thousands. Centring the features decouples the bias from
    # the weight (the bias absorbs the mean: bias = centred_bias - weight @ mean).
    # Solving for u = weight / scale, with scale^2 the inverse of the objective's
    # typical curvature in the weight (mean squared feature + l2 / N), puts the weight
    # and the bias on the same footing, whether the features are L2-normalised or the
    # penalty dominates.
    mean = x.mean(dim=0)
    x = x - mean
    scale = 1 / math.sqrt(x.square().mean().item() + l2 / n)
    u = torch.zeros(num_classes, e, dtype=x.dtype, device=x.device, requires_grad=True)
    centred_bias = torch.zeros(
        num_classes, dtype=x.dtype, device=x.device, requires_grad=True
    )
    optimizer = torch.optim.LBFGS(
        [u, centred_bias],
        lr=1,
        max_iter=MAX_ITER,
        max_eval=2 * MAX_ITER,
        tolerance_grad=n * GRAD_TOL,
        tolerance_change=n * LOSS_TOL,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective():
        # Summed, not averaged: torch's L-BFGS skips curvature pairs with y.s < 1e-10,
        # and the mean's smaller pairs made it stall for hundreds of iterations under
        # weak regularisation.
        optimizer.zero_grad()
        weight = scale * u
        loss = (
            F.cross_entropy(x @ weight.T + centred_bias, y, reduction="sum")
            + l2 / 2 * weight.square().sum()
        )
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    state = optimizer.state[u]
    converged = state["n_iter"] < MAX_ITER and state["func_evals"] < 2 * MAX_ITER
    weight = scale * u.detach()
    return LinearProbe(weight, centred_bias.detach() - weight @ mean, l2), converged


def _checked(fit: tuple[LinearProbe, bool]) -> LinearProbe:
    probe, converged = fit
    if not converged:
        warnings.warn(
            f"L-BFGS used its {MAX_ITER} iterations without converging "
            f"(l2={probe.l2:.3g}); the probe is close to, not at, the optimum",
            RuntimeWarning,
            stacklevel=3,
        )
    return probe


def _choose_l2(x, y, vx, vy, num_classes: int) -> tuple[LinearProbe, bool]:
    """Appendix A.3's parametric binary search for l2, scored by validation top-1
    (correct count)."""
    lo, hi = (STEPS_PER_DECADE * d for d in L2_EXPONENTS)
    fits = {}  # i -> (validation correct, fit with l2 = 10 ** (i / 8))

    def visit(i: int) -> None:
        if lo <= i <= hi and i not in fits:
            fit = _fit(x, y, num_classes, 10.0 ** (i / STEPS_PER_DECADE))
            fits[i] = (int((fit[0].predict(vx) == vy).sum()), fit)

    def best() -> int:  # ties go to the strongest regularisation
        return max(fits, key=lambda i: (fits[i][0], i))

    step = 2 * STEPS_PER_DECADE  # start at 1e-6, 1e-4, ..., 1e6
    for i in range(lo, hi + 1, step):
        visit(i)
    while step > 1:
        step //= 2
        centre = best()
        visit(centre - step)
        visit(centre + step)
    return fits[best()][1]


def zero_shot_equivalent_k(
    k_values: Sequence[float], probe_top1: Sequence[float], zero_shot_top1: float
) -> float:
    """How many labelled examples per class the zero-shot classifier is worth (paper
    §3.1.5, Figure 7).

    ``k_values`` are the examples per class of the probes (strictly increasing, > 0; for
    the "all" probe, the mean examples per class of the full training set) and
    ``probe_top1`` their accuracies, in the same units as ``zero_shot_top1``. Like the
    paper, the probe's accuracy is interpolated linearly in log k between the measured
    points, and the answer is the smallest k where that curve reaches the zero-shot
    accuracy:

    * between two measured points ``a_i < zero_shot <= a_{i+1}``:
      ``k = k_i * (k_{i+1} / k_i) ** ((zero_shot - a_i) / (a_{i+1} - a_i))``;
    * equal to the first probe's accuracy: ``k_values[0]``;
    * below it (even the smallest probe beats zero-shot): ``0.0``, meaning "fewer than
    ``k_values[0]``";
    * above every probe (zero-shot beats them all): ``math.inf``.
    """
    k = [float(v) for v in k_values]
    acc = [float(a) for a in probe_top1]
    target = float(zero_shot_top1)
    if len(k) != len(acc) or not k:
        raise ValueError(
            f"need one accuracy per k, and at least one: got {len(k)} k values, "
            f"{len(acc)} accuracies"
        )
    if not all(math.isfinite(v) for v in k + acc + [target]):
        raise ValueError("k values and accuracies must be finite numbers")
    if k[0] <= 0 or any(b <= a for a, b in zip(k, k[1:])):
        raise ValueError(f"k values must be positive and strictly increasing, got {k}")
    if acc[0] >= target:
        return k[0] if acc[0] == target else 0.0
    for (k0, a0), (k1, a1) in zip(zip(k, acc), zip(k[1:], acc[1:])):
        if a0 < target <= a1:
            return k0 * (k1 / k0) ** ((target - a0) / (a1 - a0))
    return math.inf
