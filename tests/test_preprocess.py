"""Tests for clip_ref.preprocess.

Parity: on ordinary RGB and grayscale photographs the tensors must be identical
(torch.equal) to OpenAI's released preprocessing (``clip.clip._transform`` from
clip-anytorch, used here as a test-only reference) at every released resolution. Edge
cases: each deliberate difference from OpenAI's pipeline is checked against the numbers
it should give, usually by showing that our output on the awkward input equals OpenAI's
output on the correctly converted 8-bit RGB picture.
"""

import functools
import io
import os
import pathlib
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from clip_ref import preprocess as pp

with warnings.catch_warnings():
    # clip-anytorch imports the deprecated pkg_resources
    warnings.simplefilter("ignore")
    from clip.clip import _transform as openai_transform

skimage_data = pytest.importorskip("skimage.data")

RESOLUTIONS = (224, 288, 336, 384, 448)  # input sizes of the nine released models
# Photographs shipped inside the scikit-image package (no download): RGB PNG and JPEG,
# grayscale PNG.
PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "camera.png",
    "page.png",
)
OURS = {n: pp.Preprocess(n) for n in RESOLUTIONS}
OPENAI = {n: openai_transform(n) for n in RESOLUTIONS}
MEAN = torch.tensor(pp.IMAGE_MEAN).view(3, 1, 1)
STD = torch.tensor(pp.IMAGE_STD).view(3, 1, 1)


@functools.cache
def photo(name):
    """A photograph file shipped with scikit-image, decoded once (tests never modify
    images)."""
    with Image.open(os.path.join(skimage_data.data_dir, name)) as image:
        image.load()
    return image


def photo_array(name):
    return np.asarray(photo(name).convert("RGB"))


def normalized(rgb):
    """The normalized tensor value of one 8-bit colour, computed as the pipeline
    does: [3, 1, 1]."""
    return (torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1).div(255) - MEAN) / STD


def pixels(tensor):
    """Undo the normalization: [3, H, W] tensor -> [H, W, 3] float array on the
    0..255 scale."""
    return ((tensor * STD + MEAN) * 255).permute(1, 2, 0).numpy()


def encode(image, fmt, **params):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return io.BytesIO(buffer.getvalue())


def png_16bit(samples):
    """Encode uint16 samples [H, W] (grey), [H, W, 3] (RGB) or [H, W, 4] (RGBA) as a
    16-bit PNG.

    Written by hand so the test does not depend on an image library's 16-bit writer.
    """
    height, width = samples.shape[:2]
    channels = 1 if samples.ndim == 2 else samples.shape[2]
    colour_type = {1: 0, 3: 2, 4: 6}[channels]  # PNG colour types: grey, RGB, RGBA
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return io.BytesIO(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def ramp_16bit(height=8, width=300):
    """Distinct 16-bit grey levels covering 0..65535, including both ends and exact
    multiples of 257."""
    values = np.linspace(0, 65535, height * width).round().astype(np.uint16)
    values[:3] = (0, 257, 128)  # 128 -> 0 (rounds down), 257 -> 1
    values[-1] = 65535
    return values.reshape(height, width)


def expected_8bit(values):
    return np.round(values.astype(np.float64) / 257).astype(np.uint8)


# --- parity with OpenAI on ordinary images
# ------------------------------------------------------


@pytest.mark.parametrize("n_px", RESOLUTIONS)
@pytest.mark.parametrize("name", PHOTOS)
def test_shipped_photos_identical_to_openai(name, n_px):
    image = photo(name)
    assert image.mode in ("RGB", "L") and image.getexif().get(0x0112, 1) == 1
    ours = OURS[n_px](image)
    assert ours.shape == (3, n_px, n_px) and ours.dtype == torch.float32
    assert torch.equal(ours, OPENAI[n_px](image))


def test_random_crops_and_rescales_identical_to_openai():
    rng = np.random.default_rng(1234)
    filters = (
        Image.Resampling.BILINEAR,
        Image.Resampling.LANCZOS,
        Image.Resampling.NEAREST,
    )
    for case in range(30):
        source = photo(PHOTOS[case % len(PHOTOS)])
        # longer side / shorter side, 1 to 10
        aspect = float(np.exp(rng.uniform(0, np.log(10))))
        if case % 2:  # crop a random window from the photograph
            long_side = int(rng.integers(3, max(source.size) + 1))
            short_side = max(1, round(long_side / aspect))
            if rng.random() < 0.5:
                width, height = (
                    min(long_side, source.width),
                    min(short_side, source.height),
                )
            else:
                width, height = (
                    min(short_side, source.width),
                    min(long_side, source.height),
                )
            left = int(rng.integers(0, source.width - width + 1))
            top = int(rng.integers(0, source.height - height + 1))
            image = source.crop((left, top, left + width, top + height))
        else:  # rescale the whole photograph to an odd size and shape
            long_side = int(rng.integers(5, 1200))
            short_side = max(1, round(long_side / aspect))
            size = (
                (long_side, short_side)
                if rng.random() < 0.5
                else (short_side, long_side)
            )
            image = source.resize(size, filters[case % 3])
        n_px = int(rng.choice(RESOLUTIONS))
        ours = OURS[n_px](image)
        assert torch.equal(ours, OPENAI[n_px](image)), (
            case,
            image.size,
            image.mode,
            n_px,
        )


@pytest.mark.parametrize(
    "size", [(1000, 100), (100, 1000), (4480, 448), (37, 370), (2240, 225)]
)
def test_panoramas_up_to_ten_to_one_identical_to_openai(size):
    image = photo("coffee.png").resize(size, Image.Resampling.BICUBIC)
    for n_px in (224, 448):
        assert torch.equal(OURS[n_px](image), OPENAI[n_px](image))


def test_aspect_ratio_at_the_limit_is_exact():
    # 3 x 300: exactly 100:1
    image = Image.fromarray(photo_array("astronaut.png")[:300, :3])
    assert torch.equal(OURS[224](image), OPENAI[224](image))


# --- tiny images
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 2)])
def test_tiny_constant_images_keep_their_colour(size):
    colour = (10, 200, 30)
    image = Image.new("RGB", size, colour)
    for n_px in (224, 336):
        ours = OURS[n_px](image)
        assert ours.shape == (3, n_px, n_px)
        assert torch.equal(ours, normalized(colour).expand(3, n_px, n_px))
        assert torch.equal(ours, OPENAI[n_px](image))


def test_tiny_two_colour_image_is_upsampled_smoothly():
    left, right = (200, 30, 10), (10, 40, 220)
    array = np.zeros((3, 2, 3), np.uint8)  # 2 wide, 3 high
    array[:, 0], array[:, 1] = left, right
    image = Image.fromarray(array)
    ours = OURS[224](image)
    assert torch.equal(ours, OPENAI[224](image))
    row = pixels(ours)[112]  # [224, 3], left to right
    # red fades, blue grows
    assert np.all(np.diff(row[:, 0]) <= 1e-3) and np.all(np.diff(row[:, 2]) >= -1e-3)
    assert row[0, 0] > 190 and row[0, 2] < 20 and row[-1, 0] < 20 and row[-1, 2] > 210


# --- modes: grayscale, alpha, palette, bilevel, other colour spaces
# --------------------------------


def test_grayscale_gives_three_identical_channels():
    image = photo("camera.png")
    assert image.mode == "L"
    ours = pixels(OURS[224](image))
    np.testing.assert_allclose(ours[..., 0], ours[..., 1], atol=1e-3)
    np.testing.assert_allclose(ours[..., 0], ours[..., 2], atol=1e-3)
    assert (
        pp.load_image(os.path.join(skimage_data.data_dir, "camera.png")).mode == "RGB"
    )


def over_white(rgb, alpha):
    """Independent reference for compositing onto white: c * a + 255 * (1 - a),
    rounded."""
    rgb, alpha = rgb.astype(np.float64), alpha.astype(np.float64)[..., None] / 255
    return np.round(rgb * alpha + 255 * (1 - alpha)).astype(np.uint8)


def test_rgba_transparent_pixels_become_white():
    rgb = photo_array("astronaut.png")
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :200] = 0  # left part fully transparent ...
    rgb = rgb.copy()
    rgb[:, :200] = 0  # ... with black stored under it, as many encoders do
    image = Image.open(encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG"))
    assert image.mode == "RGBA"
    expected = Image.fromarray(over_white(rgb, alpha))
    ours = OURS[224](image)
    assert torch.equal(ours, OPENAI[224](expected))
    white = normalized((255, 255, 255)).view(3)
    # left edge: pure white
    assert torch.equal(ours[:, :, 0], white.view(3, 1).expand(3, 224))
    # OpenAI's pipeline drops the alpha channel: the same pixels come out black.
    black = normalized((0, 0, 0)).view(3, 1).expand(3, 224)
    assert torch.equal(OPENAI[224](image)[:, :, 0], black)


def test_partial_alpha_is_blended_with_white():
    rgb = np.array(
        [[[0, 0, 0], [200, 100, 50], [10, 20, 30], [255, 0, 0], [90, 90, 90]]], np.uint8
    )
    alpha = np.array([[0, 255, 64, 128, 200]], np.uint8)
    loaded = pp.load_image(
        encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG")
    )
    got = np.asarray(loaded).astype(int)
    want = over_white(rgb, alpha).astype(int)
    assert np.abs(got - want).max() <= 1  # Pillow's fixed-point blend vs exact rounding
    assert got[0, 0].tolist() == [255, 255, 255] and got[0, 1].tolist() == [
        200,
        100,
        50,
    ]


def test_opaque_rgba_equals_rgb():
    rgb = photo_array("coffee.png")
    rgba = Image.fromarray(
        np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), "RGBA"
    )
    assert torch.equal(OURS[336](rgba), OPENAI[336](Image.fromarray(rgb)))


def test_grey_with_alpha_la():
    grey = np.array([[0, 0, 100, 250]], np.uint8)
    alpha = np.array([[0, 255, 128, 10]], np.uint8)
    image = Image.open(encode(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG"))
    assert image.mode == "LA"
    got = np.asarray(pp.load_image(image)).astype(int)
    want = over_white(np.repeat(grey[..., None], 3, axis=2), alpha).astype(int)
    assert np.abs(got - want).max() <= 1
    assert got[0, 0].tolist() == [255, 255, 255] and got[0, 1].tolist() == [0, 0, 0]
    assert torch.equal(
        OURS[224](image), OPENAI[224](Image.fromarray(got.astype(np.uint8)))
    )


@pytest.mark.parametrize(
    "mode, straight", [("PA", "RGBA"), ("RGBa", "RGBA"), ("La", "LA")]
)
def test_rarer_alpha_modes(mode, straight):
    black = (0,) * (len(straight) - 1)
    transparent = Image.new(straight, (5, 4), (*black, 0)).convert(mode)
    assert transparent.mode == mode
    assert torch.equal(
        OURS[224](transparent), normalized((255, 255, 255)).expand(3, 224, 224)
    )
    opaque = Image.new(straight, (5, 4), (*black, 255)).convert(mode)
    assert torch.equal(OURS[224](opaque), normalized((0, 0, 0)).expand(3, 224, 224))
    # Premultiplied grey 50 at alpha 128 is straight grey 99 (Pillow's rounding),
    # blended with white.
    if mode == "La":
        half = Image.new("La", (1, 1), (50, 128))
        # 99 * 128/255 + 255 * 127/255
        assert pp.load_image(half).getpixel((0, 0)) == (
            177,
            177,
            177,
        )


def test_palette_is_expanded_before_resizing():
    image = Image.open(
        encode(Image.fromarray(photo_array("astronaut.png")).quantize(64), "PNG")
    )
    assert image.mode == "P" and not image.has_transparency_data
    ours = OURS[224](image)
    # bicubic on the expanded colours
    assert torch.equal(ours, OPENAI[224](image.convert("RGB")))
    # OpenAI's pipeline resizes the palette indices with nearest neighbour: a different
    # picture.
    assert not torch.allclose(ours, OPENAI[224](image), atol=0.05)


def test_palette_with_transparency():
    indices = np.array([[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2]], np.uint8)
    image = Image.fromarray(indices, "P")
    # black, red, blue
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (3 * 253))
    for fmt in ("PNG", "GIF"):
        # index 0 (black) is transparent
        loaded = Image.open(encode(image, fmt, transparency=0))
        assert loaded.mode == "P" and loaded.has_transparency_data
        colours = np.array([[255, 255, 255], [255, 0, 0], [0, 0, 255]], np.uint8)
        expected = Image.fromarray(colours[indices])
        assert np.array_equal(np.asarray(pp.load_image(loaded)), colours[indices])
        assert torch.equal(OURS[288](loaded), OPENAI[288](expected))


def test_colour_key_transparency_in_rgb_png():
    rgb = photo_array("chelsea.png").copy()
    rgb[:50] = (0, 0, 0)
    image = Image.open(encode(Image.fromarray(rgb), "PNG", transparency=(0, 0, 0)))
    assert image.mode == "RGB" and image.info["transparency"] == (0, 0, 0)
    loaded = np.asarray(pp.load_image(image))
    assert np.all(loaded[:50] == 255)
    assert np.array_equal(
        loaded[50:], np.where((rgb[50:] == 0).all(-1, keepdims=True), 255, rgb[50:])
    )


def test_bilevel_image_is_resized_as_greyscale():
    checker = (np.indices((30, 40)).sum(0) // 5 % 2 * 255).astype(np.uint8)
    image = Image.fromarray(checker).convert("1")
    ours = OURS[224](image)
    assert torch.equal(ours, OPENAI[224](Image.fromarray(checker)))
    # OpenAI: nearest neighbour for mode "1"
    assert not torch.equal(ours, OPENAI[224](image))


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "LAB", "HSV", "RGBX"])
def test_other_colour_spaces_are_converted_to_rgb(mode):
    image = Image.fromarray(photo_array("rocket.jpg")).convert(mode)
    assert image.mode == mode
    assert torch.equal(OURS[224](image), OPENAI[224](image.convert("RGB")))


def test_cmyk_jpeg_file():
    cmyk = Image.new("CMYK", (20, 10), (0, 255, 255, 0))  # full magenta + yellow = red
    loaded = pp.load_image(encode(cmyk, "JPEG", quality=100))
    assert np.abs(np.asarray(loaded).astype(int) - [255, 0, 0]).max() <= 2


# --- 16-bit and other high-bit-depth files
# ---------------------------------------------------------


def test_16bit_grey_png_is_scaled_not_clipped():
    values = ramp_16bit()
    image = Image.open(png_16bit(values))
    assert image.mode == "I;16" and np.array_equal(np.asarray(image), values)
    # The problem: Pillow's convert clips at 255, so almost everything becomes white.
    assert (np.asarray(image.convert("L")) == 255).mean() > 0.99
    want = expected_8bit(values)
    assert want[0, :3].tolist() == [0, 1, 0] and want[-1, -1] == 255
    assert np.array_equal(np.asarray(pp.load_image(image))[..., 0], want)
    image = Image.open(png_16bit(values))
    assert torch.equal(OURS[224](image), OPENAI[224](Image.fromarray(want)))


def test_16bit_big_endian_and_pgm():
    values = ramp_16bit(20, 30)
    want = expected_8bit(values)
    big_endian = Image.frombytes("I;16B", (30, 20), values.astype(">u2").tobytes())
    assert np.array_equal(np.asarray(pp.load_image(big_endian))[..., 0], want)
    pgm = io.BytesIO(b"P5\n30 20\n65535\n" + values.astype(">u2").tobytes())
    image = Image.open(pgm)
    assert image.mode == "I"  # Pillow stores 16-bit PGM as 32-bit integers
    assert np.array_equal(np.asarray(pp.load_image(image))[..., 0], want)
    assert torch.equal(OURS[224](image), OPENAI[224](Image.fromarray(want)))


def test_16bit_rgb_png_is_reduced_by_pillow():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, (40, 60, 3), dtype=np.uint16)
    values[0, 0] = (0, 65535, 257 * 100)
    image = Image.open(png_16bit(values))
    # Pillow opens 16-bit colour PNGs as 8-bit RGB, keeping the high byte of each
    # sample.
    assert image.mode == "RGB"
    loaded = np.asarray(pp.load_image(image))
    assert np.array_equal(loaded, (values >> 8).astype(np.uint8))
    assert np.abs(loaded.astype(int) - expected_8bit(values)).max() <= 1
    assert loaded[0, 0].tolist() == [0, 255, 100]
    image = Image.open(png_16bit(values))
    assert torch.equal(OURS[384](image), OPENAI[384](image))
    # fully transparent 16-bit RGBA
    rgba = np.dstack([values, np.zeros((40, 60), np.uint16)])
    assert np.all(np.asarray(pp.load_image(Image.open(png_16bit(rgba)))) == 255)


def test_32bit_integer_and_float_images_raise():
    small = Image.fromarray(np.arange(200, dtype=np.int32).reshape(10, 20))
    assert small.mode == "I"
    with pytest.raises(ValueError, match="cannot be told apart"):
        OURS[224](small)
    negative = Image.fromarray(np.arange(-5, 995, dtype=np.int32).reshape(20, 50))
    with pytest.raises(ValueError, match=r"outside the 16-bit range"):
        OURS[224](negative)
    too_big = Image.fromarray(np.full((4, 4), 70000, dtype=np.int32))
    with pytest.raises(ValueError, match=r"outside the 16-bit range"):
        pp.load_image(encode(too_big, "TIFF"))
    floats = Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))
    assert floats.mode == "F"
    with pytest.raises(ValueError, match="32-bit float"):
        OURS[224](floats)


# --- EXIF orientation
# -----------------------------------------------------------------------------


def quadrants(width=96, height=64):
    """An upright test picture: red top-left, green top-right, blue bottom-left,
    white bottom-right."""
    array = np.zeros((height, width, 3), np.uint8)
    array[: height // 2, : width // 2] = (255, 0, 0)
    array[: height // 2, width // 2 :] = (0, 255, 0)
    array[height // 2 :, : width // 2] = (0, 0, 255)
    array[height // 2 :, width // 2 :] = (255, 255, 255)
    return array


# Orientation tag -> transposition a viewer applies to the stored pixels (EXIF 2.3
# spec).
DISPLAY = {
    6: Image.Transpose.ROTATE_270,
    8: Image.Transpose.ROTATE_90,
    3: Image.Transpose.ROTATE_180,
}
UNDO = {
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
    3: Image.Transpose.ROTATE_180,
}


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_orientation_is_applied(orientation):
    upright = quadrants()
    # what a camera would save
    stored = Image.fromarray(upright).transpose(UNDO[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    image = Image.open(data)
    assert image.getexif()[0x0112] == orientation and image.size == stored.size
    ours = OURS[224](image)
    # Exactly: the decoded stored pixels turned the way a viewer turns them.
    decoded = Image.open(io.BytesIO(data.getvalue())).transpose(DISPLAY[orientation])
    assert torch.equal(ours, OPENAI[224](decoded))
    # also when we open the file
    assert torch.equal(OURS[224](io.BytesIO(data.getvalue())), ours)
    # The content is the upright picture (up to JPEG error): compare quadrant means.
    expected = pixels(OPENAI[224](Image.fromarray(upright)))
    got = pixels(ours)
    for rows in (slice(10, 100), slice(124, 214)):
        for cols in (slice(10, 100), slice(124, 214)):
            assert (
                np.abs(
                    got[rows, cols].mean((0, 1)) - expected[rows, cols].mean((0, 1))
                ).max()
                < 4
            )
    # OpenAI's pipeline ignores the tag and sees the picture turned.
    assert np.abs(pixels(OPENAI[224](image)) - expected).mean() > 50


# --- extreme aspect ratios
# ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 5000), (5000, 1), (2, 203), (1000, 9)])
def test_extreme_aspect_ratio_raises(size):
    image = Image.new("RGB", size, (1, 2, 3))
    with pytest.raises(ValueError, match=r"aspect ratio .* more than MAX_ASPECT_RATIO"):
        OURS[224](image)


def test_resize_and_center_crop_geometry():
    image = Image.new("L", (1000, 100))
    assert pp.resize_and_center_crop(image, 224).size == (224, 224)
    assert pp._resized_size(1000, 100, 224) == (2240, 224)
    assert pp._resized_size(100, 1000, 224) == (224, 2240)
    # 522.67 rounded down, like torchvision
    assert pp._resized_size(3, 7, 224) == (
        224,
        522,
    )


# --- inputs that are not PIL images
# ---------------------------------------------------------------


def test_paths_and_files_are_opened():
    path = os.path.join(skimage_data.data_dir, "rocket.jpg")
    want = OPENAI[224](Image.open(path))
    assert torch.equal(OURS[224](path), want)
    assert torch.equal(OURS[224](pathlib.Path(path)), want)
    with open(path, "rb") as file:
        assert torch.equal(OURS[224](file), want)
        assert not file.closed  # we do not close the caller's file


@pytest.mark.parametrize(
    "value, hint",
    [
        (np.zeros((8, 8, 3), np.uint8), "fromarray"),
        (torch.zeros(3, 8, 8), "to_pil_image"),
        (b"\x89PNG", "BytesIO"),
        (42, "PIL image, a path or a binary file"),
    ],
)
def test_other_inputs_raise_type_error(value, hint):
    with pytest.raises(TypeError, match=hint):
        OURS[224](value)


def test_missing_file_and_empty_image():
    with pytest.raises(FileNotFoundError):
        OURS[224]("/nonexistent/picture.png")
    with pytest.raises(ValueError, match="no pixels"):
        OURS[224](Image.new("RGB", (0, 5)))


# --- the transform object
# -------------------------------------------------------------------------


def test_constants_and_repr():
    assert pp.IMAGE_MEAN == (0.48145466, 0.4578275, 0.40821073)
    assert pp.IMAGE_STD == (0.26862954, 0.26130258, 0.27577711)
    text = repr(pp.Preprocess(336))
    assert text.startswith("Preprocess(n_px=336)")
    for step in ("EXIF", "bicubic", "CenterCrop(size=(336, 336))", "0.4814", "0.2757"):
        assert step in text


def test_preprocess_is_a_compose_whose_last_steps_are_openais():
    """Code that reads or reuses ``preprocess.transforms`` (from the end, as OpenAI's
    pipeline has one step fewer) finds OpenAI's steps with OpenAI's settings."""
    from clip.clip import _transform as openai_transform
    from torchvision import transforms

    ours, theirs = pp.Preprocess(224), openai_transform(224)
    assert isinstance(ours, transforms.Compose)
    assert len(ours.transforms) == len(theirs.transforms) + 1
    assert isinstance(ours.transforms[0], pp.PrepareImage)
    for a, b in zip(ours.transforms[1:], theirs.transforms):
        if isinstance(b, transforms.Resize):
            assert (a.size, a.interpolation) == (b.size, b.interpolation)
        elif isinstance(b, transforms.Normalize):
            assert (a.mean, a.std) == (b.mean, b.std)
        elif isinstance(b, (transforms.CenterCrop, transforms.ToTensor)):
            assert type(a) is type(b) and repr(a) == repr(b)
        else:  # OpenAI's _convert_image_to_rgb function
            assert isinstance(a, pp.ConvertToRGB)
    # a pipeline built from the last steps gives OpenAI's tensor
    image = Image.new("L", (300, 200), 77)
    mixed = transforms.Compose([*theirs.transforms[:2], *ours.transforms[-3:]])
    assert torch.equal(mixed(image), theirs(image))


@pytest.mark.parametrize(
    "n_px, error", [(0, ValueError), (-3, ValueError), (224.0, TypeError)]
)
def test_bad_resolution(n_px, error):
    with pytest.raises(error, match="n_px"):
        pp.Preprocess(n_px)
