"""A toy image-caption dataset, generated in code, for training CLIP from scratch on a
laptop (paper §2.2).

CLIP learns from (image, text) pairs found on the internet, 400 million of them. The toy
world keeps the idea and shrinks the scale: each image shows one object with four
attributes (shape, colour, size and position) and its caption names them in one of
several wordings, so the text encoder has to read language, not look up a label.
Everything is drawn from seeded generators: the same arguments always give the same
images and captions, with no download.

Some shape-colour combinations (``HELD_OUT``, a third of them) never appear in training,
while every shape and every colour does. Classifying images of those combinations among
*all* combinations, with prompts such as "a red circle", tests zero-shot transfer in
miniature (paper §3.1): the model has seen red things and circles, never a red circle,
and never a label.

Two worlds, as the paper has two (§2.2, §3.3): the web it pre-trains on, and ImageNet,
one kind of photograph, whose labels and shifted versions test it.

* The **template world** (the default, and the book's toy CLIP's): every image drawn
  clean, every caption one of ten templates naming the shape and the colour. The
  labelled sets of chapters 9 and the robustness chapter are drawn like it.
* The **web-like world** (``captions="web"``, ``images="web"``, two knobs that can be
  turned separately): captions written as alt-text is (:func:`web_caption`: synonyms,
  free word order, attributes left out, words about other things, a twentieth about
  nothing in the picture), and images drawn in a mix of looks (``WEB_IMAGE_MIX``: half
  clean, an eighth each with one of ``WEB_SHIFTS``). The objectives chapter races the
  objectives of Figure 2 on it, and the robustness chapter pre-trains CLIPs on it.

``SHIFTS`` change how the same objects look without changing what they are: the four
``WEB_SHIFTS`` (noise, blur, faded colours, a light background) occur in web-like
pre-training, the two ``UNSEEN_SHIFTS`` (dark, occluded) in no training set. A second
drawing style, ``"outline"`` (the shape's edge only, in its colour, with captions that
say so), is a domain no pre-training world has: the fine-tuning chapter adapts the model
to it, and the robustness chapter counts it among the unseen shifts.

Shapes: N images, R resolution, L context length.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from ..preprocess import normalize
from ..tokenizer import get_tokenizer, tokenize

__all__ = [
    "CAPTIONS",
    "CLASSNAMES",
    "COLOURS",
    "COMBINATIONS",
    "DEFAULT_TEMPLATE",
    "HELD_OUT",
    "IMAGES",
    "OUTLINE_TEMPLATES",
    "POSITIONS",
    "SEEN",
    "SHAPES",
    "SHIFTS",
    "SIZES",
    "SPLITS",
    "STYLES",
    "TEMPLATES",
    "UNSEEN_SHIFTS",
    "WEB_IMAGE_MIX",
    "WEB_SHIFTS",
    "ToyCaptions",
    "caption",
    "class_prompts",
    "prompt_template",
    "render",
    "web_caption",
]

# Shapes that stay distinct at 32 pixels: a diamond in place of the heart was often
# taken for the cross.
SHAPES = ("circle", "square", "triangle", "heart", "cross", "ring")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "centre")

# Every (shape, colour) pair; a combination's index in this list is its class label.
COMBINATIONS = tuple((shape, colour) for shape in SHAPES for colour in COLOURS)
# Two "diagonals" of the 6 x 6 table are held out: 12 of 36 combinations (a third). Each
# shape then pairs with 4 colours in training and each colour with 4 shapes, so every
# attribute is still learned.
HELD_OUT = tuple(
    (SHAPES[i], COLOURS[(i + k) % len(COLOURS)])
    for k in (0, 3)
    for i in range(len(SHAPES))
)
SEEN = tuple(c for c in COMBINATIONS if c not in HELD_OUT)

# Base colours (RGB, 0-255); each object gets a small random jitter around its colour.
_RGB = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 225, 40),
    "purple": (150, 60, 210),
    "orange": (250, 140, 20),
}
# Radius as a fraction of the image side, and the centre of each position.
_RADIUS = {"small": (0.11, 0.15), "large": (0.19, 0.23)}
# (x, y), y downwards
_CENTRE = {
    "top left": (0.28, 0.28),
    "top right": (0.72, 0.28),
    "bottom left": (0.28, 0.72),
    "bottom right": (0.72, 0.72),
    "centre": (0.5, 0.5),
}

# Wordings: the caption of an image is one template filled with synonyms of its
# attributes.
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
_WHERE_WORDS = {
    "top left": ("in the top left", "at the top left", "in the upper left corner"),
    "top right": ("in the top right", "at the top right", "in the upper right corner"),
    "bottom left": (
        "in the bottom left",
        "at the bottom left",
        "in the lower left corner",
    ),
    "bottom right": (
        "in the bottom right",
        "at the bottom right",
        "in the lower right corner",
    ),
    # "heart" is also a shape: the world's "crane" or "boxer", a word whose sense only
    # its context fixes.
    "centre": ("in the centre", "in the heart", "at the heart of the picture"),
}
TEMPLATES = (
    "a {size} {colour} {shape} {where}",
    "a {colour} {shape} {where}",
    "a {size} {colour} {shape}",
    "a {colour} {shape}",
    "{where} there is a {size} {colour} {shape}",
    "a {size} {shape} {where}, coloured {colour}",
    "a {shape} in {colour} {where}",
    "a photo of a {size} {colour} {shape}",
    "the {shape} is {colour} and {size}",
    "there is a {colour} {shape} {where}",
)
# The drawing styles: filled shapes (the book's world) or their outlines only (a new
# domain, for fine-tuning). Outline images have captions of their own, which name the
# style.
STYLES = ("filled", "outline")
OUTLINE_TEMPLATES = (
    "an outline of a {size} {colour} {shape} {where}",
    "the outline of a {colour} {shape}",
    "a {colour} {shape} drawn in outline {where}",
    "a {size} {colour} {shape} outline",
    "an outline drawing of a {colour} {shape} {where}",
    "a {colour} outline of a {size} {shape}",
)
# Distribution shifts: the same objects, seen differently. Captions do not change (they
# describe the object). "noise": Gaussian pixel noise of standard deviation 40 (of 255);
# "blur": drawn at 12 pixels and scaled back up; "faded": every pixel pulled half way to
# a light grey; "light background": backgrounds 100 grey levels lighter (100 to 170,
# where the world's are 0 to 70). The web-like world draws some of its images with these
# four (``WEB_SHIFTS``). Two more never occur in any training set of the book
# (``UNSEEN_SHIFTS``): "dark", every pixel at 40% of its brightness, and "occluded", a
# band of background grey a third of the image wide drawn across it at a random place.
WEB_SHIFTS = ("noise", "blur", "faded", "light background")
UNSEEN_SHIFTS = ("dark", "occluded")
SHIFTS = WEB_SHIFTS + UNSEEN_SHIFTS
_NOISE_STD, _BLUR_RESOLUTION, _FADE, _FADE_GREY, _LIGHTER = 40.0, 12, 0.5, 200.0, 100.0
_DARK, _BAND, _BAND_GREY = 0.4, 1 / 3, 128.0
# The web-like world (``ToyCaptions(..., captions="web", images="web")``): the toy
# CLIP's pre-training pairs. Alt-text is not a label: it names things with many words,
# in any order, leaves attributes out, talks about what is not in the picture, and
# sometimes does not describe the picture at all. Each web caption: with probability
# ``_WEB_UNRELATED`` a sentence about nothing in the picture; otherwise the shape and
# the colour each mentioned with probability ``_WEB_MENTION`` (at least one of them),
# each in its usual word or a synonym, the size and the place each with probability
# ``_WEB_DETAIL``, in one of several word orders; a picture drawn with a shift mentions
# it with probability ``_WEB_STYLE_WORDS`` ("a blurry photo of ..."), and with
# probability ``_WEB_EXTRA`` words about something else come before or after.
_WEB_UNRELATED, _WEB_MENTION, _WEB_DETAIL, _WEB_STYLE_WORDS, _WEB_EXTRA = (
    0.05,
    0.9,
    0.3,
    0.5,
    0.3,
)
_WEB_USUAL = 0.7
# The usual word comes first and is drawn half the time; the synonyms share the rest.
_WEB_SHAPE_WORDS = {
    "circle": ("circle", "disc", "dot", "round shape"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "wedge", "pyramid"),
    "heart": ("heart", "love heart", "valentine"),
    "cross": ("cross", "plus sign", "plus"),
    "ring": ("ring", "hoop", "donut"),
}
_WEB_COLOUR_WORDS = {
    "red": ("red", "scarlet", "crimson"),
    "green": ("green", "emerald", "lime"),
    "blue": ("blue", "navy", "azure"),
    "yellow": ("yellow", "golden", "lemon"),
    "purple": ("purple", "violet", "lilac"),
    "orange": ("orange", "tangerine", "amber"),
}
# What a caption calls the object when it leaves its shape out.
_WEB_THING = ("shape", "thing", "object", "one")
# {noun}: the shape or a stand-in; {colour}, {size}, {where}: a word or nothing.
_WEB_ORDERS = (
    "a {size} {colour} {noun} {where}",
    "{colour} {noun} {where}",
    "{where} a {size} {colour} {noun}",
    "{noun}, {colour}, {size}",
    "the {noun} is {colour} {where}",
    "{size} {noun} in {colour}",
)
_WEB_STYLE_PHRASES = {
    "clean": ("a photo of", "a picture of", "a drawing of"),
    "noise": ("a grainy photo of", "a noisy picture of"),
    "blur": ("a blurry photo of", "an out of focus picture of"),
    "faded": ("a faded photo of", "a washed out picture of"),
    "light background": ("on a white background", "on a light background"),
}
_WEB_EXTRAS_BEFORE = ("my favourite", "look at this", "new", "stock image:", "cute")
_WEB_EXTRAS_AFTER = ("wallpaper", "for sale", "by anna", "#art", "today", "2019")
_WEB_UNRELATED_TEXTS = (
    "untitled",
    "image 42",
    "click to enlarge",
    "my weekend",
    "view more photos",
    "no description",
    "shared with friends",
    "new post",
)
# The share of web-like images drawn in each style: "clean" is the labelled world's.
WEB_IMAGE_MIX = {
    "clean": 0.5,
    "noise": 0.125,
    "blur": 0.125,
    "faded": 0.125,
    "light background": 0.125,
}
CAPTIONS = ("template", "web")
IMAGES = ("clean", "web")
# offset the seeds of the noise's, the looks' and the web captions' generators from
# those of the objects' generators
_SHIFT_STREAM, _LOOK_STREAM, _CAPTION_STREAM = 2**40, 2**41, 2**42
# Zero-shot classes are named "red circle", "blue square", ...: CLASSNAMES[label] names
# COMBINATIONS[label].
CLASSNAMES = tuple(f"{colour} {shape}" for shape, colour in COMBINATIONS)
# The zero-shot prompt: a class name, worded like a caption ("a red circle", "an orange
# cross").
DEFAULT_TEMPLATE = "a {}"
# Questions about one attribute name their classes with one word, as datasets do: the
# label of an image is SHAPES[shape_id] or COLOURS[colour_id]. No caption is ever a
# single word.

SPLITS = ("train", "seen", "heldout")
# each split draws from its own random stream
_SPLIT_STREAM = {
    "train": 0,
    "seen": 1,
    "heldout": 2,
}


def _with_articles(text: str) -> str:
    """'a orange' -> 'an orange': captions should read like English."""
    words = text.split(" ")
    for i, word in enumerate(words[:-1]):
        if word == "a" and words[i + 1][:1] in "aeiou":
            words[i] = "an"
    return " ".join(words)


def prompt_template(template: str = DEFAULT_TEMPLATE):
    """A template for :func:`clip_ref.zeroshot.zero_shot_classifier` that also fixes "a"
    before a vowel.

    ``prompt_template("a photo of a {}")("orange ring") == "a photo of an orange
    ring"``.
    """
    if template.count("{}") != 1:
        raise ValueError(
            f"template {template!r} must contain exactly one '{{}}' for the class name"
        )

    def fill(classname: str) -> str:
        return _with_articles(template.format(classname))

    fill.__name__ = fill.__qualname__ = f"prompt_template({template!r})"
    return fill


def class_prompts(template: str = DEFAULT_TEMPLATE) -> list:
    """The prompt of every class, in label order: ``class_prompts()[label]``
    describes ``COMBINATIONS[label]``."""
    fill = prompt_template(template)
    return [fill(name) for name in CLASSNAMES]


def caption(
    shape: str,
    colour: str,
    size: str,
    position: str,
    template: int = 0,
    size_word: int = 0,
    where_word: int = 0,
    style: str = "filled",
) -> str:
    """One caption of an object: ``TEMPLATES[template]``
    (``OUTLINE_TEMPLATES[template]`` for an outline) filled with its attributes, the
    size and the place in the ``size_word``-th and ``where_word``-th of their wordings
    (counted modulo the wordings there are).

    ``caption("circle", "orange", "small", "centre", template=1)`` is "an orange circle
    in the centre"; every caption of :class:`ToyCaptions` is written by this function.
    """
    sizes, wheres = _SIZE_WORDS[size], _WHERE_WORDS[position]
    text = _caption_templates(style)[template].format(
        shape=shape,
        colour=colour,
        size=sizes[size_word % len(sizes)],
        where=wheres[where_word % len(wheres)],
    )
    return _with_articles(text)


def web_caption(
    rng: random.Random, shape: str, colour: str, size: str, position: str, look: str
) -> list:
    """Captions of one object in the web-like world, as alt-text might be, drawn from
    ``rng``: a list of variants, each the one before with fewer words (the extra words
    left out, then the place, then the size and the style), so that the first one that
    fits the context length can be taken. ``look`` is ``"clean"`` or one of
    ``WEB_SHIFTS``, how the picture is drawn.

    The draws do not depend on the context length: every variant is drawn at once.
    """
    if rng.random() < _WEB_UNRELATED:
        return [rng.choice(_WEB_UNRELATED_TEXTS)]

    def word(words: tuple) -> str:  # the usual word, or now and then a synonym
        return words[0] if rng.random() < _WEB_USUAL else rng.choice(words[1:])

    says_shape, says_colour = rng.random() < _WEB_MENTION, rng.random() < _WEB_MENTION
    if not (says_shape or says_colour):
        says_shape = rng.random() < 0.5
        says_colour = not says_shape
    noun = word(_WEB_SHAPE_WORDS[shape]) if says_shape else rng.choice(_WEB_THING)
    colour_word = word(_WEB_COLOUR_WORDS[colour]) if says_colour else ""
    size_word = rng.choice(_SIZE_WORDS[size]) if rng.random() < _WEB_DETAIL else ""
    where = rng.choice(_WHERE_WORDS[position]) if rng.random() < _WEB_DETAIL else ""
    order = rng.choice(_WEB_ORDERS)
    if "{colour}" in order and not colour_word and not order.startswith("a "):
        order = _WEB_ORDERS[0]  # "the disc is" or "disc in" would be cut short
    style_words = rng.random() < (_WEB_STYLE_WORDS if look != "clean" else 0.2)
    # a look the web-like world never draws (an unseen shift) has no words of its own
    phrases = _WEB_STYLE_PHRASES.get(look, ())
    style = rng.choice(phrases) if style_words and phrases else ""
    before, after = rng.choice(_WEB_EXTRAS_BEFORE), rng.choice(_WEB_EXTRAS_AFTER)
    extra = rng.random() < _WEB_EXTRA
    extra_before = rng.random() < 0.5

    def write(where: str, size_word: str, style: str, extra: bool) -> str:
        text = order.format(noun=noun, colour=colour_word, size=size_word, where=where)
        text = " ".join(text.replace(", ,", ",").split()).strip(" ,")
        if style.startswith("on "):
            text = f"{text} {style}"
        elif style and not text.startswith("the "):
            text = f"{style} {text if text.startswith(('a ', 'the ')) else 'a ' + text}"
        if extra:
            text = f"{before} {text}" if extra_before else f"{text} {after}"
        return _with_articles(" ".join(text.split()))

    return [
        write(where, size_word, style, extra),
        write(where, size_word, style, False),
        write("", size_word, style, False),
        write("", "", "", False),
    ]


def _caption_templates(style: str) -> tuple:
    """The caption templates of a drawing style; an unknown style is an error."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    return TEMPLATES if style == "filled" else OUTLINE_TEMPLATES


# An outline's width, in pixels of the supersampled drawing (half as many in the image).
_OUTLINE_WIDTH = 3


def _inside(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inside-the-shape mask from coordinates u, v in units of the radius around the
    centre (v downwards)."""
    au, av = u.abs(), v.abs()
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":  # of about the circle's area
        return torch.maximum(au, av) <= 0.86
    if shape == "triangle":  # apex up
        return (v <= 0.75) & (au <= (v + 1.0) / 1.75)
    if shape == "cross":
        return ((au <= 0.34) | (av <= 0.34)) & (torch.maximum(au, av) <= 1.0)
    # the classic curve (x^2 + y^2 - 1)^3 <= x^2 y^3, with y upwards
    if shape == "heart":
        x, y = 1.2 * u, 0.15 - 1.2 * v
        return (x * x + y * y - 1) ** 3 <= x * x * y**3
    if shape == "ring":
        return (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55**2)
    raise ValueError(f"unknown shape {shape!r}")


def render(
    shape_ids,
    colours_rgb,
    radii,
    centres,
    backgrounds,
    resolution: int,
    generator,
    style: str = "filled",
) -> torch.Tensor:
    """Draw N objects on noisy grey backgrounds -> uint8 images [N, 3, R, R].

    ``colours_rgb`` [N, 3] and ``backgrounds`` [N] are in 0-255; ``radii`` [N] and
    ``centres`` [N, 2] (x, y) are fractions of the side. Shapes are drawn at twice the
    resolution and averaged down, which smooths their edges. ``style="outline"`` draws
    only the pixels of a shape within ``_OUTLINE_WIDTH`` supersampled pixels of its edge
    (the shape minus the shape eroded), so the background shows inside.
    """
    _caption_templates(style)  # checks the style
    n, s = len(shape_ids), 2 * resolution
    grid = (torch.arange(s, dtype=torch.float32) + 0.5) / s  # pixel centres in [0, 1]
    u = (
        (grid.view(1, 1, s) - centres[:, 0].view(n, 1, 1)) / radii.view(n, 1, 1)
    ).expand(n, s, s)
    v = (
        (grid.view(1, s, 1) - centres[:, 1].view(n, 1, 1)) / radii.view(n, 1, 1)
    ).expand(n, s, s)
    inside = torch.zeros(n, 1, s, s)  # [N, 1, S, S]
    for k, shape in enumerate(SHAPES):
        chosen = shape_ids == k
        inside[chosen, 0] = _inside(shape, u[chosen], v[chosen]).float()
    # erosion is a min-filter: minus the max-filter of the negated mask
    if style == "outline":
        k = 2 * _OUTLINE_WIDTH + 1
        inside = inside + F.max_pool2d(-inside, k, stride=1, padding=_OUTLINE_WIDTH)
    inside = F.avg_pool2d(inside, 2)  # [N, 1, R, R], anti-aliased coverage
    noise = torch.randn(n, 1, resolution, resolution, generator=generator) * 6.0
    background = noise.add_(backgrounds.view(n, 1, 1, 1))  # [N, 1, R, R]
    # [N, 3, R, R]
    image = torch.addcmul(background, inside, colours_rgb.view(n, 3, 1, 1) - background)
    return image.round_().clamp_(0, 255).to(torch.uint8)


def _shifted(images: torch.Tensor, shift: str, seed: int) -> torch.Tensor:
    """Apply a pixel-level shift to uint8 images [N, 3, R, R] (a light background is
    drawn, not applied)."""
    x = images.float()
    # its own generator, so the objects and captions stay those of the unshifted set
    generator = torch.Generator().manual_seed(seed)
    if shift == "noise":
        x = x + torch.randn(x.shape, generator=generator) * _NOISE_STD
    elif shift == "blur":
        small = F.interpolate(x, size=_BLUR_RESOLUTION, mode="area")
        x = F.interpolate(
            small, size=images.shape[-1], mode="bilinear", align_corners=False
        )
    elif shift == "faded":
        x = x + (_FADE_GREY - x) * _FADE
    elif shift == "dark":
        x = x * _DARK
    elif shift == "occluded":
        n, side = len(x), images.shape[-1]
        width = round(side * _BAND)
        start = torch.randint(side - width + 1, (n,), generator=generator)
        across = torch.rand(n, generator=generator) < 0.5  # a column, else a row
        pixels = torch.arange(side)
        band = (pixels >= start[:, None]) & (pixels < start[:, None] + width)  # [N, R]
        mask = torch.where(
            across[:, None, None], band[:, None, :], band[:, :, None]
        )  # [N, R, R]
        x = torch.where(mask[:, None], torch.full_like(x, _BAND_GREY), x)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _fitting(variants: list, context_length: int) -> list:
    """The first variant of each caption (:func:`web_caption`'s lists) whose tokens fit
    ``context_length`` with the start and end tokens; the last variant if none does
    (then :func:`~clip_ref.tokenizer.tokenize` reports it)."""
    tokenizer, lengths = get_tokenizer(), {}
    chosen = []
    for options in variants:
        for text in options:
            if text not in lengths:
                lengths[text] = len(tokenizer.encode(text)) + 2
            if lengths[text] <= context_length:
                break
        chosen.append(text)
    return chosen


class ToyCaptions(torch.utils.data.Dataset):
    """A seeded set of toy (image, caption) pairs. Item ``i`` is ``(image [3, R, R]
    float, tokens [L])``.

    Args:
        split: ``"train"`` (only the ``SEEN`` combinations), ``"seen"`` (fresh images of
            the seen combinations, for testing) or ``"heldout"`` (images of the
            ``HELD_OUT`` combinations).
        size: number of pairs N.
        seed: the same seed, split and size always give the same data; splits never
        share images.
        resolution: image side R in pixels.
        context_length: token sequence length L; must fit the longest caption (it does
        from 16 up, the toy model's).
        label_captions: the fraction of captions replaced by a bare label ("red",
            "circle" or "red circle"): 0 in the book's world, where no caption is a lone
            label; chapter 7's ablation trains with some.
        style: ``"filled"`` (the book's world) or ``"outline"`` (a new domain; captions
            from ``OUTLINE_TEMPLATES``). With the same split, size and seed the two
            styles show the same objects.
        shift: ``None`` (the book's world) or one of ``SHIFTS``: the same objects and
            captions as without it, drawn with noise, blurred, faded or on a light
            background. Combines with either style.
        one_template: ``None`` (the book's world: each caption from a random template,
            with random synonyms) or an index into ``TEMPLATES``: every caption from
            that template with the first synonyms. ``one_template=3`` ("a red circle")
            gives one caption per class, where the book's world has hundreds. The same
            objects as without it.
        captions: ``"template"`` (captions from ``TEMPLATES``, each naming every
            attribute) or ``"web"`` (alt-text-like captions: :func:`web_caption`).
        images: ``"clean"`` (every image drawn like the labelled world's) or ``"web"``
            (each image drawn clean or with one of ``WEB_SHIFTS``, in the shares of
            ``WEB_IMAGE_MIX``; ``looks`` says which). The same objects either way.

    Attributes (all length N): ``images`` uint8 [N, 3, R, R], ``tokens`` [N, L],
    ``captions`` (strings), ``labels`` (index into ``COMBINATIONS``), ``shape_ids``,
    ``colour_ids``, ``size_ids``, ``position_ids``, ``looks`` (``"clean"`` or the
    shift each image is drawn with).
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 10000,
        seed: int = 0,
        resolution: int = 32,
        context_length: int = 16,
        label_captions: float = 0.0,
        style: str = "filled",
        shift: str | None = None,
        one_template: int | None = None,
        captions: str = "template",
        images: str = "clean",
    ):
        templates = _caption_templates(style)  # checks the style
        if captions not in CAPTIONS:
            raise ValueError(
                f"unknown captions {captions!r}; expected one of {CAPTIONS}"
            )
        if images not in IMAGES:
            raise ValueError(f"unknown images {images!r}; expected one of {IMAGES}")
        if images == "web" and (shift is not None or style != "filled"):
            raise ValueError(
                "images='web' draws its own mix of looks; it takes no shift or style"
            )
        if captions == "web" and (one_template is not None or style != "filled"):
            raise ValueError("captions='web' takes no one_template or style")
        if shift is not None and shift not in SHIFTS:
            raise ValueError(
                f"unknown shift {shift!r}; expected None or one of {SHIFTS}"
            )
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if not 0.0 <= label_captions <= 1.0:
            raise ValueError(
                f"label_captions is a fraction of the captions, got {label_captions}"
            )
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.split, self.size, self.seed, self.resolution, self.style = (
            split,
            size,
            seed,
            resolution,
            style,
        )
        self.shift = shift
        # What identifies these pairs, for a resumed training run (clip_ref.train).
        self.fingerprint = {
            "toy_world": {
                "split": split,
                "size": size,
                "seed": seed,
                "resolution": resolution,
                "context_length": context_length,
                "label_captions": label_captions,
                "style": style,
                "shift": shift,
                "one_template": one_template,
                "captions": captions,
                "images": images,
            }
        }
        g = torch.Generator().manual_seed(seed * len(SPLITS) + _SPLIT_STREAM[split])

        combos = list(HELD_OUT if split == "heldout" else SEEN)
        pick = torch.randint(len(combos), (size,), generator=g)
        self.labels = torch.tensor(
            [COMBINATIONS.index(combos[i]) for i in pick.tolist()]
        )
        self.shape_ids = self.labels // len(COLOURS)
        self.colour_ids = self.labels % len(COLOURS)
        self.size_ids = torch.randint(len(SIZES), (size,), generator=g)
        self.position_ids = torch.randint(len(POSITIONS), (size,), generator=g)

        low = torch.tensor([_RADIUS[s][0] for s in SIZES])[self.size_ids]
        high = torch.tensor([_RADIUS[s][1] for s in SIZES])[self.size_ids]
        radii = low + (high - low) * torch.rand(size, generator=g)
        centres = torch.tensor([_CENTRE[p] for p in POSITIONS])[self.position_ids]
        centres = centres + (torch.rand(size, 2, generator=g) - 0.5) * 0.08
        rgb = torch.tensor([_RGB[c] for c in COLOURS], dtype=torch.float32)[
            self.colour_ids
        ]
        rgb = (rgb + torch.randn(size, 3, generator=g) * 12).clamp(0, 255)
        backgrounds = torch.rand(size, generator=g) * 70  # dark to mid grey
        # the looks of a web-like world come from streams of their own, so its objects
        # are those of the clean world with the same arguments
        stream = seed * len(SPLITS) + _SPLIT_STREAM[split]
        self.looks = [shift or "clean"] * size
        if images == "web":
            shares = torch.tensor(list(WEB_IMAGE_MIX.values()))
            drawn = torch.multinomial(
                shares,
                size,
                replacement=True,
                generator=torch.Generator().manual_seed(_LOOK_STREAM + stream),
            )
            self.looks = [list(WEB_IMAGE_MIX)[i] for i in drawn.tolist()]
        lighter = torch.tensor([look == "light background" for look in self.looks])
        backgrounds = backgrounds + lighter * _LIGHTER

        images = []
        # in chunks, to bound the memory of the supersampled masks
        for start in range(0, size, 1024):
            part = slice(start, start + 1024)
            images.append(
                render(
                    self.shape_ids[part],
                    rgb[part],
                    radii[part],
                    centres[part],
                    backgrounds[part],
                    resolution,
                    g,
                    style,
                )
            )
        self.images = torch.cat(images)
        # A stream of its own for the noise, apart from the one that drew the objects.
        for look in sorted(set(self.looks) - {"clean", "light background"}):
            chosen = torch.tensor([x == look for x in self.looks])
            self.images[chosen] = _shifted(
                self.images[chosen], look, _SHIFT_STREAM + stream
            )

        template = torch.randint(len(templates), (size,), generator=g).tolist()
        size_word = torch.randint(
            6, (size,), generator=g
        ).tolist()  # reduced modulo the synonyms available
        where_word = torch.randint(6, (size,), generator=g).tolist()
        # drawn all the same, so the rest of the stream is unchanged
        if one_template is not None:
            if not 0 <= one_template < len(templates):
                raise ValueError(
                    f"one_template must index the {len(templates)} templates, got "
                    f"{one_template}"
                )
            template, size_word, where_word = (
                [one_template] * size,
                [0] * size,
                [0] * size,
            )
        self.captions = [
            caption(
                SHAPES[self.shape_ids[i]],
                COLOURS[self.colour_ids[i]],
                SIZES[self.size_ids[i]],
                POSITIONS[self.position_ids[i]],
                template[i],
                size_word[i],
                where_word[i],
                style,
            )
            for i in range(size)
        ]
        if captions == "web":
            rng = random.Random(_CAPTION_STREAM + stream)
            variants = [
                web_caption(
                    rng,
                    SHAPES[self.shape_ids[i]],
                    COLOURS[self.colour_ids[i]],
                    SIZES[self.size_ids[i]],
                    POSITIONS[self.position_ids[i]],
                    self.looks[i],
                )
                for i in range(size)
            ]
            self.captions = _fitting(variants, context_length)
        # a world where some pictures are captioned with a bare label (chapter 7's
        # ablation)
        if label_captions:
            bare = torch.rand(size, generator=g) < label_captions
            kind = torch.randint(3, (size,), generator=g)
            for i in bare.nonzero().flatten().tolist():
                shape, colour = SHAPES[self.shape_ids[i]], COLOURS[self.colour_ids[i]]
                self.captions[i] = (colour, shape, f"{colour} {shape}")[kind[i]]
        # Few distinct captions: tokenise each once.
        unique = sorted(set(self.captions))
        table = tokenize(unique, context_length=context_length)
        row = {caption: i for i, caption in enumerate(unique)}
        self.tokens = table[torch.tensor([row[c] for c in self.captions])]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        return normalize(self.images[index]), self.tokens[index]

    def __getitems__(self, indices: list[int]) -> list:
        """The items at ``indices``, normalised in one call (PyTorch's batched fetch,
        which ``DataLoader`` and :func:`clip_ref.train.train` use): the same values as
        item by item, in a tenth of the time."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return list(zip(normalize(self.images[index]), self.tokens[index]))
