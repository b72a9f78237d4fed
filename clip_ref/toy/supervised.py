"""The supervised baseline of the robustness study: CLIP's image encoder trained on
class labels (paper §3.3).

The paper compares zero-shot CLIP with models trained the usual way: an image encoder
and a linear classifier over a dataset's classes, trained together with cross-entropy on
its labelled images. :class:`LabelClassifier` is that model with the very image encoder
a CLIP of the same configuration has (built, and initialised, by
:class:`~clip_ref.model.CLIP`), and :func:`train_classifier` trains it with the recipe
of :mod:`clip_ref.train` (AdamW with the paper's decay rule, warm-up then cosine,
gradient clipping), so that the two kinds of model differ in their supervision only.

Effective robustness (Taori et al., 2020), the measure the paper uses, compares a
model's accuracy under a shift with what models trained on the labelled dataset reach
there at the same accuracy on it: :func:`robustness_trend` fits that baseline, a line on
logit-scaled axes through the accuracies of several supervised models, and
:func:`effective_robustness` is a model's distance above it.

Shapes: N images, R resolution, C classes, E the image encoder's output dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import CLIPConfig
from ..model import CLIP
from ..train import TrainConfig
from .in_memory import train_on_tensors

__all__ = [
    "LabelClassifier",
    "classifier_top1",
    "effective_robustness",
    "robustness_trend",
    "train_classifier",
]


class LabelClassifier(nn.Module):
    """The image encoder of ``CLIP(config)`` and a linear head: images [N, 3, R, R]
    -> logits [N, C]."""

    def __init__(self, config: CLIPConfig, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(
                f"a classifier needs at least 2 classes, got {num_classes}"
            )
        self.visual = CLIP(
            config
        ).visual  # CLIP's own construction and initialisation; the text side is dropped
        self.head = nn.Linear(config.embed_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.visual(images))


def train_classifier(
    model: LabelClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    *,
    progress: bool = True,
) -> dict:
    """Train ``model`` with cross-entropy on ``images`` [N, 3, R, R] (normalised) and
    ``labels`` [N].

    With :func:`clip_ref.toy.in_memory.train_on_tensors`: the recipe of
    :func:`clip_ref.train.train` in one process, batches from a seeded shuffle per
    epoch. Deterministic for a given seed, data and thread count. Returns ``{"steps",
    "final_loss", "train_seconds"}``; the model ends in eval mode.
    """
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"expected images [N, 3, R, R] and labels [N], got {tuple(images.shape)} "
            f"and {tuple(labels.shape)}"
        )
    # cross_entropy would read float labels as class probabilities
    if labels.dtype.is_floating_point:
        raise TypeError(f"labels must be integer class indices, got {labels.dtype}")
    num_classes = model.head.out_features
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}, got "
            f"{labels.min()}..{labels.max()}"
        )
    summary = train_on_tensors(
        model,
        lambda x, y: F.cross_entropy(model(x), y),
        images,
        labels,
        config,
        progress=progress,
    )
    return {key: summary[key] for key in ("steps", "final_loss", "train_seconds")}


@torch.no_grad()
def classifier_top1(
    model: LabelClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 512,
) -> float:
    """Top-1 accuracy of ``model`` on normalised ``images`` [N, 3, R, R] with
    ``labels`` [N]."""
    correct = sum(
        (model(images[i : i + batch_size]).argmax(dim=-1) == labels[i : i + batch_size])
        .sum()
        .item()
        for i in range(0, len(labels), batch_size)
    )
    return correct / len(labels)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def robustness_trend(
    original: Sequence[float], shifted: Sequence[float]
) -> Callable[[float], float]:
    """The baseline of effective robustness: a least-squares line through the points
    ``(logit(original), logit(shifted))`` of several models trained on the labelled
    dataset, returned as a function from an accuracy on the original distribution to the
    accuracy under the shift such models reach with it.

    Accuracies are fractions strictly between 0 and 1 (a logit must be finite); at least
    two models, with different accuracies on the original distribution, fix a line.
    """
    if len(original) != len(shifted):
        raise ValueError(
            f"{len(original)} original accuracies but {len(shifted)} shifted ones"
        )
    if len(original) < 2:
        raise ValueError("a trend needs at least 2 models")
    for p in (*original, *shifted):
        if not 0 < p < 1:
            raise ValueError(
                "accuracies must lie strictly between 0 and 1 for the logit scale, "
                f"got {p}"
            )
    x = torch.tensor([_logit(p) for p in original], dtype=torch.float64)
    y = torch.tensor([_logit(p) for p in shifted], dtype=torch.float64)
    spread = ((x - x.mean()) ** 2).sum()
    if spread == 0:
        raise ValueError(
            "the models all have the same original accuracy; a trend needs different "
            "ones"
        )
    slope = (((x - x.mean()) * (y - y.mean())).sum() / spread).item()
    intercept = (y.mean() - slope * x.mean()).item()

    def expected(accuracy: float) -> float:
        if not 0 < accuracy < 1:
            raise ValueError(
                f"an accuracy strictly between 0 and 1 is needed, got {accuracy}"
            )
        return 1 / (1 + math.exp(-(slope * _logit(accuracy) + intercept)))

    expected.slope, expected.intercept = slope, intercept
    return expected


def effective_robustness(
    original: float, shifted: float, trend: Callable[[float], float]
) -> float:
    """Accuracy under the shift above what the trend of supervised models predicts at
    ``original`` (Taori et al., 2020): positive for a model more robust than its
    accuracy on the original suggests."""
    return shifted - trend(original)
