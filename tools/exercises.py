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

A check cell must fail on the empty answer: it reads at least one name that only its
exercise's solution defines (no cell that stays in the student edition binds it before
the check), so on the empty answer it raises ``NameError``. ``weak_checks`` lists the
check cells that break this rule; ``--check`` reports them.

The student edition is published (.github/workflows/pages.yml). ``--student DIR``
writes a small Jupyter Book into DIR, built without executing anything::

    DIR/_config.yml          the book's _config.yml, retitled, on branch student-edition
    DIR/_toc.yml             the book's table of contents, chapters only
    DIR/intro.md             what the edition is, with a link back to the full book
    DIR/bibliography.md      the works the chapters cite
    DIR/README.md            for the branch: what it is and where it comes from
    DIR/chapters/NN_*.ipynb  the student notebooks
    DIR/book/...             the files the book's config and the chapters' figures name

The Pages workflow builds it into ``_build/html/student/`` beside the book (served at
<site>/student/) and force-pushes DIR, as one commit, to the branch
``student-edition``. Each student notebook's Colab badge (and the theme's "Launch on
Colab" button) names that branch, so it opens the student copy:
https://colab.research.google.com/github/annotated-clip/annotated-clip/blob/student-edition/chapters/01_contrastive_idea.ipynb
The install cell still installs ``clip_ref`` from the main branch.

Usage (from the repository root)::

    python tools/exercises.py chapters/*.ipynb               # normalise in place
    python tools/exercises.py --check chapters/*.ipynb   # list problems, change nothing
    python tools/exercises.py --student _build/student chapters/*.ipynb   # for students
    jupyter-book build _build/student      # the student edition as a site (optional)
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copy
import re
import shutil
import sys
from pathlib import Path

import nbformat

SOLUTION = "solution"
CHECK = "exercise-check"
ANSWER = "answer"
ROOT = Path(__file__).resolve().parents[1]  # the book: _config.yml, _toc.yml, book/
# The branch the Pages workflow pushes the student edition to, and the folder of the
# notebooks in it (the same as in the repository, so figure paths stay valid).
STUDENT_BRANCH = "student-edition"
STUDENT_CHAPTERS = "chapters"
COLAB = "https://colab.research.google.com"
# A Colab link to a notebook on GitHub: .../github/OWNER/NAME/blob/BRANCH/PATH
_COLAB_GITHUB = re.compile(
    rf"(?P<head>{re.escape(COLAB)}/github/[\w.-]+/[\w.-]+/blob/)"
    r"(?P<branch>[^/\s)\]\"'<>]+)/"
)
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


def student_links(source: str, branch: str = STUDENT_BRANCH) -> str:
    """``source`` with every Colab link to a notebook on GitHub opening ``branch``
    (the badge of the student edition opens the student copy)."""
    return _COLAB_GITHUB.sub(lambda m: f"{m.group('head')}{branch}/", source)


def student_edition(nb, branch: str = STUDENT_BRANCH):
    """A copy of ``nb`` without solutions: each solution is replaced by an empty answer
    cell, and the Colab badge opens the copy on ``branch``.

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
            cell.source = student_links(cell.source, branch)
            cells.append(cell)
    out.cells = cells
    return out


def write_student_editions(notebooks, out_dir) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir``/chapters (same file
    names); return the paths."""
    folder = Path(out_dir) / STUDENT_CHAPTERS
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(Path, notebooks):
        nb = nbformat.read(path, as_version=4)
        broken = problems(nb)
        if broken:
            raise ExerciseError(f"{path}: " + "; ".join(broken))
        target = folder / path.name
        nbformat.write(student_edition(nb), target)
        written.append(target)
    return written


# --------------------------------------------------------------------------------------
# The student edition as a book of its own.
# --------------------------------------------------------------------------------------

# Files a chapter's markdown shows: ```{figure} PATH, ```{image} PATH, ![alt](PATH),
# <img src="PATH">
_SHOWN_FILE = re.compile(
    r"^\s*(?:`{3,}|:{3,})\{(?:figure|image)\}\s+(?P<directive>\S+)"
    r"|!\[[^\]]*\]\((?P<markdown>[^)\s]+)"
    r"|<img\s[^>]*src=[\"'](?P<html>[^\"']+)",
    re.MULTILINE,
)


def _yaml():
    import yaml  # Jupyter Book's; imported here, so the rest needs only nbformat

    return yaml


def site_url(config: dict) -> str | None:
    """The book's GitHub Pages address, from ``repository.url`` in its _config.yml."""
    url = (config.get("repository") or {}).get("url", "")
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)/?", url)
    return f"https://{match[1].lower()}.github.io/{match[2]}/" if match else None


def student_config(config: dict) -> dict:
    """The book's _config.yml for the student edition: its own title, nothing executed,
    and launch buttons that open the student branch."""
    config = copy.deepcopy(config)
    config["title"] = f"{config.get('title', 'The book')}: student edition"
    config["only_build_toc_files"] = True
    config["execute"] = {**(config.get("execute") or {}), "execute_notebooks": "off"}
    if config.get("repository"):
        config["repository"]["branch"] = STUDENT_BRANCH
        config["repository"]["path_to_book"] = ""
    return config


def _config_files(config: dict) -> list[str]:
    """The files and folders a _config.yml names: bibliographies, static files, logo."""
    sphinx = (config.get("sphinx") or {}).get("config") or {}
    named = [
        *(config.get("bibtex_bibfiles") or []),
        *(sphinx.get("html_static_path") or []),
        *(sphinx.get("html_extra_path") or []),
        config.get("logo"),
        (config.get("html") or {}).get("favicon"),
    ]
    return [name for name in named if name]


def student_toc(toc: dict | None, files: list[str], bibliography: bool) -> dict:
    """The book's table of contents with only ``files`` (the chapters, in its order and
    parts, so they keep their numbers), after a root page "intro"."""

    def keep(entries):
        kept = []
        for entry in entries or []:
            sections = keep(entry.get("sections"))
            if entry.get("file") in files:
                entry = {k: v for k, v in entry.items() if k != "sections"}
                kept.append({**entry, "sections": sections} if sections else entry)
                listed.append(entry["file"])
            else:  # a page that is not a chapter: its chapters move up
                kept += sections
        return kept

    listed: list[str] = []
    parts = []
    toc = toc or {}
    for part in toc.get("parts") or [{"chapters": toc.get("chapters")}]:
        chapters = keep(part.get("chapters"))
        if chapters:
            parts.append({**part, "chapters": chapters})
    missing = [file for file in files if file not in listed]
    if missing:
        parts.append(
            {"caption": "Chapters", "chapters": [{"file": f} for f in missing]}
        )
    if bibliography:
        parts.append({"caption": "Back matter", "chapters": [{"file": "bibliography"}]})
    return {"format": "jb-book", "root": "intro", "parts": parts}


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


def _inside(folder: Path, relative: str, what: str) -> Path:
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise ExerciseError(f"{what} {relative!r} lies outside the student edition")
    return target


def _intro(title: str, url: str | None) -> str:
    book = f"[the full book]({url})" if url else "the full book"
    return f"""# {title}: student edition

This is the student edition of {book}: every chapter as the book has it, text, code
and outputs, without the solutions to its exercises. Where a solution was, there is an
empty code cell, "# Your answer to exercise N", for your answer. Where an answer can be
checked mechanically, a check cell follows it: run it after your answer. It fails until
your answer defines what the exercise asks for, and passes when the answer is right.

To work on a chapter, open it in Colab with the "Open in Colab" badge at its top (or
the rocket button of its page): that opens this edition's copy of the notebook, kept on
the repository's `{STUDENT_BRANCH}` branch. Save a copy to your Drive to keep your
answers. The notebooks also run in Jupyter, with the repository's package installed.

The solutions, and the pages for readers and teachers, are in {book}.
"""


def _readme(title: str, url: str | None) -> str:
    where = f" ({url}student/)" if url else ""
    return f"""# {title}: student edition

This branch is written by the Pages workflow (`.github/workflows/pages.yml`) on every
push to `main`, from `python tools/exercises.py --student DIR chapters/*.ipynb`: the
chapters in `{STUDENT_CHAPTERS}/` without their solutions, each exercise with an empty
answer cell. Do not edit it; change the chapters on `main`. It is a small Jupyter Book,
built without executing anything and published beside the book{where}; the Colab
badges of its notebooks open the notebooks of this branch.
"""


def write_student_book(notebooks, out_dir, root: Path = ROOT) -> list[Path]:
    """Write the student edition into ``out_dir`` as a Jupyter Book of its own (see the
    module's docstring); return the notebooks' paths.

    Its _config.yml and _toc.yml derive from the book's in ``root``; the files they
    name, and the figures the chapters show, are copied to the same relative places.
    """
    yaml = _yaml()
    out_dir, root = Path(out_dir), Path(root)
    written = write_student_editions(notebooks, out_dir)
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    toc_path = root / "_toc.yml"
    toc = None
    if toc_path.is_file():
        toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))

    for name in _config_files(config):
        if (root / name).exists():
            _copy(root / name, _inside(out_dir, name, "the config's file"))
    for source in map(Path, notebooks):
        nb = nbformat.read(source, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            for match in _SHOWN_FILE.finditer(cell.source):
                shown = next(group for group in match.groups() if group)
                if re.match(r"^(?:[a-z][\w+.-]*:|/|#)", shown, re.IGNORECASE):
                    continue  # a URL, data: or an absolute path
                if not (source.parent / shown).is_file():
                    raise ExerciseError(f"{source.name} shows {shown!r}: no such file")
                _copy(
                    source.parent / shown,
                    _inside(out_dir, f"{STUDENT_CHAPTERS}/{shown}", source.name),
                )

    title = config.get("title", "The book")
    url = site_url(config)
    bibliography = bool(config.get("bibtex_bibfiles"))
    files = [f"{STUDENT_CHAPTERS}/{path.stem}" for path in written]
    header = (
        "# Written by tools/exercises.py --student from the book's {} (do not edit).\n"
    )
    pages = {
        "_config.yml": header.format("_config.yml")
        + yaml.safe_dump(student_config(config), sort_keys=False, allow_unicode=True),
        "_toc.yml": header.format("_toc.yml")
        + yaml.safe_dump(
            student_toc(toc, files, bibliography), sort_keys=False, allow_unicode=True
        ),
        "intro.md": _intro(title, url),
        "README.md": _readme(title, url),
    }
    if bibliography:
        pages["bibliography.md"] = (
            "# Bibliography\n\nThe works the chapters cite.\n\n```{bibliography}\n```\n"
        )
    for name, text in pages.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    return written


# --------------------------------------------------------------------------------------
# Check cells fail on the empty answer.
# --------------------------------------------------------------------------------------

# Names a notebook has without any cell defining them.
_PREDEFINED = set(dir(builtins)) | {"display", "get_ipython", "In", "Out", "exit"}
# Exceptions whose handler would swallow the NameError of a missing answer.
_SWALLOW = {"Exception", "BaseException", "NameError"}
_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _python(source: str):
    """The cell as Python (magics and shell lines commented out); None if it is not."""
    lines = [
        f"# {line}" if line.lstrip().startswith(("%", "!")) else line
        for line in source.splitlines()
    ]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _imported(node) -> list[str]:
    return [(alias.asname or alias.name).split(".")[0] for alias in node.names]


def defined_names(tree) -> set[str]:
    """The names a cell binds at the top level, which later cells can read (``*`` for
    a star import, which may bind anything)."""
    names: set[str] = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(child.name)
            if isinstance(child, _SCOPES):
                continue  # their own names are local
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                names.update(_imported(child))
            elif isinstance(child, ast.ExceptHandler) and child.name:
                names.add(child.name)
            visit(child)

    visit(tree)
    return names


def _swallows_name_error(handler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        getattr(t, "id", None) in _SWALLOW or getattr(t, "attr", None) in _SWALLOW
        for t in types
    )


def read_names(tree) -> set[str]:
    """The names a cell reads and never binds itself (anywhere, to stay on the safe
    side), leaving out reads inside a ``try`` whose handler would swallow a
    ``NameError``."""
    reads: set[str] = set()
    binds: set[str] = set()

    def visit(node):
        if isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
            swallowed = any(_swallows_name_error(h) for h in node.handlers)
            rest = [*node.handlers, *node.orelse, *node.finalbody]
            for child in rest if swallowed else [*node.body, *rest]:
                visit(child)
            return
        if isinstance(node, ast.Name):
            (reads if isinstance(node.ctx, ast.Load) else binds).add(node.id)
        elif isinstance(node, ast.arg):
            binds.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            binds.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            binds.update(_imported(node))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            binds.add(node.name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return reads - binds


def solution_only_names(nb) -> list[tuple[int, int | None, set[str]]]:
    """[(check cell index, its exercise, names)] for each ``exercise-check`` cell: the
    names it reads that its exercise's solution defines and no cell the student edition
    keeps defines before it. The exercise is the last solution above the check."""
    number_of = {i: n for n, indices in solution_groups(nb) for i in indices}
    kept: set[str] = set()
    solved: dict[int, set[str]] = {}
    exercise = None
    found = []
    for index, cell in enumerate(nb.cells):
        if index in number_of:
            exercise = number_of[index]
        if cell.cell_type != "code":
            continue
        tree = _python(cell.source)
        if index in number_of:
            if tree is not None:
                solved.setdefault(exercise, set()).update(defined_names(tree))
            continue
        if CHECK in tags(cell):
            names = set()
            if tree is not None and "*" not in kept:
                names = read_names(tree) & solved.get(exercise, set())
                names -= kept | _PREDEFINED
            found.append((index, exercise, names))
        if tree is not None:
            kept |= defined_names(tree)
    return found


def weak_checks(nb) -> list[str]:
    """The ``exercise-check`` cells that could pass on the empty answer: they read no
    name that only their exercise's solution defines (an empty list when none)."""
    weak = []
    for index, exercise, names in solution_only_names(nb):
        cell = nb.cells[index]
        if exercise is None:
            weak.append(f"{_where(cell, index)}: a check cell above every solution")
        elif not names:
            weak.append(
                f"{_where(cell, index)}, the check of exercise {exercise}, reads no "
                f"name that only Solution {exercise} defines, so it does not fail on "
                "the empty answer"
            )
    return weak


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
        "--student",
        type=Path,
        metavar="DIR",
        help="write the student edition into DIR, as a Jupyter Book of its own",
    )
    args = parser.parse_args(argv)

    if args.student:
        for path in write_student_book(args.notebooks, args.student):
            print(f"wrote {path}")
        print(f"the student edition is in {args.student}; jupyter-book builds it")
        return 0

    status = 0
    for path in args.notebooks:
        original = nbformat.read(path, as_version=4)
        nb = original
        broken = problems(nb)
        if not broken and args.check:
            broken = weak_checks(nb)
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
