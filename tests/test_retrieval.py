"""Recall@K of image-text retrieval, counted as the paper's retrieval tables count it
(several captions per image), against a brute-force count and hand-made cases."""

from __future__ import annotations

import pytest
import torch

from clip_ref.retrieval import retrieval_recall


def _brute_force(images, texts, text_to_image, ks):
    """Recall@K by sorting every query's candidates, one query at a time, the plain
    way."""
    images = [v / v.norm() for v in images.double()]
    texts = [v / v.norm() for v in texts.double()]
    text_to_image = [int(i) for i in text_to_image]
    t2i, i2t = {}, {}
    for k in ks:
        hits = 0
        for t, text in enumerate(texts):
            ranked = sorted(range(len(images)), key=lambda i: -float(text @ images[i]))
            hits += text_to_image[t] in ranked[:k]
        t2i[k] = hits / len(texts)
        hits = queries = 0
        for i, image in enumerate(images):
            own = {t for t, owner in enumerate(text_to_image) if owner == i}
            if not own:
                continue  # no caption: no right answer, not a query
            queries += 1
            ranked = sorted(range(len(texts)), key=lambda t: -float(image @ texts[t]))
            hits += bool(own & set(ranked[:k]))
        i2t[k] = hits / queries
    return {"image_to_text": i2t, "text_to_image": t2i}


@pytest.mark.parametrize("seed", range(4))
def test_recall_equals_a_brute_force_count_with_several_captions_per_image(seed):
    g = torch.Generator().manual_seed(seed)
    n_images, dim = 15, 8
    # 0 to 4: some images have none
    captions_per_image = torch.randint(0, 5, (n_images,), generator=g)
    captions_per_image[0] = 3
    text_to_image = torch.repeat_interleave(torch.arange(n_images), captions_per_image)
    # any caption order
    text_to_image = text_to_image[torch.randperm(len(text_to_image), generator=g)]
    # varied norms
    images = torch.randn(n_images, dim, generator=g) * (
        0.5 + torch.rand(n_images, 1, generator=g)
    )
    # Captions near their image, so that recall is neither 0 nor 1 everywhere.
    texts = images[text_to_image] + 1.1 * torch.randn(
        len(text_to_image), dim, generator=g
    )
    ks = (1, 2, 5, 10, 100)
    result = retrieval_recall(images, texts, text_to_image, ks)
    expected = _brute_force(images, texts, text_to_image, ks)
    for direction in expected:
        assert result[direction].keys() == set(ks)
        for k in ks:
            assert result[direction][k] == pytest.approx(
                expected[direction][k], abs=1e-12
            ), (direction, k)
    # not a trivial case: some misses, some hits, in both directions
    for recalls in result.values():
        assert any(0 < recall < 1 for recall in recalls.values())
    # k beyond the candidates
    assert result["text_to_image"][100] == result["image_to_text"][100] == 1.0


def test_hand_case_any_caption_counts_and_captionless_images_are_distractors():
    # Image 0 points along x, image 1 along y, image 2 (no caption) along -x: a
    # distractor.
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # Caption 0 (image 0) is nearest image 1; caption 1 (image 0) nearest image 0;
    # caption 2 (image 1) is nearest image 2, then image 1.
    texts = torch.tensor([[0.1, 1.0], [1.0, 0.2], [-1.0, 0.5]])
    text_to_image = [0, 0, 1]
    result = retrieval_recall(images, texts, text_to_image, ks=(1, 2, 3))
    # text -> image: caption 1 at rank 1; caption 0 at rank 2; caption 2 at rank 2 (the
    # distractor first).
    assert result["text_to_image"] == pytest.approx({1: 1 / 3, 2: 1.0, 3: 1.0})
    # image -> text: image 0's nearest text is caption 1, its own (hit at 1, although
    # caption 0 is far); image 1's nearest texts are caption 0, then caption 2 (hit at
    # 2). Image 2 is no query.
    assert result["image_to_text"] == pytest.approx({1: 0.5, 2: 1.0, 3: 1.0})


def test_similarity_is_cosine_in_fp32_and_ties_count_for_the_query():
    g = torch.Generator().manual_seed(0)
    images, texts = torch.randn(6, 4, generator=g), torch.randn(9, 4, generator=g)
    text_to_image = torch.arange(9) % 6
    reference = retrieval_recall(images, texts, text_to_image)
    scaled = retrieval_recall(
        images * torch.arange(1, 7)[:, None], 5 * texts, text_to_image
    )
    assert scaled == reference  # lengths do not matter
    assert (
        retrieval_recall(images.half(), texts.half(), text_to_image).keys()
        == reference.keys()
    )
    # Two identical images: each caption's image ties with the other image, and a tie
    # counts as found. From the images' side there is no tie: the text nearest to both
    # belongs to one of them only.
    same = retrieval_recall(
        torch.ones(2, 3), torch.randn(4, 3, generator=g), [0, 1, 0, 1], ks=(1,)
    )
    assert same == {"image_to_text": {1: 0.5}, "text_to_image": {1: 1.0}}


def test_perfect_features_give_recall_one_as_python_floats():
    result = retrieval_recall(
        torch.eye(3), torch.eye(3), torch.tensor([0, 1, 2]), ks=(1,)
    )
    assert result == {"image_to_text": {1: 1.0}, "text_to_image": {1: 1.0}}
    assert isinstance(result["image_to_text"][1], float)


@pytest.mark.parametrize(
    "images, texts, text_to_image, ks, error, message",
    [
        (
            torch.randn(3, 4),
            torch.randn(2, 5),
            [0, 1],
            (1,),
            ValueError,
            "4 dimensions and text features 5",
        ),
        (
            torch.randn(3),
            torch.randn(2, 3),
            [0, 1],
            (1,),
            ValueError,
            "image_features must be a 2-d float",
        ),
        (
            torch.randn(3, 4),
            torch.randint(0, 9, (2, 4)),
            [0, 1],
            (1,),
            ValueError,
            "text_features must be a 2-d float",
        ),
        (
            torch.randn(0, 4),
            torch.randn(2, 4),
            [0, 1],
            (1,),
            ValueError,
            "image_features is empty",
        ),
        (
            torch.randn(3, 4),
            torch.randn(2, 4),
            [0, 1, 2],
            (1,),
            ValueError,
            r"one image index per caption, shape \[2\]",
        ),
        (
            torch.randn(3, 4),
            torch.randn(2, 4),
            [0, 3],
            (1,),
            IndexError,
            r"text_to_image\[1\] = 3 is not an image index",
        ),
        (
            torch.randn(3, 4),
            torch.randn(2, 4),
            [-1, 0],
            (1,),
            IndexError,
            r"text_to_image\[0\] = -1",
        ),
        (
            torch.randn(3, 4),
            torch.randn(2, 4),
            [0.0, 1.0],
            (1,),
            TypeError,
            "integer image indices",
        ),
        (
            torch.randn(3, 4),
            torch.randn(2, 4),
            [True, False],
            (1,),
            TypeError,
            "integer image indices",
        ),
        (
            torch.randn(3, 4),
            torch.randn(2, 4),
            [0, 1],
            (0, 5),
            ValueError,
            "positive integers",
        ),
        (
            torch.randn(3, 4),
            torch.randn(2, 4),
            [0, 1],
            (),
            ValueError,
            "positive integers",
        ),
        (
            torch.full((3, 4), float("nan")),
            torch.randn(2, 4),
            [0, 1],
            (1,),
            ValueError,
            "NaN",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(
    images, texts, text_to_image, ks, error, message
):
    with pytest.raises(error, match=message):
        retrieval_recall(images, texts, text_to_image, ks)
