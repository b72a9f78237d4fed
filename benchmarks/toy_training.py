"""Benchmark: how long the chapter's toy CLIP takes to train, and how well it transfers
zero-shot.

    python benchmarks/toy_training.py   # one `python -m clip_ref.train --preset toy`
    python benchmarks/toy_training.py --repeat 3 --json runs/toy_benchmark.json

Each run is the real command line in a fresh process, timed from start to exit (imports,
data generation, training and evaluation), with the thread count pinned. The target:
on a 2-core machine the whole run takes at most 60 seconds and classifies at
least 90% of the images of held-out shape-colour combinations correctly among all 36
combinations. The table also shows the load average, because a busy machine makes every
timing longer: compare timings only from quiet machines. This is a measurement, not a
test; it exits with status 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from cpu_kernels import CPU_KERNELS

TARGET_SECONDS, TARGET_HELDOUT = 60.0, 0.90


def run_once(out: Path, threads: int, preset: str) -> dict:
    load_before = os.getloadavg()[0]
    command = [
        sys.executable,
        "-m",
        "clip_ref.train",
        "--preset",
        preset,
        "--out",
        str(out),
        "--threads",
        str(threads),
        "--no-progress",
        "--overwrite",  # a benchmark run replaces its own earlier output
    ]
    # The CPU kernels capped at AVX2 (tests/cpu_kernels.py), as for the tests and
    # the chapters' stored outputs.
    env = {**CPU_KERNELS, **os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        **metrics,
        "wall_seconds": round(wall, 2),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="toy")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (default 2, the target machine)",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--out", help="keep the runs' outputs here (default: a temporary folder)"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out) if args.out else Path(tmp)
        runs = [
            run_once(base / f"run{i}", args.threads, args.preset)
            for i in range(args.repeat)
        ]

    print(
        f"toy CLIP training benchmark: preset {args.preset}, {args.threads} threads, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch "
        f"{torch.__version__}"
    )
    print()
    print(
        "| run | wall (s) | training loop (s) | held-out top-1 | seen top-1 | chance | "
        "load avg before/after | target met |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(runs):
        met = (
            r["wall_seconds"] <= TARGET_SECONDS and r["heldout_top1"] >= TARGET_HELDOUT
        )
        print(
            f"| {i} | {r['wall_seconds']:.1f} | {r['train_seconds']:.1f} | "
            f"{100 * r['heldout_top1']:.1f}% | {100 * r['seen_top1']:.1f}% | "
            f"{100 * r['chance']:.1f}% | {r['load_before']:.1f} / "
            f"{r['load_after']:.1f} | {'yes' if met else 'no'} |"
        )
    print()
    print(
        f"target: wall <= {TARGET_SECONDS:.0f} s and held-out top-1 >= "
        f"{100 * TARGET_HELDOUT:.0f}% (among all shape-colour combinations)"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {"preset": args.preset, "threads": args.threads, "runs": runs}, indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
