"""Your own image-caption pairs, from a CSV file, for fine-tuning CLIP (paper §2.2, at
the scale of one folder).

CLIP was trained on (image, text) pairs; fine-tuning it continues that training on pairs
of your own. The pairs are listed in a CSV file with a header row and two columns,
``filepath`` and ``caption`` (open_clip's convention; other columns are ignored), one
pair per row::

    filepath,caption
    images/0001.jpg,a red kite above a beach
    images/0002.jpg,"two dogs, one asleep"

A relative ``filepath`` is relative to the folder that holds the CSV file, so the file
and its images can move together; an absolute one is used as it is. Captions that
contain the separator are quoted, as any CSV writer does. The same image may appear in
several rows, with different captions.

Everything that can be checked without decoding the images is checked when the dataset
is built, so a mistake in the file stops a run before its first step: the columns, at
least one row, a path and a caption in every row, and that every listed image file
exists. Captions are tokenized then too.

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
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from .tokenizer import CONTEXT_LENGTH, get_tokenizer

__all__ = ["COLUMNS", "CSVCaptions"]

COLUMNS = ("filepath", "caption")


class CSVCaptions(torch.utils.data.Dataset):
    """Image-caption pairs listed in a CSV file. Item ``i`` is ``(image [3, R, R] float,
    tokens [L] long)``.

    Args:
        path: the CSV file, with a header row naming at least the columns ``filepath``
        and ``caption``. preprocess: image (a path) -> tensor [3, R, R]; the model's
        own, e.g. the second value that
            ``clip_ref.load`` returns, or
            ``clip_ref.Preprocess(model.visual.input_resolution)``.
        context_length: L, the model's (``model.context_length``; 77 for the released
        models). truncate: cut captions longer than L tokens (with a warning) instead of
        raising ValueError. delimiter: the column separator, ``","``; open_clip's own
        training CSVs are often tab-separated
            (``"\\t"``).

    Raises (all at construction): FileNotFoundError if the CSV or any image file is
    missing (naming the rows and paths), ValueError for a missing column, an empty file,
    an empty path or caption, or a caption that is too long when ``truncate=False``.

    Attributes: ``paths`` (absolute image paths), ``captions`` (strings), ``lines`` (the
    line of the CSV file each pair is on, for messages), all of length N, and ``tokens``
    [N, L].
    """

    def __init__(
        self,
        path: str | os.PathLike,
        preprocess: Callable,
        context_length: int = CONTEXT_LENGTH,
        *,
        truncate: bool = True,
        delimiter: str = ",",
    ):
        # the images' paths then hold in any working directory
        self.path = Path(path).expanduser().absolute()
        if not self.path.is_file():
            raise FileNotFoundError(f"no caption file at {self.path}")
        self.preprocess = preprocess
        self.paths, self.captions, self.lines = self._read(delimiter)
        self.tokens = self._tokenize(context_length, truncate)  # [N, L]

    def _read(self, delimiter: str) -> tuple[list[Path], list[str], list[int]]:
        paths, captions, lines = [], [], []
        # utf-8-sig: spreadsheet programs often start a UTF-8 file with a byte-order
        # mark, which would otherwise become part of the first column's name.
        with open(self.path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file, delimiter=delimiter)
            header = [name.strip() for name in reader.fieldnames or []]
            if not header:
                raise ValueError(
                    f"{self.path} is empty; expected a header row with the columns "
                    f"{', '.join(COLUMNS)}, then one row per image-caption pair"
                )
            missing = [name for name in COLUMNS if name not in header]
            if missing:
                hint = ""
                if len(header) == 1 and delimiter == ",":
                    hint = (
                        " (if the file separates columns with tabs, pass "
                        "delimiter='\\t' or --csv-separator)"
                    )
                raise ValueError(
                    f"{self.path} has no column "
                    f"{' or '.join(map(repr, missing))}: its header "
                    f"names {header}; expected the columns {', '.join(COLUMNS)}{hint}"
                )
            reader.fieldnames = header  # stripped names
            for row in reader:
                # where the row ends: its line, unless a quoted caption spans lines
                line = reader.line_num
                # A short row leaves its last fields as None.
                filepath, caption = ((row.get(name) or "").strip() for name in COLUMNS)
                if not filepath or not caption:
                    empty = "filepath" if not filepath else "caption"
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
                f"{self.captions[first][:60]!r} "
                f"is longer than the model's {context_length} tokens "
                f"({len(too_long)} captions "
                "are); shorten them, or pass truncate=True to keep their first tokens"
            )
        if too_long:
            warnings.warn(
                f"{len(too_long)} of the {len(self.captions)} captions in "
                f"{self.path} are longer than "
                f"{context_length} tokens and were cut to fit (the first on line "
                f"{self.lines[too_long[0]]})",
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
