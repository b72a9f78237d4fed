"""The toy CLIP's web-like pre-training world (clip_ref.toy.data): captions written as
alt-text is, images drawn in a mix of looks, and the two shifts no training set has."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from clip_ref.tokenizer import EOT_TOKEN_ID
from clip_ref.toy import data as T

N = 2000


@pytest.fixture(scope="module")
def clean():
    return T.ToyCaptions("train", size=N, seed=5)


@pytest.fixture(scope="module")
def web():
    return T.ToyCaptions("train", size=N, seed=5, captions="web", images="web")


def _words(caption: str) -> set:
    return set(caption.replace(",", " ").replace(":", " ").split())


def test_the_web_world_shows_the_clean_worlds_objects(clean, web):
    for attribute in ("labels", "shape_ids", "colour_ids", "size_ids", "position_ids"):
        assert torch.equal(getattr(clean, attribute), getattr(web, attribute))
    assert set(web.labels.tolist()) <= {T.COMBINATIONS.index(c) for c in T.SEEN}
    again = T.ToyCaptions("train", size=N, seed=5, captions="web", images="web")
    assert again.captions == web.captions and torch.equal(again.images, web.images)


def test_web_images_are_drawn_in_the_stated_mix_of_looks(clean, web):
    shares = Counter(web.looks)
    assert set(shares) == set(T.WEB_IMAGE_MIX)
    for look, share in T.WEB_IMAGE_MIX.items():
        assert abs(shares[look] / N - share) < 0.03, (look, shares[look])
    # Each image is its clean self, or that image with its shift (the pixel-exact
    # ones are compared; noise is drawn from the web world's own stream).
    for look in ("clean", "blur", "faded", "light background"):
        shift = None if look == "clean" else look
        shifted = T.ToyCaptions("train", size=N, seed=5, shift=shift)
        chosen = torch.tensor([x == look for x in web.looks])
        assert torch.equal(web.images[chosen], shifted.images[chosen]), look
    noisy = torch.tensor([x == "noise" for x in web.looks])
    difference = web.images[noisy].float() - clean.images[noisy].float()
    assert 25 < difference.std() < 45
    only_looks = T.ToyCaptions("train", size=N, seed=5, images="web")
    assert only_looks.captions == clean.captions  # images and captions are two knobs


def test_web_captions_vary_leave_things_out_and_never_misname(clean, web):
    assert len(set(web.captions)) > len(set(clean.captions))

    def says_both(data, i):  # the class name's two words, as the prompts say them
        words = _words(data.captions[i])
        return {T.SHAPES[data.shape_ids[i]], T.COLOURS[data.colour_ids[i]]} <= words

    assert all(says_both(clean, i) for i in range(N))  # a template caption is a label
    assert sum(says_both(web, i) for i in range(N)) / N < 0.5  # alt-text is not
    synonyms = {**T._WEB_SHAPE_WORDS, **T._WEB_COLOUR_WORDS}
    unrelated = 0
    for i, caption in enumerate(web.captions):
        shape = T.SHAPES[web.shape_ids[i]]
        colour = T.COLOURS[web.colour_ids[i]]
        words = _words(caption)
        if caption in T._WEB_UNRELATED_TEXTS:
            unrelated += 1
            continue
        named = {
            name
            for name, options in synonyms.items()
            if any(set(option.split()) <= words for option in options)
        }
        assert named & {shape, colour}, caption  # it names the shape or the colour
        wrong = named - {shape, colour}
        # "heart" is also a place ("in the heart"), "plus" is part of "plus sign"
        assert wrong <= {"heart"} and (
            not wrong or T.POSITIONS[web.position_ids[i]] == "centre"
        ), (caption, wrong)
    assert 0.02 < unrelated / N < 0.09
    # the usual words stay the commonest
    counts = Counter(word for c in web.captions for word in _words(c))
    assert counts["red"] > counts["scarlet"] + counts["crimson"]


def test_web_captions_fit_the_context_and_mention_only_the_look_they_have(web):
    assert (web.tokens.max(dim=-1).values == EOT_TOKEN_ID).all()
    assert web.tokens.shape[1] == 16
    for look, caption in zip(web.looks, web.captions):
        if "blurry" in caption or "out of focus" in caption:
            assert look == "blur", caption
        if "grainy" in caption or "noisy" in caption:
            assert look == "noise", caption
        if "white background" in caption or "light background" in caption:
            assert look == "light background", caption
    blurred = [c for x, c in zip(web.looks, web.captions) if x == "blur"]
    said = sum("blurry" in c or "out of focus" in c for c in blurred) / len(blurred)
    assert 0.3 < said < 0.6


def test_web_caption_drops_words_until_it_fits():
    rng = random.Random(3)
    for _ in range(200):
        variants = T.web_caption(rng, "ring", "purple", "small", "bottom right", "blur")
        lengths = [len(v.split()) for v in variants]
        assert lengths == sorted(lengths, reverse=True)
    fitted = T._fitting([["a " * 30 + "ring", "a ring"]], context_length=8)
    assert fitted == ["a ring"]


def test_the_unseen_shifts_darken_or_cover_a_band(clean):
    plain = T.ToyCaptions("seen", size=100, seed=1)
    dark = T.ToyCaptions("seen", size=100, seed=1, shift="dark")
    expected = (plain.images.float() * 0.4).round().to(torch.uint8)
    assert torch.equal(dark.images, expected)
    occluded = T.ToyCaptions("seen", size=100, seed=1, shift="occluded")
    changed = (occluded.images != plain.images).any(dim=1)  # [N, R, R]
    grey = (occluded.images == 128).all(dim=1)
    band = round(32 / 3)
    for image in range(100):
        rows, columns = grey[image].all(dim=1), grey[image].all(dim=0)
        assert rows.sum() == band or columns.sum() == band  # a full row or column band
        assert (changed[image] <= grey[image]).all()  # nothing else changes
    assert set(T.SHIFTS) == set(T.WEB_SHIFTS) | set(T.UNSEEN_SHIFTS)
    assert not set(T.UNSEEN_SHIFTS) & set(T.WEB_IMAGE_MIX)


def test_web_captions_of_an_unseen_shift_name_no_look():
    dark = T.ToyCaptions("seen", size=300, seed=2, captions="web", shift="dark")
    assert set(dark.looks) == {"dark"}
    phrases = [p for options in T._WEB_STYLE_PHRASES.values() for p in options]
    assert not any(p in c for c in dark.captions for p in phrases)


def test_bad_web_world_arguments_are_errors():
    with pytest.raises(ValueError, match="captions"):
        T.ToyCaptions("train", size=4, captions="forum")
    with pytest.raises(ValueError, match="images"):
        T.ToyCaptions("train", size=4, images="photos")
    with pytest.raises(ValueError, match="shift"):
        T.ToyCaptions("train", size=4, images="web", shift="blur")
    with pytest.raises(ValueError, match="one_template"):
        T.ToyCaptions("train", size=4, captions="web", one_template=1)
