"""The distributed loss and training under torchrun: 2 CPU processes talking over gloo.

Each test launches ``python -m torch.distributed.run`` in a subprocess, so it exercises
the real process group, the real all-gather and DistributedDataParallel's real gradient
averaging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
WORLD = 2

pytestmark = pytest.mark.slow  # torchrun starts new processes


def torchrun(args, tmp_path, timeout=300):
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]),
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={WORLD}",
        *args,
    ]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"torchrun failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def worker_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    torchrun([str(TESTS / "distributed_worker.py"), str(out)], out)
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(WORLD)]


def test_distributed_loss_equals_single_process_loss(worker_results):
    for r in worker_results:
        assert r["world"] == WORLD
        assert r["loss_diff"] < 1e-12, r


def test_distributed_feature_and_temperature_gradients_equal_single_process(
    worker_results,
):
    for r in worker_results:
        assert r["grad_size"] > 1e-3  # the comparison is not between zeros
        assert r["image_grad_diff"] < 1e-12, r
        assert r["text_grad_diff"] < 1e-12, r
        assert r["scale_grad_diff"] < 1e-12, r


def test_gathering_without_gradients_gives_the_same_loss_but_wrong_gradients(
    worker_results,
):
    # The negative control: proves the comparison above can fail, and why the gather
    # must carry gradients.
    for r in worker_results:
        assert r["no_grad_gather_loss_diff"] < 1e-12, r
        assert r["no_grad_gather_image_grad_diff"] > 1e-3, r


def test_ddp_parameter_gradients_equal_single_process_on_concatenated_batch(
    worker_results,
):
    for r in worker_results:
        assert r["params_compared"] > 20
        assert r["param_grad_size"] > 1e-3
        assert r["param_grad_max_diff"] < 1e-10, r


def test_chunked_ddp_gradients_equal_single_process_on_concatenated_batch(
    worker_results,
):
    for r in worker_results:
        assert r["chunked_param_grad_max_diff"] < 1e-10, r
        assert r["chunked_loss_diff"] < 1e-12, r


def test_unequal_local_batches_raise_on_every_process(worker_results):
    for r in worker_results:
        assert (
            r["unequal_error"] is not None
            and "same number of pairs" in r["unequal_error"]
        )


@pytest.mark.parametrize("chunks", [[], ["--chunk-size", "3"]])
def test_train_cli_under_torchrun(tmp_path, chunks):
    out = tmp_path / "run"
    torchrun(
        [
            "-m",
            "clip_ref.train",
            "--preset",
            "tiny",
            "--out",
            str(out),
            "--no-progress",
            "--steps",
            "4",
            "--checkpoint-every",
            "2",
            *chunks,
        ],
        tmp_path,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == WORLD
    assert {"heldout_top1", "seen_top1", "chance", "train_seconds"} <= set(metrics)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [2, 4]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (
        state["world_size"] == WORLD
        and state["step"] == 4
        and len(state["rng"]) == WORLD
    )
