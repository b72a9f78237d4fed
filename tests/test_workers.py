"""How make test shares its work between two workers (tests/workers.py): the units,
their order, and the claim that lets the chapters run on a pinned worker, that two
threads on one core compute what two threads on two cores compute (and one thread does
not)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import workers

ROOT = Path(__file__).resolve().parents[1]

# 30 steps of the book's toy CLIP on 2,048 pairs; prints a hash of the weights.
TRAIN_AND_HASH = """
import dataclasses, hashlib, sys, tempfile
import torch
torch.set_num_threads(int(sys.argv[1]))
from clip_ref.toy import PRESETS, train_toy
toy = PRESETS["toy"]
run = dataclasses.replace(toy, train_size=2048, train=dataclasses.replace(
    toy.train, steps=30, warmup_steps=5, checkpoint_every=30))
out = tempfile.mkdtemp()
train_toy(run, out, progress=False)
weights = torch.load(out + "/model.pt", weights_only=True)
digest = hashlib.sha256()
for name in sorted(weights):
    digest.update(weights[name].contiguous().view(-1).numpy().tobytes())
print(digest.hexdigest())
"""


def test_the_chapters_of_the_toy_clip_are_one_unit_and_other_files_their_own():
    toy = workers.TOY_CLIP
    assert workers.unit_of("chapters/03_vision_transformer.ipynb::Cell 4") == toy
    assert workers.unit_of("chapters/07_zero_shot.ipynb::Cell 9") == toy
    assert workers.unit_of("chapters/11_ecosystem.ipynb::Cell 2") == toy
    # their own runs, or none
    for chapter in ("09_robustness", "06_training_objectives", "01_contrastive_idea"):
        nodeid = f"chapters/{chapter}.ipynb::Cell 1"
        assert workers.unit_of(nodeid) == f"chapters/{chapter}.ipynb"
    assert workers.unit_of("tests/test_loss.py::test_x[a::b]") == "tests/test_loss.py"


def test_every_chapter_that_loads_the_toy_clip_is_in_its_unit():
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        text = notebook.read_text()
        loads = "trained_toy_clip" in text and "runs/{preset}" not in text
        unit = workers.unit_of(f"chapters/{notebook.name}::Cell 0")
        assert (unit == workers.TOY_CLIP) == loads, notebook.name


def test_the_longest_units_go_first_and_the_rest_keep_their_order():
    names = [
        "tests/test_a.py::t1",
        "chapters/01_contrastive_idea.ipynb::Cell 0",
        "chapters/07_zero_shot.ipynb::Cell 0",
        "tests/test_parity.py::p",
        "chapters/09_robustness.ipynb::Cell 0",
        "tests/test_a.py::t2",
        "chapters/03_vision_transformer.ipynb::Cell 0",
        "chapters/09_robustness.ipynb::Cell 1",
    ]
    items = [SimpleNamespace(nodeid=name) for name in names]
    workers.longest_first(items)
    assert [item.nodeid for item in items] == [
        "chapters/09_robustness.ipynb::Cell 0",
        "chapters/09_robustness.ipynb::Cell 1",
        "chapters/07_zero_shot.ipynb::Cell 0",
        "chapters/03_vision_transformer.ipynb::Cell 0",
        "tests/test_parity.py::p",
        "tests/test_a.py::t1",
        "chapters/01_contrastive_idea.ipynb::Cell 0",
        "tests/test_a.py::t2",
    ]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_each_worker_is_pinned_to_its_share_of_the_cpus():
    cpus = sorted(workers.ALL_CPUS)
    script = (
        f"import sys, os; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "import workers; workers.pin_this_worker()\n"
        "print(sorted(os.sched_getaffinity(0)))"
    )
    for index in range(2):
        env = dict(
            os.environ, PYTEST_XDIST_WORKER=f"gw{index}", PYTEST_XDIST_WORKER_COUNT="2"
        )
        found = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=workers.unpinned,  # as the controller starts a worker
        )
        assert found.returncode == 0, found.stderr
        expected = cpus[index % len(cpus) :: 2] or cpus
        assert found.stdout.strip() == str(expected)


def _train_and_hash(threads: int, cpus: set[int] | None) -> str:
    found = subprocess.run(
        [sys.executable, "-c", TRAIN_AND_HASH, str(threads)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        # every CPU the machine gave this process, or those asked for
        preexec_fn=lambda: os.sched_setaffinity(0, cpus or workers.ALL_CPUS),
    )
    assert found.returncode == 0, found.stderr[-2000:]
    return found.stdout.strip()


@pytest.mark.slow  # three trainings in new processes
@pytest.mark.skipif(
    workers.ALL_CPUS is None or len(workers.ALL_CPUS) < 2,
    reason="needs two CPUs and Linux",
)
def test_two_threads_on_one_core_train_the_toy_clip_as_on_two_cores():
    # (a make-test worker is pinned to one core: the CPUs from before the pin)
    first = min(workers.ALL_CPUS)
    on_two_cores = _train_and_hash(2, None)
    on_one_core = _train_and_hash(2, {first})
    assert on_one_core == on_two_cores
    # the thread count, not the cores, decides the numbers: one thread gives others
    assert _train_and_hash(1, None) != on_two_cores
    assert len(on_two_cores) == len(hashlib.sha256().hexdigest())
