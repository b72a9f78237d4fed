"""Zero-shot evaluation: top-1 and top-5 accuracy of a CLIP classifier over a dataset
(paper §3.1.4-§3.1.5).

Evaluation is split in two steps, because the image side is the expensive one and does
not depend on the prompts: :func:`image_features` runs the image encoder once over a
dataset, and :func:`accuracy` scores any number of zero-shot classifiers (single prompt,
7 templates, 80 templates) against the stored features. :func:`evaluate` does both.

Class indices are the contract between a dataset and a classifier: target ``t`` must be
column ``t`` of ``W [E, C]``. :func:`image_folder` reads the two layouts of ImageNet's
validation images and gets that contract right for both:

* ImageNet-1k validation, one folder per WordNet id (``n01440764`` ...): sorted names
  are the standard class order 0..999.
* ImageNetV2, one folder per class index, named ``0`` .. ``999``. Sorted as strings
  these come out ``0, 1, 10, 100, 101, ...``, so torchvision's ``ImageFolder`` would
  silently assign folder ``10`` the label 2. Here a folder named by a number gets that
  number as its label.

The command line, ``python -m clip_ref.zeroshot``, lives with the classifier in
:mod:`clip_ref.zeroshot`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder
from tqdm import tqdm

__all__ = [
    "Features",
    "accuracy",
    "auroc",
    "evaluate",
    "f1_scores",
    "image_features",
    "image_folder",
]


@dataclass
class Features:
    """Normalised image features of a whole dataset, their labels, and how long they
    took."""

    features: torch.Tensor  # [N, E] float32, L2-normalised, on the CPU
    targets: torch.Tensor  # [N] int64 class indices
    seconds: float  # wall-clock time of the pass: data loading and encoding together

    @property
    def images_per_second(self) -> float:
        return len(self.targets) / self.seconds if self.seconds > 0 else math.inf


def _loader(
    data: Dataset | DataLoader, batch_size: int, workers: int, device: torch.device
) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


@torch.no_grad()
def image_features(
    model: torch.nn.Module,
    data: Dataset | DataLoader,
    batch_size: int = 256,
    workers: int = 0,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
) -> Features:
    """Encode every image of ``data`` (items ``(image [3, H, W], target)``) with
    ``model.encode_image``.

    Args:
        data: a ``Dataset`` (batched here, in order, with ``workers`` loader processes)
        or a ready ``DataLoader``.
        device: defaults to the model's device.
        amp: run the encoder under ``torch.autocast`` in float16; defaults to True on
            CUDA, False elsewhere. (Released weights converted to fp16 run in fp16
            either way.)
        progress: show a progress bar over the images.
    """
    device = (
        torch.device(device) if device is not None else next(model.parameters()).device
    )
    if amp is None:
        amp = device.type == "cuda"
    loader = _loader(data, batch_size, workers, device)
    try:
        total = len(loader.dataset)
    except TypeError:  # an iterable dataset without a length
        total = None
    dtype = getattr(model, "dtype", None) or next(model.parameters()).dtype

    features, targets = [], []
    start = time.perf_counter()
    with tqdm(
        total=total, unit="img", disable=not progress, leave=False, desc="images"
    ) as bar:
        for images, labels in loader:
            images = images.to(device, dtype=dtype, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                encoded = model.encode_image(images)  # [B, E]
            features.append(F.normalize(encoded.float(), dim=-1).cpu())
            targets.append(torch.as_tensor(labels, dtype=torch.long).cpu())
            bar.update(len(images))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if not features:
        raise ValueError("the dataset is empty")
    return Features(torch.cat(features), torch.cat(targets), seconds)


@torch.no_grad()
def accuracy(
    features: Features | torch.Tensor,
    targets: torch.Tensor | None,
    classifier: torch.Tensor,
    topk: Sequence[int] = (1, 5),
    chunk_size: int = 4096,
) -> dict[int, float]:
    """Top-k accuracy (fractions in [0, 1]) of the zero-shot ``classifier [E, C]`` on
    normalised features.

    ``features`` is a :class:`Features` (then ``targets`` must be None) or a tensor
    ``[N, E]`` with ``targets [N]``. A ``k`` larger than C counts every image as
    correct, as it must. A target outside ``0..C-1`` raises: it means the dataset's
    classes and the classifier's columns do not match.
    """
    if isinstance(features, Features):
        if targets is not None:
            raise ValueError(
                "pass targets either inside Features or separately, not both"
            )
        features, targets = features.features, features.targets
    if (
        features.ndim != 2
        or classifier.ndim != 2
        or features.shape[1] != classifier.shape[0]
    ):
        raise ValueError(
            "features [N, E] and classifier [E, C] do not fit: "
            f"{tuple(features.shape)} @ {tuple(classifier.shape)}"
        )
    if len(features) != len(targets):
        raise ValueError(f"{len(features)} features but {len(targets)} targets")
    num_classes = classifier.shape[1]
    if len(targets) and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(
            f"targets range over {int(targets.min())}..{int(targets.max())}, but the "
            f"classifier has {num_classes} classes: the dataset's class indices do not "
            "match the class names"
        )
    weights = classifier.float().cpu()
    correct = dict.fromkeys(topk, 0)
    for start in range(0, len(features), chunk_size):
        logits = features[start : start + chunk_size].float() @ weights  # [n, C]
        labels = targets[start : start + chunk_size]
        ranked = logits.topk(
            min(max(topk), num_classes), dim=-1
        ).indices  # [n, k], best first
        hits = ranked == labels[:, None]
        for k in topk:
            correct[k] += int(hits[:, :k].any(dim=-1).sum())
    return {k: correct[k] / len(targets) for k in topk}


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve of each column: the probability that a random
    positive scores above a random negative (ties count half; Mann-Whitney U).

    ``scores`` and ``positive`` (bool) are [N] or [N, C]; returns a float64 scalar or
    [C]. 0.5 is chance, 1 a perfect ranking. Raises ``ValueError`` for a column without
    positives or without negatives, where the area is undefined.
    """
    scores, positive = torch.as_tensor(scores), torch.as_tensor(positive).bool()
    if scores.shape != positive.shape or scores.ndim not in (1, 2):
        raise ValueError(
            "scores and positive must have the same shape, [N] or [N, C]; got "
            f"{tuple(scores.shape)} and {tuple(positive.shape)}"
        )
    columns = scores.reshape(len(scores), -1).double().T  # [C, N]
    labels = positive.reshape(len(positive), -1).T  # [C, N]
    areas = []
    for c, (s, y) in enumerate(zip(columns, labels)):
        p = int(y.sum())
        n = len(y) - p
        if p == 0 or n == 0:
            raise ValueError(
                f"column {c} has {p} positives and {n} negatives; the area under the "
                "ROC curve needs both"
            )
        # tied scores share the mean of their ranks (1-based)
        _, inverse, counts = torch.unique(s, return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        ranks = (ends - (counts - 1) / 2)[inverse]
        areas.append((ranks[y].sum() - p * (p + 1) / 2) / (p * n))
    areas = torch.stack(areas)
    return areas.reshape(()) if scores.ndim == 1 else areas


def f1_scores(predicted: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """F1 of each column of a multi-label prediction, ``2 TP / (2 TP + FP + FN)``:
    ``predicted`` and ``positive`` are bool [N, C]; returns float64 [C]. A column with
    no positive and none predicted scores 0, as in scikit-learn."""
    predicted, positive = torch.as_tensor(predicted).bool(), torch.as_tensor(positive)
    positive = positive.bool()
    if predicted.shape != positive.shape or predicted.ndim != 2:
        raise ValueError(
            "predicted and positive must both be [N, C], got "
            f"{tuple(predicted.shape)} and {tuple(positive.shape)}"
        )
    tp = (predicted & positive).sum(0).double()
    wrong = (predicted ^ positive).sum(0).double()  # FP + FN
    denominator = 2 * tp + wrong
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), 0.0)


def evaluate(
    model: torch.nn.Module,
    classifier: torch.Tensor,
    data: Dataset | DataLoader,
    **kwargs,
) -> dict:
    """Encode ``data`` and score ``classifier`` on it: ``{"top1", "top5", "images",
    "seconds", "images_per_second"}``.

    Keyword arguments go to :func:`image_features`. Accuracies are fractions in [0, 1].
    """
    result = image_features(model, data, **kwargs)
    scores = accuracy(result, None, classifier)
    return {
        "top1": scores[1],
        "top5": scores[5],
        "images": len(result.targets),
        "seconds": result.seconds,
        "images_per_second": result.images_per_second,
    }


def _numbered_classes(directory: str) -> tuple[list[str], dict[str, int]]:
    names = sorted(
        entry.name
        for entry in os.scandir(directory)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not names:
        raise FileNotFoundError(f"no class folders in {directory}")
    numeric = [name.isdecimal() for name in names]
    if any(numeric) and not all(numeric):
        odd = [name for name, is_number in zip(names, numeric) if not is_number][:5]
        raise ValueError(
            f"{directory} mixes numbered class folders with named ones ({odd}); the "
            "class indices are ambiguous"
        )
    # ImageNet-1k layout: WordNet ids, whose sorted order is the class order
    if not all(numeric):
        return names, {name: index for index, name in enumerate(names)}
    indices = {name: int(name) for name in names}
    if len(set(indices.values())) != len(indices):
        raise ValueError(
            f"{directory} has two folders for the same class number (e.g. '7' and "
            "'007')"
        )
    names.sort(key=int)
    return names, indices


class _IndexedImageFolder(ImageFolder):
    # Defined at module level so that data-loader workers started with "spawn" can
    # pickle it.
    def find_classes(self, directory):
        return _numbered_classes(directory)


def image_folder(root: str | os.PathLike, transform=None) -> ImageFolder:
    """An ImageFolder dataset whose targets are the classifier's column indices (see the
    module docstring).

    Folders named by numbers (ImageNetV2: ``0`` .. ``999``) are labelled with their
    number; otherwise the sorted folder names are numbered 0, 1, ... as ImageNet-1k's
    WordNet-id folders expect.
    """
    return _IndexedImageFolder(os.fspath(root), transform=transform)
