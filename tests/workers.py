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

The work goes out in units (:class:`ByUnit`): a test file, a notebook (its cells share
one kernel), or all the chapters that share the toy CLIP of ``chapters/runs/toy`` (the
first of them trains it, the others reuse it). A worker runs a unit whole and in order;
the longest units go first (:func:`longest_first`), so that the two workers finish
together.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import pytest

# The longest units of work (measured with --durations), longest first; the rest follow
# in the order pytest collected them.
TOY_CLIP = "the chapters of the toy CLIP"
LONGEST_FIRST = (
    "chapters/09_robustness.ipynb",
    "chapters/06_training_objectives.ipynb",
    TOY_CLIP,
    "tests/test_parity.py",
    "tests/test_book.py",
)
# A chapter that loads the toy CLIP of chapters/runs/toy: the folder named, or the
# function's default.
_LOADS_THE_TOY_CLIP = re.compile(
    r"""["']runs/toy["']|trained_toy_clip\((progress=\w+)?\)"""
)
ROOT = Path(__file__).resolve().parents[1]
# The CPUs this process may use before pin_this_worker narrows them.
ALL_CPUS = (
    frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
)


def pin_this_worker() -> None:
    """In an xdist worker, run on its share of the CPUs: worker i of W gets every W-th
    CPU from the i-th. Outside xdist, nothing changes."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    cpus = sorted(ALL_CPUS)
    index = int(worker.removeprefix("gw"))
    os.sched_setaffinity(0, cpus[index % len(cpus) :: count] or cpus)


def unpinned() -> None:
    """A ``preexec_fn`` for a subprocess that must see every CPU, as a user's command
    does (``DataLoader`` warns when given more workers than it sees CPUs)."""
    if ALL_CPUS is not None:
        os.sched_setaffinity(0, ALL_CPUS)


@functools.cache
def loads_the_toy_clip(notebook: Path) -> bool:
    """Whether ``notebook``'s code loads (or first trains) the shared toy CLIP."""
    import nbformat

    cells = nbformat.read(notebook, as_version=4).cells
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    return bool(_LOADS_THE_TOY_CLIP.search(code))


def unit_of(nodeid: str) -> str:
    """The unit of work of the test ``nodeid``: its file, or the chapters of the toy
    CLIP."""
    path = nodeid.split("::")[0]
    if path.endswith(".ipynb") and loads_the_toy_clip(ROOT / path):
        return TOY_CLIP
    return path


def longest_first(items: list[pytest.Item]) -> None:
    """Put the units of ``LONGEST_FIRST`` first, in that order, keeping the collected
    order inside each unit and among the rest (in place)."""
    rank = {unit: n for n, unit in enumerate(LONGEST_FIRST)}
    collected = {id(item): n for n, item in enumerate(items)}

    def key(item):
        return rank.get(unit_of(item.nodeid), len(rank)), collected[id(item)]

    items.sort(key=key)


def make_scheduler(config, log):
    """xdist's scheduling by scope, with :func:`unit_of` as the scope and the units
    sent in the collected order (see :func:`longest_first`)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False
    return ByUnit(config, log)
