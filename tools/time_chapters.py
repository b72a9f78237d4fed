"""Measure how long each chapter takes to run from top to bottom, and write the table
the teachers' page shows.

    python tools/time_chapters.py   # every chapter; writes book/chapter_timings.md
    python tools/time_chapters.py chapters/01_*.ipynb --out -   # print the table

Each chapter runs in a fresh kernel, in order, in a temporary copy of ``chapters/``, so
nothing stored changes. The first chapter that needs the trained toy CLIP trains it
there, as on a reader's first run, and later chapters reuse it. ``--reuse-runs`` copies
``chapters/runs`` (a toy CLIP trained before) into the folder instead, so the table
shows the chapters without the training, whose own time is in the run's log. Cells
tagged ``skip-execution`` (those that need the released weights or a GPU) are skipped,
as in the book's checks.

Two numbers per chapter: the wall-clock time, and the CPU time of the kernel process
(all threads). On a machine that other work shares, the wall-clock time grows with the
load while the CPU time hardly does; on an idle machine with at least two cores the
wall-clock time is at most about the CPU time (the chapters use two threads). The table
records the load average before and after, so a reader can judge.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from cpu_kernels import cap_cpu_kernels  # noqa: E402

cap_cpu_kernels()  # the kernels inherit it: the chapters run as they do under nbval


def _children_cpu() -> float:
    # reaped kernels and their threads
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_chapter(path: Path, workdir: Path, timeout: int = 3600) -> tuple[float, float]:
    """(wall seconds, kernel CPU seconds) of running ``path`` top to bottom with
    ``workdir`` as its folder."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        skip_cells_with_tag="skip-execution",
        resources={"metadata": {"path": str(workdir)}},
    )
    cpu, start = _children_cpu(), time.perf_counter()
    client.execute()
    return time.perf_counter() - start, _children_cpu() - cpu


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 90 else f"{value / 60:.1f} min"


def table(
    rows: list[tuple[str, float, float]], loads: tuple[str, str], reused: bool
) -> str:
    today = datetime.date.today().isoformat()
    cores = os.cpu_count()
    training = (
        " The toy CLIP was already trained (its training is not included)."
        if reused
        else " The first chapter that needs the toy CLIP trained it."
    )
    lines = [
        "```{list-table} Time to run each chapter from top to bottom in a fresh "
        "kernel (cells that need the released weights or a GPU skipped), measured "
        f"with `tools/time_chapters.py` on {today}, on a {cores}-core machine without "
        f"a GPU ({platform.machine()}, Python {platform.python_version()}).{training} "
        f"Load average before and after: {loads[0]}; {loads[1]}.",
        ":header-rows: 1",
        ":name: chapter-timings",
        "",
        "* - Chapter",
        "  - Wall-clock time",
        "  - CPU time of the kernel",
    ]
    for name, wall, cpu in rows:
        lines += [f"* - {name}", f"  - {_seconds(wall)}", f"  - {_seconds(cpu)}"]
    lines.append("```")
    return "\n".join(lines) + "\n"


def _label(path: Path) -> str:
    """The chapter's number and title ("6. Training CLIP from scratch"): the
    fine-tuning chapter shares chapter 6's number, and the title tells them apart."""
    number = path.name.split("_", 1)[0].lstrip("0")
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return f"{number}. {cell.source.splitlines()[0][2:].strip()}"
    return number


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        default=sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")),
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "book" / "chapter_timings.md"),
        help="where to write the table ('-' prints it)",
    )
    parser.add_argument(
        "--reuse-runs",
        action="store_true",
        help="start from a copy of chapters/runs (an already trained toy CLIP)",
    )
    args = parser.parse_args(argv)

    rows = []
    before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "chapters"
        workdir.mkdir()
        if args.reuse_runs:
            shutil.copytree(ROOT / "chapters" / "runs", workdir / "runs")
        for path in args.notebooks:
            copy = workdir / path.name
            shutil.copy(path, copy)
            wall, cpu = time_chapter(copy, workdir)
            rows.append((_label(path), wall, cpu))
            print(
                f"{path.name}: wall {wall:.1f} s, kernel CPU {cpu:.1f} s, load "
                f"{_load()}",
                file=sys.stderr,
                flush=True,
            )
    text = table(rows, (before, _load()), args.reuse_runs)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
