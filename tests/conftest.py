"""Shared test set-up: the CPU kernels the stored outputs were computed with (capped
here, before torch is imported, and inherited by the notebook kernels:
tests/cpu_kernels.py), the same global torch state at the start of every test, whatever
ran before it, the Colab rehearsal folded into the nbval run (tests/rehearsal.py), and
how ``make test`` shares the tests between its two workers (tests/workers.py).

Tests that pin the thread count (for reproducible sums) or change other process-wide
torch settings would otherwise leak them into every later test, so that speed and
results depend on test order.
"""

import shutil
import tempfile
from pathlib import Path

from cpu_kernels import cap_cpu_kernels
from workers import longest_first, make_scheduler, pin_this_worker

cap_cpu_kernels()  # before torch is imported
pin_this_worker()  # under pytest-xdist: a core per worker, before torch starts threads

import pytest
import torch

_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def restore_torch_state():
    dtype = torch.get_default_dtype()
    grad = torch.is_grad_enabled()
    deterministic = torch.are_deterministic_algorithms_enabled()
    rng = torch.get_rng_state()
    yield
    torch.set_num_threads(_THREADS)
    torch.set_default_dtype(dtype)
    torch.set_grad_enabled(grad)
    # the call itself is slow
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)
    torch.set_rng_state(rng)


# --------------------------------------------------------------------------------------
# The Colab dress rehearsal: under nbval, the chapters' skipped cells run against
# stand-ins in the same kernels (tests/rehearsal.py).

_REHEARSAL = {}


def pytest_collection_modifyitems(session, config, items):
    longest_first(items)
    if not config.getoption("nbval", default=False):
        return
    from rehearsal import rehearse_items

    folder = Path(tempfile.mkdtemp(prefix="clip-ref-rehearsal-"))
    _REHEARSAL["folder"] = folder
    _REHEARSAL["counts"] = rehearse_items(items, folder)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    return make_scheduler(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """Under xdist, the rehearsal's counts come from the workers, which collected."""
    counts = getattr(node, "workeroutput", {}).get("rehearsal")
    if counts is not None:
        _REHEARSAL.setdefault("counts", tuple(counts))


@pytest.fixture(scope="session")
def stand_in_cache(tmp_path_factory) -> Path:
    """The folder of the rehearsal's stand-in weights: the nbval run's own when it runs
    (so the stand-ins are built once), else a temporary one."""
    if "folder" in _REHEARSAL:
        cache = _REHEARSAL["folder"] / "clip-weights"
        cache.mkdir(parents=True, exist_ok=True)
        return cache
    return tmp_path_factory.mktemp("clip-weights")


def pytest_terminal_summary(terminalreporter):
    if "counts" in _REHEARSAL:
        cells, chapters = _REHEARSAL["counts"]
        terminalreporter.write_line(
            f"rehearsal: {cells} Colab-only cells of {chapters} chapters ran against "
            "stand-ins in the nbval kernels"
        )


def pytest_sessionfinish(session):
    if "counts" in _REHEARSAL and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["rehearsal"] = _REHEARSAL["counts"]
    if "folder" in _REHEARSAL:
        shutil.rmtree(_REHEARSAL["folder"], ignore_errors=True)
