"""Zero-shot classification: a linear classifier whose weights are written in words (paper §3.1.2-§3.1.4).

A trained CLIP scores how well an image and a caption belong together. To classify an image among C
classes, write one caption per class ("a photo of a dog."), embed the captions with the text encoder,
and pick the class whose caption is most similar to the image. The C normalised text embeddings,
stacked as columns, are the weight matrix ``W [E, C]`` of an ordinary linear classifier without bias:
``logits = normalise(image_features) @ W``. Nothing is trained; the classifier is generated from the
class names.

Prompt ensembling (§3.1.4) builds each column from many templates ("a photo of a {}.", "a sketch of
the {}.", ...): every caption is embedded and L2-normalised, the embeddings of one class are averaged,
and the mean is normalised again. The average is taken in embedding space, not over predicted
probabilities, so an ensemble of 80 templates costs exactly one classifier at inference time.

Shapes: C classes, K templates, b classes per batch, L context length, E embedding dim.

The command line evaluation, ``python -m clip_ref.zeroshot`` (``zeroshot/__main__.py``), lives with the
evaluation loop in :mod:`clip_ref.evaluate`.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Union

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..tokenizer import tokenize

Template = Union[str, Callable[[str], str]]

__all__ = ["zero_shot_classifier", "check_template"]


def check_template(template: Template) -> None:
    """Raise ``ValueError`` unless ``template`` is a callable or a string with exactly one ``{}`` field.

    Only the bare ``{}`` is allowed: a named or numbered field (``{label}``, ``{0}``), a format spec
    (``{:>10}``) or a stray brace would make ``template.format(name)`` fail or quietly print something
    else. Write a literal brace as ``{{`` or ``}}``.
    """
    if callable(template):
        return
    if not isinstance(template, str):
        raise TypeError(f"a template must be a str or a callable, got {type(template).__name__}: {template!r}")
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as error:  # unbalanced braces
        raise ValueError(f"template {template!r} is not a valid format string: {error}") from None
    if fields != [("", "", None)]:
        raise ValueError(
            f"template {template!r} must contain exactly one bare '{{}}' where the class name goes "
            f"(found {len(fields)} replacement field(s))"
        )


def _fill(template: Template, classname: str) -> str:
    text = template(classname) if callable(template) else template.format(classname)
    if not isinstance(text, str):
        raise TypeError(f"template {template!r} returned {type(text).__name__}, not str, for {classname!r}")
    return text


@torch.no_grad()
def zero_shot_classifier(
    model: torch.nn.Module,
    classnames: Sequence[str],
    templates: Sequence[Template],
    batch_size: int = 32,
    device: Union[str, torch.device, None] = None,
    progress: bool = True,
) -> torch.Tensor:
    """Build the zero-shot weight matrix ``W [E, C]`` from class names and prompt templates.

    Args:
        model: a CLIP model (anything with ``encode_text`` and OpenAI's ``positional_embedding``).
        classnames: the C class names, in the order of the dataset's class indices.
        templates: K prompt templates, each a string with exactly one ``{}`` for the class name
            (``"a photo of a {}."``), or a callable ``f(classname) -> str``. Use ``["{}"]`` for the
            bare class name.
        batch_size: how many classes to embed per forward pass (each class contributes K captions,
            so a batch holds ``batch_size * K`` captions).
        device: where the captions are encoded and the result is returned; defaults to the model's device.
        progress: show a progress bar over the classes.

    Returns:
        ``W [E, C]`` in float32: column c is the normalised mean of the normalised embeddings of the K
        captions of class c. Score L2-normalised image features ``I [B, E]`` with ``I @ W -> [B, C]``.

    Raises:
        ValueError: an empty list, a malformed template (named in the message), or a caption too long
            for the model's context (raised by the tokenizer, naming the text).
    """
    if isinstance(classnames, str) or isinstance(templates, str):
        raise TypeError("classnames and templates must be sequences of strings, not a single string")
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
    with tqdm(total=len(classnames), unit="class", disable=not progress, leave=False, desc="classifier") as bar:
        for start in range(0, len(classnames), batch_size):
            batch = classnames[start : start + batch_size]
            # Class-major order: captions [c0 k0, c0 k1, ..., c1 k0, ...], so a reshape regroups them per class.
            texts = [_fill(template, name) for name in batch for template in templates]
            tokens = tokenize(texts, context_length=context_length).to(device)  # [b*K, L]
            embeddings = model.encode_text(tokens).float()  # [b*K, E]
            embeddings = F.normalize(embeddings, dim=-1)
            # Average directions, not lengths: each caption votes with a unit vector, and the mean is
            # projected back onto the sphere so every class column has the same norm.
            class_embeddings = embeddings.reshape(len(batch), num_templates, -1).mean(dim=1)  # [b, E]
            columns.append(F.normalize(class_embeddings, dim=-1))
            bar.update(len(batch))
    return torch.cat(columns).T.contiguous().to(device)  # [C, E] -> [E, C]

