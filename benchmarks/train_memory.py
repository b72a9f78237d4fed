"""Benchmark: peak memory of a training step against the contrastive batch N, plain,
with gradient checkpointing, and with gradient caching (chunks of C pairs).

    python benchmarks/train_memory.py                       # the toy CLIP, CPU
    python benchmarks/train_memory.py --sizes 256 1024 --model RN50 --device cuda

Each measurement runs in a fresh process: the model, its AdamW state (one step on 2
pairs allocates it) and N random pairs are made first, then two training steps of
:func:`clip_ref.train._step`'s computation (forward, loss, backward, update) run on
the N pairs. On the CPU the figure is the process's peak resident memory (VmHWM)
during those steps minus the peak before them, so it counts what the step itself needs:
activations, gradients, the N x N logits. On a GPU it is
``torch.cuda.max_memory_allocated``, in the same way. This is a measurement, not a
test; the times are shown only to say what the saving costs (on a busy machine,
compare them only within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _peak_mib() -> float:
    """The process's peak resident memory so far, MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def measure(model_name: str, n: int, chunk: int | None, checkpointing: bool, device):
    """One configuration, in this process: {peak step memory MiB, seconds per step}."""
    from clip_ref import CLIP, CLIPConfig
    from clip_ref.grad_cache import cached_contrastive_backward
    from clip_ref.loss import contrastive_loss
    from clip_ref.toy import PRESETS
    from clip_ref.train import (
        TrainConfig,
        adamw,
        apply_gradients,
        set_grad_checkpointing,
    )
    from clip_ref.training_run import Features

    torch.manual_seed(0)
    if model_name in PRESETS:
        config = PRESETS[model_name].model
    else:
        config = CLIPConfig.from_name(model_name)
    device = torch.device(device)
    model = CLIP(config).to(device).train()
    set_grad_checkpointing(model, checkpointing)
    optimizer = adamw(
        model, TrainConfig(steps=2, batch_size=n, lr=1e-4, warmup_steps=0), device
    )
    features = Features(model)
    r = config.image_resolution
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(n, 3, r, r, generator=generator).to(device)
    tokens = torch.randint(1, 49000, (n, config.context_length), generator=generator)
    tokens[:, -1] = 49407  # an end token, the largest id
    tokens = tokens.to(device)

    def step(i, t, chunk):
        optimizer.zero_grad(set_to_none=True)
        if chunk is None:
            loss = contrastive_loss(*features(i, t))
            loss.backward()
        else:
            cached_contrastive_backward(features, i, t, chunk)
        apply_gradients(model, optimizer, 1e-4, 1.0)

    step(images[:2], tokens[:2], None)  # allocates AdamW's moments
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.max_memory_allocated() / 2**20
    else:
        before = _peak_mib()
    started = time.perf_counter()
    for _ in range(2):
        step(images, tokens, chunk)
    if device.type == "cuda":
        torch.cuda.synchronize()
        after = torch.cuda.max_memory_allocated() / 2**20
    else:
        after = _peak_mib()
    seconds = (time.perf_counter() - started) / 2
    return {"step_mib": round(after - before, 1), "seconds": round(seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy", help="a toy preset or released name")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--chunk", type=int, default=128, help="C, pairs per chunk")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process's job
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        n, chunk, checkpointing = json.loads(args.one)
        print(json.dumps(measure(args.model, n, chunk, checkpointing, args.device)))
        return
    modes = [("plain", None, False), ("grad checkpointing", None, True)]
    modes.append((f"chunks of {args.chunk}", args.chunk, False))
    rows = []
    for n in args.sizes:
        row = {"N": n}
        for name, chunk, checkpointing in modes:
            command = [sys.executable, __file__, "--model", args.model]
            command += ["--device", args.device, "--threads", str(args.threads)]
            command += ["--one", json.dumps([n, chunk, checkpointing])]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            out = subprocess.run(command, env=env, check=True, capture_output=True)
            row[name] = json.loads(out.stdout.decode().strip().splitlines()[-1])
        rows.append(row)
    where = "peak RSS" if args.device == "cpu" else "max allocated"
    print(
        f"{args.model}, {args.device}, fp32, {args.threads} threads, torch "
        f"{torch.__version__}, {platform.machine()}; step memory = {where} during two "
        "steps minus before them (MiB); seconds per step in brackets\n"
    )
    print("| N | " + " | ".join(name for name, _, _ in modes) + " |")
    print("|---|" + "---|" * len(modes))
    for row in rows:
        cells = [
            f"{row[name]['step_mib']:,.0f} ({row[name]['seconds']:.2f} s)"
            for name, _, _ in modes
        ]
        print(f"| {row['N']:,} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
