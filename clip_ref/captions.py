"""Your own image-caption pairs, from a CSV file, for fine-tuning CLIP (paper §2.2, at
the scale of one folder).

CLIP was trained on (image, text) pairs; fine-tuning it continues that training on pairs
of your own. The pairs are listed in a CSV file with a header row and two columns,
``filepath`` and ``caption`` (other columns are ignored), one pair per row::

    filepath,caption
    images/0001.jpg,a red kite above a beach
    images/0002.jpg,"two dogs, one asleep"

open_clip's training files are read as they are: its default layout, tab-separated with
the columns ``filepath`` and ``title``, is recognised (a header with a tab in it means
tabs; a file without a ``caption`` column takes its captions from ``title``), and other
column names are given with ``image_key`` and ``caption_key`` (``--csv-image-key``,
``--csv-caption-key``).

A relative ``filepath`` is relative to the folder that holds the CSV file, so the file
and its images can move together; an absolute one is used as it is. Captions that
contain the separator are quoted, as any CSV writer does. The same image may appear in
several rows, with different captions.

Everything is checked when the dataset is built, so a mistake stops a run before its
first step and before anything of it is written: the file is UTF-8 and parsed strictly
(a quote left open, a caption running over several lines or a row of the wrong width is
an error naming the line), the columns, at least one row, a path and a caption in every
row, that every listed image file exists, and that every image decodes (a corrupt file
or a decompression bomb is reported with its line; ``skip_bad_images`` drops such pairs
instead, and lists them). Captions are tokenized then too.

Captions longer than the model's context (77 tokens for every released model, counting
the start and end tokens) are truncated by default, keeping the first 76 tokens and
putting the end token last, as open_clip does when it trains; a warning says how many
were cut and where the first one is. ``truncate=False`` raises instead. Web captions run
long and their first words are usually the informative ones, so cutting them is the
useful default for training; for a query you type, ``clip_ref.tokenize`` raises instead,
because there a silently shortened text would be a surprise.

Images go through the model's own preprocessing (``clip_ref.Preprocess`` at its input
resolution): the deterministic resize and centre crop the released models were evaluated
with; there is no augmentation.

Shapes: N pairs, R resolution, L context length.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from .tokenizer import CONTEXT_LENGTH, get_tokenizer

__all__ = ["COLUMNS", "CSVCaptions"]

COLUMNS = ("filepath", "caption")
# open_clip's default caption column (its --csv-caption-key), used when there is no
# "caption" column and no caption_key is given
OPEN_CLIP_CAPTION = "title"


class CSVCaptions(torch.utils.data.Dataset):
    """Image-caption pairs listed in a CSV file. Item ``i`` is ``(image [3, R, R] float,
    tokens [L] long)``.

    Args:
        path: the CSV file, with a header row naming at least the columns
            ``filepath`` and ``caption`` (or ``image_key`` and ``caption_key``).
        preprocess: image (a path) -> tensor [3, R, R]; the model's own, e.g. the
            second value that ``clip_ref.load`` returns, or
            ``clip_ref.Preprocess(model.visual.input_resolution)``.
        context_length: L, the model's (``model.context_length``; 77 for the released
            models).
        truncate: cut captions longer than L tokens (with a warning) instead of
            raising ValueError.
        delimiter: the column separator; by default a tab if the header row holds
            one (open_clip's default), else a comma.
        image_key, caption_key: the columns that hold the image paths and the
            captions; by default ``filepath``, and ``caption`` or, in a file without
            that column, open_clip's ``title``.
        skip_bad_images: drop the pairs whose image cannot be decoded (with a warning;
            they are listed in ``skipped``) instead of raising ValueError.
        progress: show a progress bar while the images are checked.

    Raises (all at construction): FileNotFoundError if the CSV or any image file is
    missing (naming the rows and paths); ValueError for a file that is not UTF-8, a
    malformed row (a quote left open, a field running over several lines, a row of the
    wrong width), a missing column, an empty file, an empty path or caption, an image
    that cannot be decoded (a corrupt file, a decompression bomb), or a caption that is
    too long when ``truncate=False``; each names the file and the line.

    Attributes: ``paths`` (absolute image paths), ``captions`` (strings), ``lines`` (the
    line of the CSV file each pair is on, for messages), all of length N, ``tokens``
    [N, L], ``skipped`` (the pairs dropped, with line, path and reason) and
    ``fingerprint`` (what identifies the data, for a resumed run).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        preprocess: Callable,
        context_length: int = CONTEXT_LENGTH,
        *,
        truncate: bool = True,
        delimiter: str | None = None,
        image_key: str = COLUMNS[0],
        caption_key: str | None = None,
        skip_bad_images: bool = False,
        progress: bool = False,
    ):
        # the images' paths then hold in any working directory
        self.path = Path(path).expanduser().absolute()
        if not self.path.is_file():
            raise FileNotFoundError(f"no caption file at {self.path}")
        self.preprocess = preprocess
        self.columns = (image_key, caption_key)
        self.paths, self.captions, self.lines = self._read(delimiter)
        self.skipped = self._check_images(skip_bad_images, progress)
        self.tokens = self._tokenize(context_length, truncate)  # [N, L]

    @property
    def fingerprint(self) -> dict:
        """What identifies these pairs, for a resumed training run: the CSV's checksum
        (its rows: paths as written, relative to it, and captions) and the pairs kept.
        Not where the folder is: a run can be resumed after the folder moved."""
        fingerprint = {
            "csv_sha256": hashlib.sha256(self.path.read_bytes()).hexdigest(),
            "pairs": len(self.paths),
            "skipped_lines": [s["line"] for s in self.skipped],
        }
        if self.columns != COLUMNS:  # runs on the default columns read as before
            fingerprint["columns"] = list(self.columns)
        return fingerprint

    def _text(self) -> str:
        data = self.path.read_bytes()
        try:
            # utf-8-sig: spreadsheet programs often start a UTF-8 file with a byte-order
            # mark, which would otherwise become part of the first column's name.
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise ValueError(
                f"{self.path}, line {line}: not UTF-8 (the byte "
                f"{data[error.start]:#04x}); save the file as UTF-8 (spreadsheet "
                "programs: CSV UTF-8)"
            ) from None

    def _rows(self, delimiter: str | None):
        """(line, fields) for every row after the header, and the header; strict: a
        quote left open, a field spanning lines or a row of the wrong width is an error
        naming its line."""
        text = self._text()
        if delimiter is None:  # a tab in the header row: open_clip's tab-separated file
            delimiter = "\t" if "\t" in text.partition("\n")[0] else ","
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=delimiter, strict=True
        )
        end = 0
        try:
            for fields in reader:
                start, end = end + 1, reader.line_num
                if end > start and any("\n" in f or "\r" in f for f in fields):
                    raise ValueError(
                        f"{self.path}, line {start}: a field runs on to line {end} (a "
                        "quote left open?); each pair must be on one line"
                    )
                yield start, fields
        except csv.Error as error:
            raise ValueError(
                f"{self.path}, line {end + 1}: a row that cannot be parsed ({error}; a "
                "quote left open?)"
            ) from None

    def _read(self, delimiter: str | None) -> tuple[list[Path], list[str], list[int]]:
        paths, captions, lines = [], [], []
        rows = self._rows(delimiter)
        _, header = next(rows, (0, []))
        header = [name.strip() for name in header]
        if not header:
            raise ValueError(
                f"{self.path} is empty; expected a header row with the columns "
                f"{', '.join(COLUMNS)}, then one row per image-caption pair"
            )
        image_key, caption_key = self.columns
        if caption_key is None:
            fallback = OPEN_CLIP_CAPTION in header and COLUMNS[1] not in header
            caption_key = OPEN_CLIP_CAPTION if fallback else COLUMNS[1]
            self.columns = (image_key, caption_key)
        missing = [name for name in self.columns if name not in header]
        if missing:
            hint = ""
            if len(header) == 1:
                hint = (
                    " (if the file separates its columns with another character, pass "
                    "delimiter= or --csv-separator)"
                )
            raise ValueError(
                f"{self.path} has no column {' or '.join(map(repr, missing))}: its "
                f"header names {header}; expected the columns "
                f"{', '.join(self.columns)} (other names: image_key=, caption_key=, "
                f"--csv-image-key, --csv-caption-key){hint}"
            )
        where = [header.index(name) for name in self.columns]
        for line, fields in rows:
            if not any(f.strip() for f in fields):
                continue  # a blank line
            if len(fields) != len(header):
                raise ValueError(
                    f"{self.path}, line {line}: {len(fields)} fields, but the header "
                    f"has {len(header)} ({', '.join(header)}); quote a caption that "
                    "contains the separator"
                )
            filepath, caption = (fields[i].strip() for i in where)
            if not filepath or not caption:
                empty = image_key if not filepath else caption_key
                raise ValueError(f"{self.path}, line {line}: the {empty} is empty")
            # an absolute path stays absolute
            paths.append(self.path.parent / Path(filepath).expanduser())
            captions.append(caption)
            lines.append(line)
        if not paths:
            raise ValueError(
                f"{self.path} lists no image-caption pairs, only its header"
            )
        absent = [(line, p) for line, p in zip(lines, paths) if not p.is_file()]
        if absent:
            shown = "; ".join(f"line {line}: {p}" for line, p in absent[:5])
            more = f"; and {len(absent) - 5} more" if len(absent) > 5 else ""
            raise FileNotFoundError(
                f"{len(absent)} of the {len(paths)} image files listed in {self.path} "
                f"do not exist (paths are relative to the CSV's folder): {shown}{more}"
            )
        return paths, captions, lines

    def _check_images(self, skip_bad_images: bool, progress: bool) -> list[dict]:
        """Decode every image once, before training: a corrupt file, a decompression
        bomb or an unreadable format is reported with its CSV line now, not when its
        batch is drawn. With ``skip_bad_images`` those pairs are dropped (and listed in
        the return value); otherwise the first few are an error."""
        bad = {}
        unique = sorted(set(self.paths))
        for path in tqdm(
            unique, desc="checking images", unit="image", disable=not progress
        ):
            problem = _unreadable(path)
            if problem:
                bad[path] = problem
        if not bad:
            return []
        skipped = [
            {"line": line, "path": str(p), "reason": bad[p]}
            for line, p in zip(self.lines, self.paths)
            if p in bad
        ]
        if not skip_bad_images:
            shown = "; ".join(
                f"line {s['line']}: {s['path']}: {s['reason']}" for s in skipped[:5]
            )
            more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            raise ValueError(
                f"{len(skipped)} of the {len(self.paths)} images listed in {self.path} "
                f"cannot be read: {shown}{more}. Fix or remove them, or skip them "
                "(skip_bad_images=True, --skip-bad-images)"
            )
        keep = [i for i, p in enumerate(self.paths) if p not in bad]
        if not keep:
            raise ValueError(f"none of the images listed in {self.path} can be read")
        self.paths = [self.paths[i] for i in keep]
        self.captions = [self.captions[i] for i in keep]
        self.lines = [self.lines[i] for i in keep]
        warnings.warn(
            f"{len(skipped)} of the pairs in {self.path} were skipped because their "
            f"image cannot be read (the first: line {skipped[0]['line']}, "
            f"{skipped[0]['reason']}); they are listed in the run's metrics.json",
            stacklevel=3,
        )
        return skipped

    def _tokenize(self, context_length: int, truncate: bool) -> torch.Tensor:
        tokenizer = get_tokenizer()
        # The start and end tokens take two of the L positions.
        too_long = [
            n
            for n, caption in enumerate(self.captions)
            if len(tokenizer.encode(caption)) + 2 > context_length
        ]
        if too_long and not truncate:
            first = too_long[0]
            raise ValueError(
                f"{self.path}, line {self.lines[first]}: the caption "
                f"{self.captions[first][:60]!r} is longer than the model's "
                f"{context_length} tokens ({len(too_long)} captions are); shorten "
                "them, or pass truncate=True to keep their first tokens"
            )
        if too_long:
            warnings.warn(
                f"{len(too_long)} of the {len(self.captions)} captions in {self.path} "
                f"are longer than {context_length} tokens and were cut to fit (the "
                f"first on line {self.lines[too_long[0]]})",
                stacklevel=3,
            )
        return tokenizer.tokenize(
            self.captions, context_length=context_length, truncate=True
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.paths[index]
        try:
            image = self.preprocess(path)  # [3, R, R]
        except (
            OSError,
            ValueError,
        ) as error:  # a corrupt or unreadable file: say which row it came from
            raise ValueError(
                f"{self.path}, line {self.lines[index]}: cannot read the image {path}: "
                f"{error}"
            ) from error
        return image, self.tokens[index]


def _unreadable(path: Path) -> str | None:
    """Why the image at ``path`` cannot be decoded, or None if it can."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; both are bombs here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return f"a decompression bomb ({error})"
    except (OSError, ValueError, SyntaxError) as error:
        # SyntaxError: Pillow's word for some malformed files
        return f"{type(error).__name__}: {error}"
    return None
