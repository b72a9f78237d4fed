"""Exercises: every chapter's solutions follow the convention of ``tools/exercises.py``,
and the student edition that ``make student`` writes contains no solution: no line of a
solution's source, no line of its output, no image it drew. Every exercise gets an empty
answer cell, and the ``exercise-check`` cells stay.

The leak detector itself is tested on editions with a solution left in, so a pass means
something.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

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
    # checks too).
    kept = [c for c in nb.cells if not exercises.is_solution(c)]
    rest = [c for c in student.cells if exercises.ANSWER not in exercises.tags(c)]
    assert [(c.cell_type, c.source, c.get("outputs")) for c in rest] == [
        (c.cell_type, c.source, c.get("outputs")) for c in kept
    ]


def test_make_student_writes_every_chapter(tmp_path):
    written = exercises.write_student_editions(CHAPTERS, tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in CHAPTERS)
    assert (
        exercises.main(["--student", str(tmp_path / "cli"), *map(str, CHAPTERS[:1])])
        == 0
    )
    assert (tmp_path / "cli" / CHAPTERS[0].name).is_file()


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
