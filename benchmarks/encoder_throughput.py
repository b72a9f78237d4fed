"""Encoder throughput of clip_ref against open_clip and OpenAI's code, same weights, one
process.

Each implementation gets identical random weights (the test suite's perturbed
initialisation). Runs alternate between implementations round by round, so that a slow
spell of the machine hits all of them alike; the table reports the median throughput of
each and clip_ref's ratio to the fastest peer (>= 1.0 means clip_ref is no slower). This
is a measurement, not a test.

    python benchmarks/encoder_throughput.py   # CPU, fp32, batch 8, ViT-B/32 and RN50
    python benchmarks/encoder_throughput.py --output BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import (
    TINY_VIT,
    open_clip_model,
    openai_model,
    perturbed_state_dict,
    random_tokens,
)

from clip_ref import CLIPConfig, build_model


def time_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, batch: int, rounds: int, device: torch.device) -> list:
    config = TINY_VIT if name == "tiny" else CLIPConfig.from_name(name)
    state_dict = perturbed_state_dict(config)
    models = {
        "clip_ref": build_model(state_dict),
        "open_clip": open_clip_model(config, state_dict),
        "OpenAI": openai_model(config, state_dict),
    }
    models = {impl: model.to(device) for impl, model in models.items()}
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(
        batch, 3, config.image_resolution, config.image_resolution, generator=generator
    ).to(device)
    texts = random_tokens(batch, config.context_length).to(device)

    rows = []
    for encoder, inputs in (("image", images), ("text", texts)):
        times = {impl: [] for impl in models}
        calls = {
            impl: (lambda m=model, e=encoder, x=inputs: getattr(m, f"encode_{e}")(x))
            for impl, model in models.items()
        }
        with torch.no_grad():
            for call in calls.values():  # warm-up
                call()
            for r in range(rounds):
                # rotate who goes first
                order = list(calls)[r % len(calls) :] + list(calls)[: r % len(calls)]
                for impl in order:
                    times[impl].append(time_call(calls[impl]))
        throughput = {impl: batch / statistics.median(t) for impl, t in times.items()}
        fastest_peer = max(v for impl, v in throughput.items() if impl != "clip_ref")
        rows.append((name, encoder, throughput, throughput["clip_ref"] / fastest_peer))
    return rows


def table(rows: list, batch: int, device: torch.device, rounds: int) -> str:
    lines = [
        f"Encoder throughput, fp32, batch {batch}, {device.type}, "
        f"{torch.get_num_threads()} threads, median of {rounds} alternating rounds; "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{datetime.date.today().isoformat()}.",
        "",
        "| model | encoder | clip_ref (items/s) | open_clip (items/s) | OpenAI "
        "(items/s) | clip_ref / fastest peer |",
        "|---|---|---|---|---|---|",
    ]
    for name, encoder, throughput, ratio in rows:
        lines.append(
            f"| {name} | {encoder} | {throughput['clip_ref']:.1f} | "
            f"{throughput['open_clip']:.1f} | {throughput['OpenAI']:.1f} | {ratio:.2f} "
            "|"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["ViT-B/32", "RN50"],
        help='released names, or "tiny"',
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--output", type=Path, help="also write the table to this markdown file"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    rows = [
        row
        for name in args.models
        for row in measure(name, args.batch, args.rounds, device)
    ]
    text = table(rows, args.batch, device, args.rounds)
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
