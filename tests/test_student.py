"""Exercises: every chapter's solutions follow the convention of ``tools/exercises.py``,
and the student edition that ``make student`` writes (and the Pages workflow publishes)
contains no solution: no line of a solution's source, no line of its output, no image it
drew. Every exercise gets an empty answer cell, the ``exercise-check`` cells stay, and
each notebook's Colab badge opens the student copy on the ``student-edition`` branch,
never the chapter on ``main``. The edition is a Jupyter Book of its own: its config,
table of contents, intro page and every file they name are there.

Every check cell fails on the empty answer and passes on the solution. Executing the
chapters here would take minutes (some train models), so the first half is checked
statically: a check cell must read a name that only its exercise's solution defines (no
cell the student keeps binds it before the check), so on the empty answer it raises
``NameError``. The second half is executed elsewhere: ``make test`` (what CI runs) runs
every chapter under strict nbval, solutions included, and each check cell runs right
after its solution there, so a check that failed on the solution would fail that run.

The leak detector and the check rule are themselves tested on small notebooks with a
solution left in, and with check cells that pass without an answer (run for real), so a
pass means something.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
MIN_LENGTH = 10  # shorter lines ("plt.show()", "True") prove nothing when found


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "exercises", ROOT / "tools" / "exercises.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


exercises = _load_tool()
COLAB = "https://colab.research.google.com"
BADGE = re.compile(r"\[!\[Open In Colab\]\(([^)\s]+)\)\]\(([^)\s]+)\)")
COLAB_LINK = re.compile(
    rf"{re.escape(COLAB)}/github/([\w.-]+/[\w.-]+)/blob/([^/]+)/([^)\s\"'<>]+)"
)


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _slug() -> str:
    return (
        _config()["repository"]["url"].rstrip("/").removeprefix("https://github.com/")
    )


def _ids(paths):
    return [p.stem for p in paths]


def _strings(node):
    """Every string inside a notebook's JSON (sources, outputs, metadata), decoded."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _cell_texts(cell) -> list[str]:
    """The source of a cell and everything its outputs hold, as text."""
    texts = [cell.source]
    for output in cell.get("outputs", []):
        texts += list(_strings({k: v for k, v in output.items() if k != "metadata"}))
    return texts


def _lines(texts) -> set[str]:
    return {
        line.strip() for text in texts for line in text.splitlines() if line.strip()
    }


def secrets(nb) -> set[str]:
    """Lines of solution source and output (and image data) that nothing else in the
    chapter contains.

    A line that also occurs in a cell the student keeps (the exercise text may quote
    ``ks = [0, 100]``, another cell may end in the same ``rtol=1e-4, atol=1e-4)``) gives
    nothing away, so it is not a secret.
    """
    solution_lines, images, kept = set(), set(), []
    for cell in nb.cells:
        if exercises.is_solution(cell):
            solution_lines |= _lines(_cell_texts(cell))
            for output in cell.get("outputs", []):
                for mime, data in output.get("data", {}).items():
                    if (
                        mime.startswith("image/")
                        and isinstance(data, str)
                        and len(data) > 200
                    ):
                        # a slice of the picture
                        images.add(data[len(data) // 2 : len(data) // 2 + 120])
        else:
            kept += _cell_texts(cell)
    kept_text = "\n".join(kept)
    return {
        line
        for line in solution_lines
        if len(line) >= MIN_LENGTH and line not in kept_text
    } | images


def leaks(original, student_path: Path) -> list[str]:
    """The secrets of ``original`` found in the student notebook file, in its JSON
    text or decoded."""
    raw = student_path.read_text(encoding="utf-8")
    decoded = "\n".join(_strings(json.loads(raw)))
    return sorted(
        s
        for s in secrets(original)
        if s in decoded
        or json.dumps(s, ensure_ascii=False)[1:-1] in raw
        or json.dumps(s)[1:-1] in raw
    )


def _answers(nb) -> dict[int, list]:
    found: dict[int, list] = {}
    for cell in nb.cells:
        if exercises.ANSWER in exercises.tags(cell):
            found.setdefault(cell.metadata.get("exercise"), []).append(cell)
    return found


# --------------------------------------------------------------------------------------
# The chapters.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_solutions_are_tagged_and_normalised(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert not exercises.problems(nb), f"{notebook.name}: " + "; ".join(
        exercises.problems(nb)
    )
    assert exercises.solution_groups(nb), (
        f"{notebook.name} has no solution cell tagged 'solution'"
    )
    assert exercises.normalise(nb) == nb, (
        f"{notebook.name}: run `python tools/exercises.py chapters/{notebook.name}`"
    )


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_student_edition_has_no_solution(notebook, tmp_path):
    nb = nbformat.read(notebook, as_version=4)
    [path] = exercises.write_student_editions([notebook], tmp_path)
    student = nbformat.read(path, as_version=4)
    nbformat.validate(student)

    assert secrets(nb), f"{notebook.name}: no solution text to look for"
    found = leaks(nb, path)
    assert not found, (
        f"solution text in the student edition of {notebook.name}: {found[:3]}"
    )
    assert not [c for c in student.cells if exercises.is_solution(c)]
    assert '<details class="solution">' not in path.read_text()

    # Each exercise is followed by one empty answer cell, where its solution was.
    answers = _answers(student)
    listed = exercises.exercise_numbers(nb)
    assert listed and sorted(answers) == sorted(listed), (
        f"answer cells for {sorted(answers)}, exercises {listed}"
    )
    for number, cells in answers.items():
        assert len(cells) == 1 and cells[0].cell_type == "code" and not cells[0].outputs
        assert cells[0].source.strip() == f"# Your answer to exercise {number}"

    # Everything that is not a solution stays, in order, outputs included (exercise
    # checks too); only the Colab badge changes branch.
    kept = [c for c in nb.cells if not exercises.is_solution(c)]
    rest = [c for c in student.cells if exercises.ANSWER not in exercises.tags(c)]
    assert [(c.cell_type, c.source, c.get("outputs")) for c in rest] == [
        (c.cell_type, exercises.student_links(c.source), c.get("outputs")) for c in kept
    ]


def test_make_student_writes_every_chapter(tmp_path):
    written = exercises.write_student_editions(CHAPTERS, tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in CHAPTERS)
    assert {p.parent for p in written} == {tmp_path / "chapters"}
    assert (
        exercises.main(["--student", str(tmp_path / "cli"), *map(str, CHAPTERS[:1])])
        == 0
    )
    assert (tmp_path / "cli" / "chapters" / CHAPTERS[0].name).is_file()
    assert (tmp_path / "cli" / "_toc.yml").is_file()


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    """The student edition of every chapter, as ``make student`` writes it."""
    folder = tmp_path_factory.mktemp("student")
    exercises.write_student_book(CHAPTERS, folder)
    return folder


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_badge_opens_the_student_copy(notebook, edition):
    """The badge opens this notebook on the branch the Pages workflow pushes the
    edition to, at the path it has there (the edition's folder is that branch)."""
    raw = (edition / "chapters" / notebook.name).read_text(encoding="utf-8")
    student = nbformat.reads(raw, as_version=4)
    badges = BADGE.findall(student.cells[0].source)
    assert len(badges) == 1, f"{notebook.name}: one Colab badge in the first cell"
    image, target = badges[0]
    assert image == f"{COLAB}/assets/colab-badge.svg"
    branch = exercises.STUDENT_BRANCH
    expected = f"{COLAB}/github/{_slug()}/blob/{branch}/chapters/{notebook.name}"
    assert target == expected, f"{notebook.name}: the badge opens {target}"
    # What the link names exists in the edition: Colab finds it on the branch.
    links = COLAB_LINK.findall(raw)
    assert links and all((edition / path).is_file() for _, _, path in links)
    # No Colab link anywhere in the notebook opens main (or any other branch).
    assert {(slug, b) for slug, b, _ in links} == {(_slug(), branch)}, links
    assert f"{COLAB}/github/{_slug()}/blob/main/" not in raw
    # The package itself is still installed from the repository.
    assert f"git+https://github.com/{_slug()}" in raw


def test_student_edition_is_a_book(edition):
    """_config.yml (nothing executed, launch buttons on the student branch), _toc.yml
    with every chapter once and in the book's order, an intro page that links to the
    book, and every file the config and the chapters' figures name."""
    config = yaml.safe_load((edition / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["repository"]["branch"] == exercises.STUDENT_BRANCH
    assert config["repository"]["url"] == _config()["repository"]["url"]
    assert "student edition" in config["title"]
    for name in exercises._config_files(config):
        assert (edition / name).exists(), name

    toc = yaml.safe_load((edition / "_toc.yml").read_text())
    files = re.findall(r"file: (\S+)", yaml.safe_dump(toc))
    chapters = [f for f in files if f.startswith("chapters/")]
    book_toc = (ROOT / "_toc.yml").read_text()
    assert chapters == [
        f for f in re.findall(r"file: (\S+)", book_toc) if f in chapters
    ]
    assert sorted(chapters) == sorted(f"chapters/{p.stem}" for p in CHAPTERS)
    for page in [toc["root"], *files]:
        assert any((edition / page).with_suffix(s).is_file() for s in (".md", ".ipynb"))

    intro = (edition / "intro.md").read_text()
    site = exercises.site_url(_config())
    assert site == "https://annotated-clip.github.io/annotated-clip/"
    assert f"]({site})" in intro and exercises.STUDENT_BRANCH in intro

    shown = [
        m
        for p in (edition / "chapters").glob("*.ipynb")
        for c in nbformat.read(p, as_version=4).cells
        if c.cell_type == "markdown"
        for m in re.findall(r"\{figure\}\s+(\S+)", c.source)
    ]
    assert shown, "no figure found in the chapters: the pattern is stale"
    for figure in shown:
        assert (edition / "chapters" / figure).is_file(), figure


def test_pages_workflow_publishes_the_edition():
    """The workflow builds the edition into the site and pushes it to the branch that
    the badges name."""
    workflow = (ROOT / ".github" / "workflows" / "pages.yml").read_text()
    jobs = yaml.safe_load(workflow)["jobs"]
    assert "tools/exercises.py --student _build/student" in workflow
    assert "_build/html/student" in workflow
    assert f"refs/heads/{exercises.STUDENT_BRANCH}" in workflow
    pushers = [j for j in jobs.values() if "contents" in j.get("permissions", {})]
    assert [j["permissions"]["contents"] for j in pushers] == ["write"]
    runs = [step.get("run", "") for j in jobs.values() for step in j.get("steps", [])]
    assert not [r for r in runs if "torch" in r or "requirements" in r], "needs torch"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_check_cells_fail_on_the_empty_answer(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert not exercises.weak_checks(nb), f"{notebook.name}: " + "; ".join(
        exercises.weak_checks(nb)
    )


# --------------------------------------------------------------------------------------
# The tool and the detector, on a small notebook.
# --------------------------------------------------------------------------------------


def _chapter():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    stream = nbformat.v4.new_output(
        "stream", name="stdout", text="the secret answer is 42\n"
    )
    picture = nbformat.v4.new_output(
        "display_data",
        data={"image/png": "iVBORw0KGgo" + "QUJD" * 100, "text/plain": "<Figure>"},
    )
    tag = ["solution"]
    cells = [
        md("# A chapter\n\nSome text about $S = I T^\\top$."),
        code(
            "x = 6 * 7\nprint(x)",
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="42\n")],
        ),
        md("## Exercises\n\n1. Compute the answer.\n2. Draw it."),
        md(
            "**Solution 1.** Multiply six by seven, which gives $42$.",
            metadata={"tags": tag},
        ),
        code(
            "answer = six_times_seven()\nprint(f'the secret answer is {answer}')",
            metadata={"tags": ["hide-input", *tag]},
            outputs=[stream],
        ),
        code(
            "assert answer == 42  # run this to check your answer",
            metadata={"tags": ["exercise-check"]},
        ),
        md("**Solution 2.** Six rows of seven dots.", metadata={"tags": tag}),
        code(
            "draw_the_answer_as_a_picture(answer)",
            metadata={"tags": ["hide-input", *tag]},
            outputs=[picture],
        ),
    ]
    return nbformat.v4.new_notebook(cells=cells)


def test_normalise_hides_solutions_everywhere_and_is_idempotent():
    nb = exercises.normalise(_chapter())
    assert exercises.normalise(nb) == nb and not exercises.problems(nb)
    prose, code, check, code_2 = nb.cells[3], nb.cells[4], nb.cells[5], nb.cells[7]
    assert prose.source == (
        '<details class="solution">\n<summary>Solution 1</summary>\n\n'
        "Multiply six by seven, which gives $42$.\n\n</details>"
    )
    assert prose.metadata.jupyter == {"source_hidden": True}
    assert code.source.startswith("# @title Solution 1\nanswer = ")
    assert (
        code.metadata.tags == ["solution", "hide-cell"]
        and code.metadata.cellView == "form"
    )
    assert code.metadata.jupyter == {"source_hidden": True, "outputs_hidden": True}
    assert (
        code.metadata.mystnb["code_prompt_show"] == "Solution 1: show code and output"
    )
    assert check.metadata.tags == ["exercise-check"] and not check.source.startswith(
        "#"
    )
    assert code_2.source.startswith("# @title Solution 2\n")


def test_a_dropdown_written_by_hand_becomes_the_common_form():
    nb = _chapter()
    nb.cells[
        3
    ].source = "```{dropdown} Solution 1\nMultiply six by seven, which gives $42$.\n```"
    assert (
        exercises.normalise(nb).cells[3].source
        == exercises.normalise(_chapter()).cells[3].source
    )


def test_problems_name_untagged_and_missing_solutions():
    nb = _chapter()
    nb.cells[3].metadata.tags = []
    nb.cells[4].metadata.tags = ["hide-input"]
    found = " ".join(exercises.problems(nb))
    assert "cell 3" in found and "cell 4" in found and "not tagged 'solution'" in found
    nb = _chapter()
    nb.cells[2].source += "\n3. A third exercise."
    assert exercises.problems(nb) == [
        "exercise 3 has no solution cell tagged 'solution'"
    ]


def test_the_detector_finds_a_solution_left_in(tmp_path):
    nb = exercises.normalise(_chapter())
    clean = tmp_path / "clean.ipynb"
    nbformat.write(exercises.student_edition(nb), clean)
    assert leaks(nb, clean) == []
    assert len(secrets(nb)) >= 4

    # A solution cell that someone forgot to tag stays in the edition, with its output.
    forgot = nbformat.from_dict(json.loads(json.dumps(nb)))
    forgot.cells[4].metadata.tags = []
    nbformat.write(exercises.student_edition(forgot), tmp_path / "forgot.ipynb")
    assert "answer = six_times_seven()" in leaks(nb, tmp_path / "forgot.ipynb")

    # Only the output of a solution, pasted into a kept cell, is found too; and a drawn
    # picture.
    pasted = exercises.student_edition(nb)
    pasted.cells[1].outputs = nb.cells[4].outputs + nb.cells[7].outputs
    nbformat.write(pasted, tmp_path / "pasted.ipynb")
    found = leaks(nb, tmp_path / "pasted.ipynb")
    assert "the secret answer is 42" in found and any(len(s) == 120 for s in found)

    # The prose of a solution, even without its wrapper.
    prose = exercises.student_edition(nb)
    prose.cells[0].source += "\n\nMultiply six by seven, which gives $42$."
    nbformat.write(prose, tmp_path / "prose.ipynb")
    assert leaks(nb, tmp_path / "prose.ipynb") == [
        "Multiply six by seven, which gives $42$."
    ]


def _runnable(check: str, before: str = "x = 6", solution: str = "answer = x * 7"):
    """A chapter whose code runs: a cell, exercise 1, its solution, its check."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    return nbformat.v4.new_notebook(
        cells=[
            md("# A chapter"),
            code(before),
            md("## Exercises\n\n1. Multiply `x` by seven."),
            code(f"# Solution 1\n{solution}", metadata={"tags": ["solution"]}),
            code(check, metadata={"tags": ["exercise-check"]}),
        ]
    )


def _check_error(nb):
    """Run the code cells in order; the exception the check cell raised, or None."""
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            exec(cell.source, namespace)
        except Exception as error:
            if exercises.CHECK in exercises.tags(cell):
                return error
            raise
    return None


@pytest.mark.parametrize(
    "check, before, solution",
    [
        # reads only what the chapter already defined
        ("assert x * 7 == 42", "x = 6", "answer = x * 7"),
        # the answer's name exists before the exercise
        ("assert answer == 42", "x = 6\nanswer = 42", "answer = x * 7"),
        # the NameError is swallowed
        (
            "try:\n    assert answer == 42\nexcept Exception:\n    pass",
            "x = 6",
            "answer = x * 7",
        ),
        # the solution's name is local to its function
        ("assert answer == 42", "x = 6\nanswer = 42", "def f():\n    answer = 1"),
    ],
    ids=["chapter-names", "defined-before", "swallowed", "local"],
)
def test_the_check_rule_finds_a_check_that_passes_without_an_answer(
    check, before, solution
):
    nb = _runnable(check, before, solution)
    assert not exercises.problems(nb)
    # Run for real: the check passes on the empty answer, so the rule must say so.
    assert _check_error(exercises.student_edition(nb)) is None
    assert _check_error(nb) is None
    weak = exercises.weak_checks(nb)
    assert len(weak) == 1 and "cell 4" in weak[0] and "exercise 1" in weak[0]


def test_the_check_rule_passes_a_check_that_needs_the_answer(tmp_path):
    checks = [
        "assert answer == 42",
        "assert times_seven(6) == 42",
        "try:\n    assert answer == 42\nexcept AssertionError:\n    raise",
        "for a in [answer]:\n    assert a == 42",
    ]
    solution = "answer = x * 7\ndef times_seven(n):\n    return 7 * n"
    for check in checks:
        nb = _runnable(check, solution=solution)
        assert exercises.weak_checks(nb) == [], check
        # Run for real: NameError on the empty answer, a pass on the solution.
        assert isinstance(_check_error(exercises.student_edition(nb)), NameError)
        assert _check_error(nb) is None
    # The chapter's own check cell (the answer of exercise 1).
    assert exercises.solution_only_names(_chapter()) == [(5, 1, {"answer"})]

    # --check reports a weak check.
    path = tmp_path / "weak.ipynb"
    nbformat.write(exercises.normalise(_runnable("assert x == 6")), path)
    assert exercises.main(["--check", str(path)]) == 1
    nbformat.write(exercises.normalise(_runnable("assert answer == 42")), path)
    assert exercises.main(["--check", str(path)]) == 0


def test_badges_of_the_edition_name_the_student_branch():
    source = (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        "(https://colab.research.google.com/github/o/n/blob/main/chapters/a.ipynb)"
        " and git+https://github.com/o/n and https://github.com/o/n/blob/main/x.py"
    )
    assert exercises.student_links(source) == source.replace(
        "n/blob/main/chapters", f"n/blob/{exercises.STUDENT_BRANCH}/chapters"
    )
    nb = _chapter()
    nb.cells[0].source += "\n\n" + source
    student = exercises.student_edition(nb)
    assert (
        "/github/o/n/blob/student-edition/chapters/a.ipynb" in student.cells[0].source
    )
