"""Searching with the embeddings: image-text retrieval and its Recall@K (paper §3.1.4
and Table 13).

Once images and captions live in one space, search is a nearest-neighbour lookup: a
caption retrieves the images most similar to it (text -> image, "image retrieval" in the
paper's tables) and an image retrieves the captions most similar to it (image -> text,
"text retrieval"). Zero-shot retrieval on Flickr30k and MSCOCO is reported as Recall@K:
the share of queries whose right answer is among the K results ranked highest. These
benchmarks have several captions per image (five, mostly), which sets how a hit is
counted in each direction:

- text -> image: each caption is a query, and it has one right image, the one it
describes;
- image -> text: each image is a query, and a hit is ANY of its captions among the top K
texts.

Shapes: B images, B' texts (captions), E embedding dim.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["retrieval_recall"]


@torch.no_grad()
def retrieval_recall(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: Sequence[int] | torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> dict:
    """Recall@K of retrieval in both directions, counted as the paper's retrieval tables
    count it.

    Args:
        image_features: [B, E], one row per image (the search gallery for text queries).
        text_features: [B', E], one row per caption.
        text_to_image: [B'] integers; ``text_to_image[t]`` is the index of the image
            that caption ``t`` describes. An image may have several captions, or none.
        ks: the K values, positive integers.

    Returns:
        ``{"image_to_text": {k: recall}, "text_to_image": {k: recall}}``, recalls as
        floats in [0, 1]. text -> image: the share of captions whose image is among the
        k images most similar to them. image -> text: the share of images with at least
        one of their captions among the k most similar captions. Images without a
        caption have no right answer: they are left out of the image -> text queries
        but stay in the gallery that captions search, as distractors.

    Similarity is cosine (both sides are normalised, in fp32). A query counts as a hit
    at k when fewer than k candidates are strictly more similar than its best right
    answer, so ties count in the query's favour and the result never depends on how a
    sort orders equal scores; a k larger than the number of candidates counts every
    query as a hit. The full [B, B'] similarity matrix is built in one piece (5,000
    images by 25,000 captions, MSCOCO's test set, take 0.5 GB).
    """
    image_features, text_features, text_to_image, ks = _checked(
        image_features, text_features, text_to_image, ks
    )
    images = F.normalize(image_features.float(), dim=-1)
    texts = F.normalize(text_features.float(), dim=-1)
    similarity = images @ texts.T  # [B, B']: cosine of image i and caption t
    captions = torch.arange(len(texts), device=similarity.device)

    # text -> image: how many images each caption prefers to its own.
    right = similarity[text_to_image, captions]  # [B']
    text_rank = (similarity > right[None, :]).sum(dim=0)  # [B']

    # image -> text: how many captions each image prefers to its best own caption.
    best = torch.full((len(images),), -torch.inf, device=similarity.device)
    # [B]; -inf: no caption
    best = best.scatter_reduce(0, text_to_image, right, reduce="amax")
    captioned = torch.isfinite(best)
    # [number of captioned images]
    image_rank = (similarity[captioned] > best[captioned, None]).sum(dim=1)

    return {
        "image_to_text": {
            k: (image_rank < k).sum().item() / len(image_rank) for k in ks
        },
        "text_to_image": {k: (text_rank < k).sum().item() / len(text_rank) for k in ks},
    }


def _checked(image_features, text_features, text_to_image, ks):
    """The inputs, validated (with errors that say what is wrong), text_to_image as a
    long tensor."""
    for name, features in (
        ("image_features", image_features),
        ("text_features", text_features),
    ):
        if (
            not isinstance(features, torch.Tensor)
            or features.ndim != 2
            or not features.is_floating_point()
        ):
            shape = (
                list(features.shape)
                if isinstance(features, torch.Tensor)
                else type(features).__name__
            )
            raise ValueError(
                f"{name} must be a 2-d float tensor, one row per item; got {shape}"
            )
        if len(features) == 0:
            raise ValueError(f"{name} is empty")
        if not torch.isfinite(
            features
        ).all():  # a NaN similarity would compare as no better than the answer
            raise ValueError(f"{name} contains NaN or infinite values")
    if image_features.shape[1] != text_features.shape[1]:
        raise ValueError(
            f"image features have {image_features.shape[1]} dimensions and text "
            f"features {text_features.shape[1]}; they must come from the same model"
        )
    index = torch.as_tensor(text_to_image)
    if index.dtype == torch.bool or index.is_floating_point() or index.is_complex():
        raise TypeError(
            f"text_to_image must hold integer image indices, got dtype {index.dtype}"
        )
    if index.shape != (len(text_features),):
        raise ValueError(
            "text_to_image must have one image index per caption, shape "
            f"[{len(text_features)}]; got {list(index.shape)}"
        )
    outside = (index < 0) | (index >= len(image_features))
    if outside.any():
        t = int(outside.nonzero()[0])
        raise IndexError(
            f"text_to_image[{t}] = {int(index[t])} is not an image index: there are "
            f"{len(image_features)} images (0 to {len(image_features) - 1})"
        )
    ks = tuple(ks)
    if not ks or any(
        isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 for k in ks
    ):
        raise ValueError(f"ks must be positive integers, got {ks}")
    ks = tuple(int(k) for k in ks)
    return (
        image_features,
        text_features.to(image_features.device),
        index.to(image_features.device).long(),
        ks,
    )
