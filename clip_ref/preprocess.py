"""Image preprocessing: from a picture file to the tensor CLIP's image encoder reads.

Radford et al. (2021), §2.3: during training the only augmentation was a random square
crop of resized images. The released models are evaluated with the deterministic version
of that step, which this module implements:

1. resize so that the shorter side is ``n_px`` pixels (bicubic, Pillow's antialiased
   filter),
2. take the central ``n_px x n_px`` square,
3. convert to RGB and to a float tensor in [0, 1], shape [3, n_px, n_px],
4. normalize each channel with ``IMAGE_MEAN`` and ``IMAGE_STD`` (statistics of CLIP's
   training images).

For an ordinary 8-bit RGB or grayscale ("L") image without an EXIF orientation tag, the
result is bit-for-bit the tensor OpenAI's released preprocessing produces (the test
suite checks this at every released resolution: 224, 288, 336, 384 and 448).

Real-world files come in many other forms. OpenAI's pipeline resizes whatever Pillow
opened and calls ``convert("RGB")`` at the end, which silently gives wrong pictures for
some of them. Here every Pillow mode either becomes the picture a person would see, or
raises a clear error:

================  ========================================  ============================
Pillow mode       what happens here                         OpenAI's pipeline
================  ========================================  ============================
RGB, L            used as is (identical output)             same
RGB/L with a      made transparent, then composited onto    key colour kept
colour key        white
("transparency")
RGBA, LA, PA,     composited onto a white background        alpha dropped: transparent
RGBa, La          before resizing                           areas show whatever colour
                                                            is stored under them (often
                                                            black)
P (palette)       expanded to RGB (or RGBA when it has      resized with nearest
                  transparency, then as above) *before*     neighbour (Pillow's rule for
                  resizing                                  "P"), expanded after
1 (bilevel)       expanded to L (0 or 255) before bicubic   nearest neighbour
                  resizing
CMYK, YCbCr,      Pillow's ``convert("RGB")`` (no ICC       same
LAB, HSV, RGBX    colour management, like OpenAI)
I;16, I;16L,      16-bit grey, scaled to 8 bits: round(v /  clipped at 255, so nearly
I;16B, I;16N      257)                                      everything turns white
I (32-bit         read as 16-bit grey (0..65535, which is   clipped at 255
integer)          how Pillow stores 16-bit PGM files) and
                  scaled like I;16. ValueError if a value
                  is negative or above 65535, or if all
                  values are <= 255 (8- and 16-bit data
                  cannot be told apart)
F (32-bit float)  ValueError: floats have no agreed range   clipped at 255
================  ========================================  ============================

Other decisions, also deliberate differences from OpenAI's pipeline:

- EXIF orientation is applied first (``PIL.ImageOps.exif_transpose``), so the model sees
  a phone photo the right way up, as a person does. OpenAI's pipeline ignores the tag.
- 16-bit colour PNG and TIFF files never reach us as 16-bit: Pillow itself opens them as
  8-bit RGB(A), keeping the high byte of each sample (``v >> 8``), at most one level
  from ``round(v / 257)``.
- Images smaller than ``n_px`` are upsampled with the same bicubic filter (a 1 x 1 image
  works).
- Aspect ratio: resizing the shorter side of a 1 x 100,000 strip to 224 pixels would
  build a 224 x 22,400,000 image. Images whose longer side is more than
  ``MAX_ASPECT_RATIO`` (100) times their shorter side raise ValueError; crop them first.
  Up to that limit the full resize is done exactly as OpenAI does (a 100:1 image at 448
  px is an 80 MB intermediate). Resizing only the region the crop keeps (Pillow's
  ``resize(box=...)``) was measured and rejected: Pillow rounds to 8 bits between its
  horizontal and vertical passes and picks their order from the sizes, so that shortcut
  differed from the full resize by up to 6 levels (of 255) on the photographs we tried.
- Inputs: a PIL image, a path (``str`` or ``os.PathLike``) or a binary file object,
  which is opened with Pillow. Anything else (numpy arrays, tensors, bytes) raises
  TypeError saying how to convert it. Multi-frame files (GIF, TIFF) use the frame Pillow
  has current (the first, when just opened).
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision import transforms
from torchvision.transforms import InterpolationMode

__all__ = [
    "IMAGE_MEAN",
    "IMAGE_STD",
    "MAX_ASPECT_RATIO",
    "ConvertToRGB",
    "PrepareImage",
    "Preprocess",
    "check_aspect_ratio",
    "load_image",
    "normalize",
    "prepare_image",
    "resize_and_center_crop",
]

# Per-channel (R, G, B) mean and standard deviation of CLIP's training images, on the
# [0, 1] scale.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)

# Longest allowed (longer side / shorter side); beyond it the full resize would be
# needlessly huge.
MAX_ASPECT_RATIO = 100.0

_EXIF_ORIENTATION = 0x0112  # EXIF/TIFF tag number of "Orientation"
_WHITE = (255, 255, 255, 255)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_PLAIN_COLOUR_MODES = ("CMYK", "YCbCr", "LAB", "HSV", "RGBX")
_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")

ImageSource = Image.Image | str | os.PathLike | BinaryIO


def _over_white(image: Image.Image) -> Image.Image:
    """Composite an image with transparency onto an opaque white background; returns
    RGB."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _WHITE)
    return Image.alpha_composite(background, rgba).convert("RGB")


def _16bit_to_8bit(values: np.ndarray) -> Image.Image:
    """Map 16-bit grey levels 0..65535 onto 0..255 with rounding: 65535 -> 255, 257 *
    k -> k."""
    scaled = (values.astype(np.uint32) + 128) // 257
    return Image.fromarray(scaled.astype(np.uint8))  # 2-D uint8 -> mode "L"


def _int32_to_8bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 65535:
        raise ValueError(
            f"mode 'I' image has values in [{low}, {high}], outside the 16-bit range "
            "[0, 65535]; scale it to 8 bits yourself and pass an 'L' or 'RGB' image"
        )
    if high <= 255:
        raise ValueError(
            f"mode 'I' image has all values in [{low}, {high}]: it could be 8-bit data "
            "or a nearly black 16-bit image, and the two cannot be told apart. "
            "Convert it yourself: image.convert('L') for 8-bit data, or scale 16-bit "
            "data by 1/257"
        )
    return _16bit_to_8bit(values)


def prepare_image(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and bring any Pillow mode to 8-bit "RGB" or "L" (see the
    module table).

    "L" stays "L" (it becomes RGB after cropping, as in OpenAI's pipeline, which is
    cheaper and gives the same numbers). Raises ValueError for images that cannot be
    converted without guessing.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ValueError(f"image has no pixels (size {image.width} x {image.height})")
    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)

    mode = image.mode
    if mode in ("RGB", "L"):
        if "transparency" in image.info:  # a colour key: one colour means "transparent"
            return _over_white(image)
        return image
    if mode == "P":
        # Expand the palette first: Pillow resizes "P" images with nearest neighbour
        # only.
        has_alpha = "transparency" in image.info or image.palette.mode == "RGBA"
        return _over_white(image) if has_alpha else image.convert("RGB")
    if mode in ("La", "RGBa"):  # premultiplied alpha: undo it before compositing
        image = image.convert({"La": "LA", "RGBa": "RGBA"}[mode])
    if image.mode in _ALPHA_MODES:
        return _over_white(image)
    if mode == "1":
        return image.convert("L")
    if mode in _PLAIN_COLOUR_MODES:
        return image.convert("RGB")
    if mode in _16BIT_MODES:
        return _16bit_to_8bit(np.asarray(image))
    if mode == "I":
        return _int32_to_8bit(image)
    if mode == "F":
        raise ValueError(
            "mode 'F' (32-bit float) images have no agreed value range; scale to 8 "
            "bits yourself, e.g. Image.fromarray((np.clip(a, 0, 1) * "
            "255).round().astype(np.uint8))"
        )
    raise ValueError(f"unsupported image mode {mode!r}")


def _open(source: ImageSource) -> Image.Image:
    """Open a path or binary file with Pillow and read the pixels (so the file can be
    closed)."""
    with Image.open(source) as image:
        # pixels (and tags such as TIFF orientation) stay usable after closing
        image.load()
    return image


def _as_image(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "read"):
        return _open(source)
    hint = ""
    if isinstance(source, np.ndarray):
        hint = (
            " For a numpy array of uint8 [H, W, 3] pixels use "
            "PIL.Image.fromarray(array)."
        )
    elif isinstance(source, torch.Tensor):
        hint = (
            " For a tensor of [3, H, W] pixels use "
            "torchvision.transforms.functional.to_pil_image(tensor)."
        )
    elif isinstance(source, (bytes, bytearray)):
        hint = " For encoded file contents use io.BytesIO(data)."
    raise TypeError(
        "expected a PIL image, a path or a binary file object, got "
        f"{type(source).__name__}.{hint}"
    )


def load_image(source: str | os.PathLike | BinaryIO) -> Image.Image:
    """Open an image file and return it as 8-bit RGB, the way a person sees it (see
    module table)."""
    return prepare_image(_as_image(source)).convert("RGB")


def _resized_size(width: int, height: int, n_px: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to n_px; the longer side is
    rounded down.

    Same rule as torchvision's ``Resize(n_px)``, which OpenAI's pipeline uses.
    """
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(n_px * long / short)
    return (n_px, new_long) if width <= height else (new_long, n_px)


def check_aspect_ratio(image: Image.Image, n_px: int) -> None:
    """ValueError if resizing the shorter side of ``image`` to n_px would build a huge
    image (longer side more than ``MAX_ASPECT_RATIO`` times the shorter)."""
    width, height = image.size
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT_RATIO:
        raise ValueError(
            f"image is {width} x {height} pixels, aspect ratio {aspect:.1f}:1, more "
            f"than MAX_ASPECT_RATIO = {MAX_ASPECT_RATIO:g}:1; resizing its shorter "
            f"side to {n_px} would build a "
            f"{' x '.join(map(str, _resized_size(width, height, n_px)))} image. Crop "
            "the part you want to classify first"
        )


def resize_and_center_crop(image: Image.Image, n_px: int) -> Image.Image:
    """Scale the shorter side to n_px (bicubic), then cut out the central n_px x n_px
    square: torchvision's ``Resize`` and ``CenterCrop``, as in OpenAI's pipeline."""
    check_aspect_ratio(image, n_px)
    resized = transforms.Resize(n_px, interpolation=InterpolationMode.BICUBIC)(image)
    return transforms.CenterCrop(n_px)(resized)


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """Normalise each channel with CLIP's ``IMAGE_MEAN`` and ``IMAGE_STD``: the last
    step of preprocessing.

    ``pixels [..., 3, H, W]`` are uint8 (0-255, divided by 255 here) or floats in [0,
    1]; the result is float32. The one place where the normalisation is written:
    ``Preprocess`` and the toy data use it.
    """
    if pixels.ndim < 3 or pixels.shape[-3] != 3:
        raise ValueError(
            f"expected RGB pixels [..., 3, H, W], got shape {list(pixels.shape)}"
        )
    if pixels.dtype == torch.uint8:
        pixels = pixels.to(torch.float32).div(255)
    elif not pixels.is_floating_point():
        raise TypeError(f"expected uint8 or floating-point pixels, got {pixels.dtype}")
    mean = torch.tensor(IMAGE_MEAN, dtype=torch.float32, device=pixels.device).view(
        3, 1, 1
    )
    std = torch.tensor(IMAGE_STD, dtype=torch.float32, device=pixels.device).view(
        3, 1, 1
    )
    return (pixels.to(torch.float32) - mean) / std


class PrepareImage:
    """The first step of :class:`Preprocess`: open a path or binary file, then bring the
    image to 8-bit "RGB" or "L" as a person sees it (:func:`prepare_image`), refusing
    aspect ratios beyond ``MAX_ASPECT_RATIO``."""

    def __init__(self, n_px: int):
        self.n_px = n_px

    def __call__(self, source: ImageSource) -> Image.Image:
        image = prepare_image(_as_image(source))
        check_aspect_ratio(image, self.n_px)
        return image

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(open paths and files; EXIF orientation; alpha over "
            "white; palettes expanded; 16-bit grey / 257)"
        )


class ConvertToRGB:
    """``image.convert("RGB")``: grey images become three equal channels (after the
    crop, as in OpenAI's pipeline, which is cheaper and gives the same numbers)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.convert("RGB")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Preprocess(transforms.Compose):
    """Image (PIL image, path or binary file) -> normalized float32 tensor [3, n_px,
    n_px].

    A torchvision ``Compose``, like the ``preprocess`` OpenAI's ``clip.load`` returns,
    with the same steps (``Resize``, ``CenterCrop``, to RGB, ``ToTensor``,
    ``Normalize``) after one more at the front, :class:`PrepareImage`; code that reads
    or reuses ``preprocess.transforms`` works as with OpenAI's.
    """

    def __init__(self, n_px: int):
        if isinstance(n_px, bool) or not isinstance(n_px, int):
            raise TypeError(f"n_px must be an int, got {type(n_px).__name__}")
        if n_px < 1:
            raise ValueError(f"n_px must be positive, got {n_px}")
        self.n_px = n_px
        super().__init__(
            [
                PrepareImage(n_px),
                transforms.Resize(n_px, interpolation=InterpolationMode.BICUBIC),
                transforms.CenterCrop(n_px),
                ConvertToRGB(),
                transforms.ToTensor(),  # float32 in [0, 1], [3, n_px, n_px]
                transforms.Normalize(IMAGE_MEAN, IMAGE_STD),
            ]
        )

    def __repr__(self) -> str:
        return f"Preprocess(n_px={self.n_px})" + super().__repr__()[len("Preprocess") :]
