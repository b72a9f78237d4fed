"""How ``make test`` shares its work between two pytest-xdist workers without changing a
single number the chapters compute.

The chapters' stored outputs were computed with two CPU threads (``setup()`` in every
chapter pins them): the partial sums of a reduction split over two threads add in
another order than over one, so the toy CLIP trains to other numbers with another
thread count. Two threads per notebook kernel stay, then, and each worker is pinned to
a core of its own (:func:`pin_this_worker`): its kernels' two threads share that core
and compute exactly what they compute on two cores, while the other core runs the
other worker. (Two unpinned workers of two threads each fight over both cores and run
slower than one; pinned, a toy training takes about 1.5 times as long, and two of them
run at once.)

Each file's tests, each notebook's cells and the chapters that share the toy CLIP of
``chapters/runs/toy`` stay in one worker, in order (:func:`order_and_group`): a
notebook's cells share one kernel, and the first of those chapters trains the toy CLIP
that the others reuse. The longest units go first, so that the two workers finish
together.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# The longest units of work (measured with --durations), longest first; the rest follow
# in the order pytest collected them.
LONGEST_FIRST = (
    "chapters/09_robustness.ipynb",
    "chapters/06_training_objectives.ipynb",
    "the toy CLIP",
    "tests/test_parity.py",
    "tests/test_book.py",
)
TOY_CLIP = "the toy CLIP"
# A chapter that loads the toy CLIP of chapters/runs/toy: the folder named, or the
# function's default.
_LOADS_THE_TOY_CLIP = re.compile(
    r"""["']runs/toy["']|trained_toy_clip\((progress=\w+)?\)"""
)


def pin_this_worker() -> None:
    """In an xdist worker, run on its share of the CPUs: worker i of W gets every W-th
    CPU from the i-th. Outside xdist, nothing changes."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    cpus = sorted(os.sched_getaffinity(0))
    index = int(worker.removeprefix("gw"))
    mine = cpus[index % len(cpus) :: count] or cpus
    os.sched_setaffinity(0, mine)


def loads_the_toy_clip(notebook: Path) -> bool:
    """Whether ``notebook``'s code loads (or first trains) the shared toy CLIP."""
    import nbformat

    cells = nbformat.read(notebook, as_version=4).cells
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    return bool(_LOADS_THE_TOY_CLIP.search(code))


def unit_of(item: pytest.Item, root: Path) -> str:
    """The unit of work ``item`` belongs to: its file, or the chapters of the toy
    CLIP."""
    path = Path(item.path)
    if path.suffix == ".ipynb" and loads_the_toy_clip(path):
        return TOY_CLIP
    return path.relative_to(root).as_posix()


def order_and_group(items: list[pytest.Item]) -> None:
    """Mark every item with its unit of work (``xdist_group``, for ``--dist
    loadgroup``) and put the longest units first, keeping the collected order inside a
    unit and among the rest (in place)."""
    if not items:
        return
    root = Path(items[0].config.rootpath)
    units = {}
    for item in items:
        unit = units.setdefault(item.path, unit_of(item, root))
        item.add_marker(pytest.mark.xdist_group(unit))
    first = {unit: rank for rank, unit in enumerate(LONGEST_FIRST)}
    collected = {id(item): n for n, item in enumerate(items)}
    items.sort(
        key=lambda item: (first.get(units[item.path], len(first)), collected[id(item)])
    )
