"""GPU encoder throughput of clip_ref against open_clip, same random weights, fp16 and
bf16, batch 256.

A benchmark, not a test: it measures and reports. For ViT-B/32 and RN50 it builds both
implementations from one OpenAI-format state dict, checks that they compute the same
features (so the timings compare the same computation), then times ``encode_image`` and
``encode_text`` in two precision modes:

* ``autocast``: fp32 weights run under ``torch.autocast`` in the given dtype
(open_clip's ``amp`` evaluation);
* ``cast``: every weight cast to the dtype with ``model.to(dtype)`` (pure half-precision
inference).

Runs alternate between the two implementations (ABBA order), and each figure is the
median over repeats. The ratio is clip_ref's throughput over open_clip's: above 1.0,
clip_ref is faster.

    python benchmarks/gpu_throughput.py --out gpu_throughput.md

Needs a CUDA GPU (``--device cpu`` exists only for a quick smoke test of the script
itself).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
# the test suite's weights and reference builders
sys.path.insert(0, str(ROOT / "tests"))
from support import (
    open_clip_model,
    perturbed_state_dict,
    random_tokens,
    relative_error,
)

from clip_ref import CLIPConfig, build_model

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, iterations: int, device: torch.device) -> float:
    """Seconds per call, averaged over ``iterations`` back-to-back calls."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / iterations


def benchmark(name, args, device, generator) -> list:
    config = CLIPConfig.from_name(name)
    state_dict = perturbed_state_dict(config)
    fp32 = {
        "clip_ref": build_model(state_dict),
        "open_clip": open_clip_model(config, state_dict),
    }
    images = torch.randn(
        args.batch_size,
        3,
        config.image_resolution,
        config.image_resolution,
        generator=generator,
    ).to(device)
    texts = random_tokens(args.batch_size, config.context_length).to(device)
    rows = []
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        for mode in args.modes:
            models = {}
            for impl, model in fp32.items():
                copy = (
                    build_model(model.state_dict())
                    if impl == "clip_ref"
                    else open_clip_model(config, state_dict)
                )
                copy = copy.to(device)
                models[impl] = copy.to(dtype) if mode == "cast" else copy

            def context(mode=mode, dtype=dtype):
                if mode == "autocast":
                    return torch.autocast(device.type, dtype=dtype)
                return contextlib.nullcontext()

            for encoder in ("image", "text"):
                inputs = (
                    images.to(dtype)
                    if (encoder == "image" and mode == "cast")
                    else images
                )
                calls = {}
                for impl, model in models.items():
                    method = (
                        model.encode_image if encoder == "image" else model.encode_text
                    )
                    argument = inputs if encoder == "image" else texts

                    def call(method=method, argument=argument):
                        with torch.inference_mode(), context():
                            return method(argument)

                    calls[impl] = call
                # Same computation? Compare the features before timing them.
                error = relative_error(
                    calls["clip_ref"]().float(), calls["open_clip"]().float()
                )
                for call in calls.values():  # warm-up: kernels selected, caches filled
                    for _ in range(args.warmup):
                        call()
                seconds = {impl: [] for impl in calls}
                order = list(calls)
                for repeat in range(args.repeats):
                    # ABBA order: neither implementation always runs first.
                    for impl in order if repeat % 2 == 0 else order[::-1]:
                        seconds[impl].append(
                            time_call(calls[impl], args.iterations, device)
                        )
                throughput = {
                    impl: args.batch_size / statistics.median(s)
                    for impl, s in seconds.items()
                }
                rows.append(
                    {
                        "model": name,
                        "dtype": dtype_name,
                        "mode": mode,
                        "encoder": encoder,
                        "clip_ref": throughput["clip_ref"],
                        "open_clip": throughput["open_clip"],
                        "ratio": throughput["clip_ref"] / throughput["open_clip"],
                        "rel_error": error,
                    }
                )
                print(
                    f"{name:9} {dtype_name} {mode:8} {encoder:5} clip_ref "
                    f"{throughput['clip_ref']:9.0f}/s  open_clip "
                    f"{throughput['open_clip']:9.0f}/s  ratio {rows[-1]['ratio']:.3f}  "
                    f"(features differ by {error:.1e})",
                    flush=True,
                )
            del models
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def table(rows, device, args) -> str:
    import open_clip

    card = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "CPU"
    )
    lines = [
        f"# GPU encoder throughput: clip_ref vs open_clip (batch {args.batch_size})",
        "",
        f"Device: {card}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"open_clip {open_clip.__version__}. Median of {args.repeats} alternating "
        f"repeats of {args.iterations} calls after {args.warmup} warm-up calls; same "
        "random weights in both; ratio = clip_ref / open_clip (above 1.0: clip_ref "
        "faster).",
        "",
        "| model | dtype | mode | encoder | clip_ref (items/s) | open_clip (items/s) | "
        "ratio | feature rel. error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['dtype']} | {r['mode']} | {r['encoder']} | "
            f"{r['clip_ref']:.0f} | {r['open_clip']:.0f} | {r['ratio']:.3f} | "
            f"{r['rel_error']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["ViT-B/32", "RN50"])
    parser.add_argument(
        "--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES)
    )
    parser.add_argument(
        "--modes", nargs="+", default=["autocast", "cast"], choices=["autocast", "cast"]
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA GPU here: this benchmark measures GPU throughput (--device cpu "
            "only smoke-tests it)"
        )
    generator = torch.Generator().manual_seed(0)
    rows = []
    for name in args.models:
        rows += benchmark(name, args, device, generator)
    text = table(rows, device, args)
    print()
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return rows


if __name__ == "__main__":
    main()
