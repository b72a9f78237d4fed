"""Zero-shot classification: a linear classifier whose weights are written in words
(paper §3.1.2-§3.1.4).

A trained CLIP scores how well an image and a caption belong together. To classify an
image among C classes, write one caption per class ("a photo of a dog."), embed the
captions with the text encoder, and pick the class whose caption is most similar to the
image. The C normalised text embeddings, stacked as columns, are the weight matrix ``W
[E, C]`` of an ordinary linear classifier without bias: ``logits =
normalise(image_features) @ W``. Nothing is trained; the classifier is generated from
the class names.

Prompt ensembling (§3.1.4) builds each column from many templates ("a photo of a {}.",
"a sketch of the {}.", ...): every caption is embedded and L2-normalised, the embeddings
of one class are averaged, and the mean is normalised again. The average is taken in
embedding space, not over predicted probabilities, so an ensemble of 80 templates costs
exactly one classifier at inference time.

Shapes: C classes, K templates, b classes per batch, L context length, E embedding dim.

A softmax over the C columns answers "which one of these?": its probabilities sum to 1,
so it cannot say that an image shows two of the labels, or none of them.
:func:`label_scores` asks each label on its own, "this label, or not?", as a softmax
over two captions, the label's and a negative one ("a photo of something else", or "a
photo without a {}"); :func:`fit_label_thresholds` instead learns, from a few labelled
images, the similarity above which each label applies.

The command line, ``python -m clip_ref.zeroshot --model ViT-B/32 --data PATH``, loads a
model by name or checkpoint path, encodes an image folder once with
:mod:`clip_ref.evaluate`, and prints top-1 and top-5 for each template set.
"""

from __future__ import annotations

import argparse
import os
import string
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .device import default_device
from .evaluate import Features, accuracy, image_features, image_folder
from .imagenet import IMAGENET_CLASSNAMES, TEMPLATE_SETS
from .loading import load
from .tokenizer import tokenize

Template = str | Callable[[str], str]

__all__ = [
    "check_template",
    "fit_label_thresholds",
    "label_scores",
    "main",
    "zero_shot_classifier",
]


def check_template(template: Template) -> None:
    """Raise ``ValueError`` unless ``template`` is a callable or a string with exactly
    one ``{}`` field.

    Only the bare ``{}`` is allowed: a named or numbered field (``{label}``, ``{0}``), a
    format spec (``{:>10}``) or a stray brace would make ``template.format(name)`` fail
    or quietly print something else. Write a literal brace as ``{{`` or ``}}``.
    """
    if callable(template):
        return
    if not isinstance(template, str):
        raise TypeError(
            f"a template must be a str or a callable, got {type(template).__name__}: "
            f"{template!r}"
        )
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as error:  # unbalanced braces
        raise ValueError(
            f"template {template!r} is not a valid format string: {error}"
        ) from None
    if fields != [("", "", None)]:
        raise ValueError(
            f"template {template!r} must contain exactly one bare '{{}}' where the "
            f"class name goes (found {len(fields)} replacement field(s))"
        )


def _fill(template: Template, classname: str) -> str:
    text = template(classname) if callable(template) else template.format(classname)
    if not isinstance(text, str):
        raise TypeError(
            f"template {template!r} returned {type(text).__name__}, not str, for "
            f"{classname!r}"
        )
    return text


@torch.no_grad()
def zero_shot_classifier(
    model: torch.nn.Module,
    classnames: Sequence[str],
    templates: Sequence[Template],
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Build the zero-shot weight matrix ``W [E, C]`` from class names and prompt
    templates.

    Args:
        model: a CLIP model (anything with ``encode_text`` and OpenAI's
        ``positional_embedding``).
        classnames: the C class names, in the order of the dataset's class indices.
        templates: K prompt templates, each a string with exactly one ``{}`` for the
            class name (``"a photo of a {}."``), or a callable ``f(classname) -> str``.
            Use ``["{}"]`` for the bare class name.
        batch_size: how many classes to embed per forward pass (each class contributes K
            captions, so a batch holds ``batch_size * K`` captions).
        device: where the captions are encoded and the result is returned; defaults to
        the model's device.
        progress: show a progress bar over the classes.

    Returns:
        ``W [E, C]`` in float32: column c is the normalised mean of the normalised
        embeddings of the K captions of class c. Score L2-normalised image features ``I
        [B, E]`` with ``I @ W -> [B, C]``.

    Raises:
        ValueError: an empty list, a malformed template (named in the message), or a
            caption too long for the model's context (raised by the tokenizer, naming
            the text).
    """
    if isinstance(classnames, str) or isinstance(templates, str):
        raise TypeError(
            "classnames and templates must be sequences of strings, not a single string"
        )
    classnames, templates = list(classnames), list(templates)
    if not classnames:
        raise ValueError("classnames is empty")
    if not templates:
        raise ValueError("templates is empty")
    for template in templates:
        check_template(template)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if device is None:
        device = next(model.parameters()).device
    context_length = model.positional_embedding.shape[0]
    num_templates = len(templates)  # K

    columns = []
    with tqdm(
        total=len(classnames),
        unit="class",
        disable=not progress,
        leave=False,
        desc="classifier",
    ) as bar:
        for start in range(0, len(classnames), batch_size):
            batch = classnames[start : start + batch_size]
            # Class-major order: captions [c0 k0, c0 k1, ..., c1 k0, ...], so a reshape
            # regroups them per class.
            texts = [_fill(template, name) for name in batch for template in templates]
            # [b*K, L]
            tokens = tokenize(texts, context_length=context_length).to(device)
            embeddings = model.encode_text(tokens).float()  # [b*K, E]
            embeddings = F.normalize(embeddings, dim=-1)
            # Average directions, not lengths: each caption votes with a unit vector,
            # and the mean is projected back onto the sphere so every class column has
            # the same norm.
            # [b, E]
            class_embeddings = embeddings.reshape(len(batch), num_templates, -1).mean(
                dim=1
            )
            columns.append(F.normalize(class_embeddings, dim=-1))
            bar.update(len(batch))
    return torch.cat(columns).T.contiguous().to(device)  # [C, E] -> [E, C]


def label_scores(
    image_features: torch.Tensor,
    classifier: torch.Tensor,
    negative: torch.Tensor,
    logit_scale: float | torch.Tensor = 100.0,
) -> torch.Tensor:
    """The probability that each label applies to each image, each label on its own.

    For label c, a softmax over two captions, the label's (column c of ``classifier``)
    and a negative one (column c of ``negative``, or its single column for every
    label), with CLIP's logit scale: ``sigmoid(scale * (cos(I, W_c) - cos(I, N_c)))``.
    Unlike a softmax over the C labels, the scores need not sum to 1: an image can
    have several labels, or none (open-set: "none of these").

    Args:
        image_features: [B, E] (normalised here).
        classifier: ``W [E, C]`` from :func:`zero_shot_classifier`.
        negative: [E, C], one negative caption per label (``"a photo without a
            {}."``), or [E, 1], one generic negative (``"a photo of something
            else."``), also from :func:`zero_shot_classifier`.
        logit_scale: the model's multiplier, ``model.logit_scale.exp()`` (100 for
            the released models).

    Returns:
        [B, C] float32 probabilities.
    """
    if classifier.ndim != 2 or negative.ndim != 2:
        raise ValueError(
            "classifier and negative must be [E, C] and [E, C] or [E, 1], got "
            f"{tuple(classifier.shape)} and {tuple(negative.shape)}"
        )
    if negative.shape[0] != classifier.shape[0] or negative.shape[1] not in (
        1,
        classifier.shape[1],
    ):
        raise ValueError(
            f"negative must be [E, C] or [E, 1] for a classifier [E, C] = "
            f"{list(classifier.shape)}, got {list(negative.shape)}"
        )
    image_features = F.normalize(image_features.float(), dim=-1)  # [B, E]
    positive_cosine = image_features @ classifier.float()  # [B, C]
    negative_cosine = image_features @ negative.float()  # [B, C] or [B, 1]
    # softmax([a, b])[0] = sigmoid(a - b)
    return torch.sigmoid(logit_scale * (positive_cosine - negative_cosine))


def fit_label_thresholds(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Per-label thresholds fitted on a few labelled images: for each label, the
    threshold on ``scores`` that maximises that label's F1 on them.

    ``scores`` [N, C] (cosine similarities ``I @ W``, or :func:`label_scores`) and
    ``positive`` [N, C] bool. Each threshold lies halfway between the lowest score it
    accepts and the highest it rejects, so that new images a little either side are
    treated alike; predict with ``scores >= thresholds``. Returns [C], in the scores'
    dtype.
    """
    scores, positive = torch.as_tensor(scores), torch.as_tensor(positive).bool()
    if scores.shape != positive.shape or scores.ndim != 2:
        raise ValueError(
            "scores and positive must both be [N, C], got "
            f"{tuple(scores.shape)} and {tuple(positive.shape)}"
        )
    thresholds = []
    for c in range(scores.shape[1]):
        s, order = scores[:, c].sort(descending=True)
        y = positive[order, c].double()
        if not y.any():  # no example of the label: accept nothing seen
            thresholds.append(s[0] + 1)
            continue
        # accepting the top k: TP = cumsum(y)[k-1], FP + FN = k - TP + (P - TP)
        tp = y.cumsum(0)
        k = torch.arange(1, len(s) + 1, dtype=torch.float64)
        f1 = 2 * tp / (k + y.sum())
        # a cut is only possible between two different scores (or below all of them)
        distinct = torch.cat([s[:-1] > s[1:], torch.tensor([True])])
        best = int(torch.where(distinct, f1, -1.0).argmax())
        below = s[best + 1] if best + 1 < len(s) else s[best] - 1
        thresholds.append((s[best] + below) / 2)
    return torch.stack(thresholds).to(scores.dtype)


# ---------------------------------------------------------------- command line


def _read_classnames(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        names = [line.strip() for line in handle if line.strip()]
    if not names:
        raise ValueError(f"{path} holds no class names")
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clip_ref.zeroshot",
        description="Zero-shot top-1/top-5 accuracy of a CLIP model on an image folder "
        "(ImageNet val or ImageNetV2).",
    )
    parser.add_argument(
        "--model",
        default="ViT-B/32",
        help="a released model name or a local checkpoint path",
    )
    parser.add_argument(
        "--data", required=True, help="root of an ImageFolder: one folder per class"
    )
    parser.add_argument(
        "--templates",
        nargs="+",
        default=["80"],
        choices=list(TEMPLATE_SETS),
        help="template sets to compare: 'name' (bare class name), '1' ('a photo of a "
        "{}.'), '7', '80'",
    )
    parser.add_argument(
        "--classnames",
        help="text file with one class name per line (default: ImageNet's 1000)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--device", default=str(default_device()))
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars"
    )
    return parser


def _check_layout(dataset, classnames: Sequence[str]) -> None:
    numbered = all(name.isdecimal() for name in dataset.classes)
    if numbered:
        largest = max(dataset.class_to_idx.values())
        if largest >= len(classnames):
            raise ValueError(
                f"folder {largest} is out of range for {len(classnames)} class names"
            )
    elif len(dataset.classes) != len(classnames):
        raise ValueError(
            f"{len(dataset.classes)} class folders but {len(classnames)} class names: "
            "with named folders the sorted folder order is the class order, so every "
            "class needs its folder"
        )


def run(args: argparse.Namespace) -> tuple[list[dict], Features]:
    """Evaluate as the command line asks: one result row per template set, and the
    image features."""
    device = torch.device(args.device)
    classnames = (
        _read_classnames(args.classnames)
        if args.classnames
        else list(IMAGENET_CLASSNAMES)
    )
    model, preprocess = load(args.model, device=device)
    dataset = image_folder(args.data, transform=preprocess)
    _check_layout(dataset, classnames)
    features = image_features(
        model,
        dataset,
        batch_size=args.batch_size,
        workers=args.workers,
        device=device,
        progress=not args.no_progress,
    )
    rows = []
    for key in args.templates:
        templates = TEMPLATE_SETS[key]
        classifier = zero_shot_classifier(
            model, classnames, templates, device=device, progress=not args.no_progress
        )
        scores = accuracy(features, None, classifier)
        rows.append(
            {
                "templates": key,
                "count": len(templates),
                "top1": scores[1],
                "top5": scores[5],
            }
        )
    return rows, features


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = _parser().parse_args(argv)
    rows, features = run(args)
    print(
        f"model {args.model} | data {args.data} | {len(features.targets)} images | "
        f"device {args.device}"
    )
    print(f"{'templates':<10} {'count':>5} {'top-1 %':>8} {'top-5 %':>8}")
    for row in rows:
        print(
            f"{row['templates']:<10} {row['count']:>5} {100 * row['top1']:>8.2f} "
            f"{100 * row['top5']:>8.2f}"
        )
    print(
        f"image encoding: {features.seconds:.1f} s, {features.images_per_second:.1f} "
        "images/s"
    )
    return rows


if __name__ == "__main__":
    main()
