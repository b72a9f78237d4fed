"""Exercise solutions in the chapters: hidden wherever a reader opens a chapter, removed
in the student edition.

The convention. A chapter's exercises are numbered list items ("1. ...") or
"**Exercise N.**" paragraphs in markdown cells under an "Exercises" heading. Every cell
of a solution, its prose and its code, is tagged ``solution`` and names its exercise in
its first line ("**Solution 2.** ...", ``# Solution 2``). A code cell tagged
``exercise-check`` is a small assert a student can run on their own answer; it is not
part of the solution and stays in the student edition.

``normalise`` makes every solution cell hidden in the three places a chapter is read:

- code cells: the tag ``hide-cell`` (MyST-NB folds the input *and* the output behind a
  toggle in the book, labelled "Solution N: show code and output"), ``metadata.jupyter``
  ``source_hidden`` and ``outputs_hidden`` (JupyterLab and Notebook 7 open them
  collapsed), and Colab's ``cellView: form`` with ``# @title Solution N`` as the first
  line (Colab shows the title and hides the code);
- markdown cells: the prose is wrapped in an HTML ``<details>`` block with the summary
  "Solution N". The book, JupyterLab, Notebook 7, Colab and GitHub all render that as a
  closed toggle; markdown (math, code, emphasis) inside it still renders because blank
  lines separate it from the HTML tags. Jupyter also gets ``source_hidden``.

It is idempotent: a normalised notebook comes back unchanged. ``student_edition``
removes the solution cells (source and outputs), puts an empty answer cell where each
exercise's solution was, and keeps everything else, outputs included.

Usage (from the repository root)::

    python tools/exercises.py chapters/*.ipynb               # normalise in place
    python tools/exercises.py --check chapters/*.ipynb   # list problems, change nothing
    python tools/exercises.py --student _build/student chapters/*.ipynb   # for students
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

SOLUTION = "solution"
CHECK = "exercise-check"
ANSWER = "answer"
# Tags that hide only part of a cell; a solution hides all of it with hide-cell.
PARTIAL_HIDE_TAGS = {"hide-input", "hide-output"}

_LABEL = r"Solution\s+(\d+)"
# The first line of a markdown solution as authors write it: "**Solution 2.** prose",
# "Solution 2:", ...
_MARKDOWN_LABEL = re.compile(
    rf"^\s*(?:\*\*|__)?{_LABEL}[.:]?(?:\*\*|__)?[.:]?[ \t]*", re.IGNORECASE
)
# The normalised form.
_DETAILS = re.compile(
    rf'\A<details class="solution">\n<summary>{_LABEL}</summary>\n\n'
    r"(?P<body>.*?)\n*\n</details>\s*\Z",
    re.DOTALL,
)
# A MyST dropdown an author may have written instead: ```{dropdown} Solution 2 ... ```
# or :::{dropdown} ...
_DROPDOWN = re.compile(
    rf"\A(?P<fence>`{{3,}}|:{{3,}})\{{dropdown\}}\s+{_LABEL}[^\n]*\n(?P<body>.*)\n(?P=fence)\s*\Z",
    re.DOTALL,
)
# The first line of a code solution: "# @title Solution 2", "#@title Solution 2", "#
# Solution 2: ..."
_CODE_LABEL = re.compile(rf"^#\s*(?:@title\s+)?{_LABEL}\b(?P<rest>.*)$", re.IGNORECASE)
_EXERCISES_HEADING = re.compile(
    r"^(#{1,6})\s+Exercises?\b", re.IGNORECASE | re.MULTILINE
)
_ANY_HEADING = re.compile(r"^(#{1,6})\s", re.MULTILINE)
_EXERCISE_ITEM = re.compile(
    r"^(?: {0,3}(\d+)\.\s|\s*(?:\*\*|__)Exercise\s+(\d+)\b)", re.MULTILINE
)
# which group of each pattern holds N
_LABEL_GROUP = {
    _DETAILS: 1,
    _DROPDOWN: 2,
    _MARKDOWN_LABEL: 1,
}


class ExerciseError(ValueError):
    """A chapter's exercises do not follow the convention; the message says where and
    how to fix it."""


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_solution(cell) -> bool:
    return SOLUTION in tags(cell)


def _where(cell, index: int) -> str:
    return f"cell {index} (id {cell.get('id', '?')})"


def solution_number(cell, index: int = -1, previous: int | None = None) -> int:
    """The N of "Solution N" that the cell's first line names (a code cell may
    inherit ``previous``)."""
    source = cell.source
    if cell.cell_type == "markdown":
        for pattern in (_DETAILS, _DROPDOWN, _MARKDOWN_LABEL):
            match = pattern.match(source)
            if match:
                return int(match.group(_LABEL_GROUP[pattern]))
        raise ExerciseError(
            f"{_where(cell, index)}: a markdown solution must start with '**Solution "
            f"N.**', found {source[:40]!r}"
        )
    first_line = source.split("\n", 1)[0]
    match = _CODE_LABEL.match(first_line)
    if match:
        return int(match.group(1))
    if previous is not None:  # code right after its prose: the prose named it
        return previous
    raise ExerciseError(
        f"{_where(cell, index)}: a code solution must start with '# Solution N' (or "
        f"follow its markdown solution), found {first_line[:40]!r}"
    )


def _markdown_body(source: str) -> str:
    """The solution prose without its label or wrapper."""
    for pattern in (_DETAILS, _DROPDOWN):
        match = pattern.match(source)
        if match:
            return match.group("body").strip("\n")
    return _MARKDOWN_LABEL.sub("", source, count=1).strip("\n")


def _normalise_markdown(cell, number: int) -> None:
    body = _markdown_body(cell.source)
    cell.source = (
        '<details class="solution">\n<summary>Solution '
        f"{number}</summary>\n\n{body}\n\n</details>"
    )
    jupyter = cell.metadata.setdefault("jupyter", {})
    jupyter["source_hidden"] = True
    cell.metadata["tags"] = _ordered_tags(
        cell, add=[], remove=PARTIAL_HIDE_TAGS | {"hide-cell"}
    )


def _normalise_code(cell, number: int) -> None:
    lines = cell.source.split("\n")
    label = _CODE_LABEL.match(lines[0])
    # "# Solution 2: by hand" keeps ": by hand"
    rest = label.group("rest").rstrip() if label else ""
    if label:
        lines = lines[1:]
    cell.source = "\n".join([f"# @title Solution {number}{rest}", *lines])
    cell.metadata["cellView"] = "form"  # Colab: a form titled "Solution N", code hidden
    jupyter = cell.metadata.setdefault("jupyter", {})
    jupyter["source_hidden"] = True
    jupyter["outputs_hidden"] = True
    mystnb = cell.metadata.setdefault("mystnb", {})
    mystnb["code_prompt_show"] = f"Solution {number}: show code and output"
    mystnb["code_prompt_hide"] = f"Solution {number}: hide code and output"
    cell.metadata["tags"] = _ordered_tags(
        cell, add=["hide-cell"], remove=PARTIAL_HIDE_TAGS
    )


def _ordered_tags(cell, add: list[str], remove: set[str]) -> list[str]:
    kept = [t for t in tags(cell) if t not in remove]
    return kept + [t for t in add if t not in kept]


def solution_groups(nb) -> list[tuple[int, list[int]]]:
    """[(N, [cell indices])] in notebook order: consecutive solution cells naming the
    same exercise."""
    groups: list[tuple[int, list[int]]] = []
    previous = None
    for index, cell in enumerate(nb.cells):
        if not is_solution(cell):
            previous = None
            continue
        number = solution_number(
            cell, index, previous if cell.cell_type == "code" else None
        )
        if groups and groups[-1][0] == number and groups[-1][1][-1] == index - 1:
            groups[-1][1].append(index)
        else:
            groups.append((number, [index]))
        previous = number
    return groups


def exercise_numbers(nb) -> list[int]:
    """The numbers of the exercises listed in the chapter's "Exercises" section (not
    its solutions)."""
    numbers: list[int] = []
    inside = None  # the heading level of the open Exercises section
    for cell in nb.cells:
        if cell.cell_type != "markdown" or is_solution(cell):
            continue
        for block in _split_at_headings(cell.source):
            heading = _ANY_HEADING.match(block)
            if heading:
                level = len(heading.group(1))
                if _EXERCISES_HEADING.match(block):
                    inside = level
                elif inside is not None and level <= inside:
                    inside = None
            if inside is not None:
                numbers += [int(a or b) for a, b in _EXERCISE_ITEM.findall(block)]
    return numbers


def _split_at_headings(source: str) -> list[str]:
    starts = [m.start() for m in _ANY_HEADING.finditer(source)]
    bounds = [0, *starts, len(source)]
    return [source[a:b] for a, b in zip(bounds, bounds[1:]) if source[a:b].strip()]


def problems(nb) -> list[str]:
    """What in this notebook breaks the convention (an empty list when nothing does)."""
    found = []
    try:
        groups = solution_groups(nb)
    except ExerciseError as error:
        return [str(error)]
    solved = [number for number, _ in groups]
    listed = exercise_numbers(nb)
    for number in sorted(set(solved) - set(listed)):
        found.append(
            f"Solution {number} has no exercise {number} in the Exercises section"
        )
    for number in sorted(set(listed) - set(solved)):
        found.append(f"exercise {number} has no solution cell tagged '{SOLUTION}'")
    for number in sorted({n for n in solved if solved.count(n) > 1}):
        found.append(f"the cells of Solution {number} are not consecutive")
    after_solution = False
    for index, cell in enumerate(nb.cells):
        if is_solution(cell):
            if CHECK in tags(cell):
                found.append(
                    f"{_where(cell, index)} is tagged both '{SOLUTION}' and '{CHECK}'"
                )
            after_solution = True
            continue
        source = cell.source.lstrip()
        first_line = source.split("\n", 1)[0]
        if cell.cell_type == "markdown":
            looks_like = any(
                p.match(source) for p in (_MARKDOWN_LABEL, _DETAILS, _DROPDOWN)
            )
        else:  # labelled, or folded right after a solution like the solutions of old
            looks_like = _CODE_LABEL.match(first_line) or (
                after_solution and "hide-input" in tags(cell)
            )
        after_solution = looks_like
        if looks_like and CHECK not in tags(cell):
            found.append(
                f"{_where(cell, index)} looks like a solution but is not tagged "
                f"'{SOLUTION}' (it would stay in the student edition): "
                f"{first_line[:50]!r}"
            )
    for index, cell in enumerate(nb.cells):
        if (
            is_solution(cell)
            and cell.cell_type == "markdown"
            and not _markdown_body(cell.source).strip()
        ):
            found.append(
                f"{_where(cell, index)}: a markdown solution without prose; write some "
                "or delete it"
            )
    return found


def normalise(nb):
    """A copy of ``nb`` with every solution cell hidden in the book, in Jupyter and
    in Colab."""
    nb = copy.deepcopy(nb)
    for number, indices in solution_groups(nb):
        for index in indices:
            cell = nb.cells[index]
            if cell.cell_type == "markdown":
                _normalise_markdown(cell, number)
            elif cell.cell_type == "code":
                _normalise_code(cell, number)
    return nb


def answer_cell(number: int):
    return nbformat.v4.new_code_cell(
        f"# Your answer to exercise {number}\n",
        metadata={"tags": [ANSWER], "exercise": number},
    )


def student_edition(nb):
    """A copy of ``nb`` without solutions: each solution is replaced by an empty answer
    cell.

    Solution cells go with their source and outputs; ``exercise-check`` cells and every
    other cell stay, outputs included (they are part of the chapter, not of an answer).
    """
    first_of = {indices[0]: number for number, indices in solution_groups(nb)}
    out = copy.deepcopy(nb)
    cells = []
    for index, cell in enumerate(out.cells):
        if index in first_of:
            answer = answer_cell(first_of[index])
            answer["id"] = f"answer-{first_of[index]}"
            cells.append(answer)
        if not is_solution(cell):
            cells.append(cell)
    out.cells = cells
    return out


def write_student_editions(notebooks, out_dir) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir`` (same file names);
    return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(Path, notebooks):
        nb = nbformat.read(path, as_version=4)
        broken = problems(nb)
        if broken:
            raise ExerciseError(f"{path}: " + "; ".join(broken))
        target = out_dir / path.name
        nbformat.write(student_edition(nb), target)
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 if a notebook is not normalised or breaks the "
        "convention",
    )
    mode.add_argument(
        "--student", type=Path, metavar="DIR", help="write the student edition into DIR"
    )
    args = parser.parse_args(argv)

    if args.student:
        for path in write_student_editions(args.notebooks, args.student):
            print(f"wrote {path}")
        return 0

    status = 0
    for path in args.notebooks:
        original = nbformat.read(path, as_version=4)
        nb = original
        broken = problems(nb)
        if broken:
            status = 1
            print(f"{path}:", *(f"  - {p}" for p in broken), sep="\n", file=sys.stderr)
            continue
        normalised = normalise(nb)
        if normalised == original:
            continue
        if args.check:
            status = 1
            print(
                f"{path}: solution cells are not normalised; run: python "
                f"tools/exercises.py {path}",
                file=sys.stderr,
            )
        else:
            nbformat.write(normalised, path)
            print(f"normalised {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
