"""The command line for training: ``python -m clip_ref.train`` (see ``--help``).

It sits above both layers of the package: a toy CLIP from scratch comes from the book's
toy layer (:mod:`clip_ref.toy`, ``--preset``), fine-tuning from the reference
(:mod:`clip_ref.finetune`, ``--init``). Nothing in the package imports this module;
``clip_ref/train.py`` hands over to it when run as a script.

    python -m clip_ref.train --preset toy --out runs/toy          # the book's toy CLIP
    torchrun --nproc_per_node 2 -m clip_ref.train --preset toy --out runs/toy2
    python -m clip_ref.train --preset toy --out runs/toy --resume     # continue exactly
    python -m clip_ref.train --init ViT-B/32 --data pairs.csv --out runs/ft
    python -m clip_ref.train --init ViT-B/32 --data pairs.csv --out lit --lock-image
    python -m clip_ref.train --model RN50 --data pairs.csv --out runs/rn50  # scratch
    python -m clip_ref.train --preset toy --out big --batch-size 4096 --chunk-size 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import torch
import torch.distributed as dist

from . import toy
from .config import RELEASED
from .download import DownloadError
from .finetune import FINETUNE, FROM_SCRATCH, finetune, from_scratch
from .run_folder import DamagedCheckpointError, RunFolderError
from .train import TrainConfig
from .training_run import DivergedError

__all__ = ["main"]


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m clip_ref.train",
        description="Train CLIP: a toy CLIP from scratch, a released architecture from "
        "scratch on your pairs, or fine-tune a given model on them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group(
        "what to train: a toy CLIP from scratch, a released architecture from scratch "
        "(--model), or fine-tuning a given model (--init)"
    )
    what.add_argument(
        "--preset",
        help="a preset of clip_ref.toy: toy (the default without --init) or tiny",
    )
    what.add_argument(
        "--init",
        metavar="NAME_OR_PATH",
        help="fine-tune this model: a released name (e.g. ViT-B/32) or a checkpoint "
        "file",
    )
    what.add_argument(
        "--model",
        metavar="NAME",
        help="train this architecture from the paper's initialisation on --data: a "
        "released name (e.g. RN50, ViT-B/32) or the architecture of a toy preset (toy, "
        "tiny)",
    )
    what.add_argument(
        "--data",
        metavar="CSV",
        help="with --init or --model: the image-caption pairs, a CSV file with the "
        "columns filepath (relative to the CSV's folder) and caption",
    )
    what.add_argument(
        "--csv-separator",
        help="with --data: the column separator (default: a tab if the header row "
        "holds one, as in open_clip's files, else ,)",
    )
    what.add_argument(
        "--csv-image-key",
        default="filepath",
        help="with --data: the column of image paths (default filepath)",
    )
    what.add_argument(
        "--csv-caption-key",
        help="with --data: the column of captions (default caption, or open_clip's "
        "title in a file without a caption column)",
    )
    what.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="with --data: drop the pairs whose image cannot be decoded (listed in "
        "metrics.json) instead of stopping",
    )
    what.add_argument(
        "--lock-image",
        action="store_true",
        help="with --init: freeze the image encoder and train the text side only (LiT)",
    )
    parser.add_argument(
        "--out", required=True, help="output folder for logs, checkpoints and results"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in OUT exactly"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run in OUT and start again (without it, a new run refuses a "
        "folder that holds one)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        help=f"optimiser steps (default: the preset's; fine-tuning: {FINETUNE.steps})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="the global batch size N (default: the preset's; fine-tuning: "
        f"{FINETUNE.batch_size})",
    )
    parser.add_argument(
        "--lr",
        type=float,
        help="the peak learning rate (default: the preset's; fine-tuning: "
        f"{FINETUNE.lr:g})",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        help="learning-rate warm-up steps (default: the preset's; fine-tuning: a tenth "
        "of the steps)",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        help="run the encoders on this many pairs of each process's batch at a time "
        "(gradient caching): the same gradient as the whole batch, with memory for "
        "activations of one chunk",
    )
    parser.add_argument(
        "--grad-checkpointing",
        action="store_true",
        help="recompute the Transformer blocks' activations in the backward pass "
        "instead of keeping them (the same gradient, less memory, more time)",
    )
    parser.add_argument(
        "--train-size",
        type=int,
        help="with --preset: override the number of training pairs",
    )
    parser.add_argument(
        "--seed", type=int, help="override the seed (the order of the batches)"
    )
    parser.add_argument(
        "--checkpoint-every", type=int, help="override the checkpoint interval (steps)"
    )
    parser.add_argument(
        "--stop-at",
        type=int,
        help="stop after this step with a checkpoint (resume later)",
    )
    parser.add_argument(
        "--device", help="e.g. cpu or cuda:0 (default: the GPU if there is one)"
    )
    parser.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: torch's choice)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    args = parser.parse_args(argv)
    # Mistakes in the command are reported here, before anything is loaded or trained.
    if args.init is not None and args.model is not None:
        parser.error(
            "--init fine-tunes a given model and --model trains an architecture from "
            "scratch; pass one"
        )
    flag = "--init" if args.init is not None else "--model"
    if args.init is not None or args.model is not None:
        if args.preset is not None:
            parser.error(
                f"{flag} trains on your pairs and --preset trains a toy CLIP on the "
                "toy world; pass one"
            )
        if args.data is None:
            parser.error(
                f"{flag} needs --data, the CSV file of image-caption pairs to train on"
            )
        if args.train_size is not None:
            parser.error(
                f"--train-size sets the size of a toy preset; with {flag} the CSV "
                "file sets the data"
            )
        if args.lock_image and args.init is None:
            parser.error(
                "--lock-image freezes a trained image encoder: pass --init with the "
                "model to start from"
            )
    else:
        for flag, value in (
            ("--data", args.data),
            ("--lock-image", args.lock_image),
            ("--csv-separator", args.csv_separator is not None),
            ("--csv-image-key", args.csv_image_key != "filepath"),
            ("--csv-caption-key", args.csv_caption_key is not None),
            ("--skip-bad-images", args.skip_bad_images),
        ):
            if value:
                parser.error(
                    f"{flag} is for your own pairs: pass --init with the model to "
                    "fine-tune or --model with the architecture to train from scratch"
                )
    for flag, least in (
        ("steps", 1),
        ("batch_size", 2),  # the contrastive loss needs negatives
        ("warmup_steps", 0),
        ("checkpoint_every", 1),
        ("threads", 1),
        ("chunk_size", 1),
    ):
        value = getattr(args, flag)
        if value is not None and value < least:
            parser.error(
                f"--{flag.replace('_', '-')} must be at least {least}, got {value}"
            )
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    if args.resume and args.overwrite:
        parser.error(
            "--resume continues the run in OUT, --overwrite deletes it; pass one"
        )
    if args.stop_at is not None and args.stop_at < 1:
        parser.error(f"--stop-at must be at least 1, got {args.stop_at}")
    return args


def _recipe(args: argparse.Namespace, base: TrainConfig) -> TrainConfig:
    """``base`` with the command line's overrides."""
    overrides = {
        name: getattr(args, name)
        for name in (
            "steps",
            "batch_size",
            "lr",
            "warmup_steps",
            "seed",
            "checkpoint_every",
        )
        if getattr(args, name) is not None
    }
    return dataclasses.replace(base, **overrides)


def main(argv=None) -> dict:
    args = _parse_args(argv)
    architecture = None
    if args.model is not None:
        if args.model in toy.PRESETS:  # the toy architectures, on your pairs
            architecture = toy.PRESETS[args.model].model
        elif args.model in RELEASED:
            architecture = args.model
        else:
            raise SystemExit(
                f"unknown model {args.model!r}; choose a released architecture "
                f"({', '.join(RELEASED)}) or a toy preset's ({', '.join(toy.PRESETS)})"
            )
        steps = args.steps if args.steps is not None else FROM_SCRATCH.steps
        recipe = _recipe(
            args,
            dataclasses.replace(FROM_SCRATCH, steps=steps, warmup_steps=steps // 10),
        )
    elif args.init is None:
        name = args.preset or "toy"
        if name not in toy.PRESETS:
            raise SystemExit(
                f"unknown preset {name!r}; choose from {sorted(toy.PRESETS)}"
            )
        preset = toy.PRESETS[name]
        data = {"train_size": args.train_size} if args.train_size is not None else {}
        preset = dataclasses.replace(preset, train=_recipe(args, preset.train), **data)
    else:
        steps = args.steps if args.steps is not None else FINETUNE.steps
        recipe = _recipe(
            args, dataclasses.replace(FINETUNE, steps=steps, warmup_steps=steps // 10)
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    common = {
        "resume": args.resume,
        "overwrite": args.overwrite,
        "progress": not args.no_progress,
        "stop_at": args.stop_at,
        "device": args.device,
        "chunk_size": args.chunk_size,
        "grad_checkpointing": args.grad_checkpointing,
    }
    pairs = {
        "delimiter": args.csv_separator,
        "image_key": args.csv_image_key,
        "caption_key": args.csv_caption_key,
        "skip_bad_images": args.skip_bad_images,
    }
    try:
        if args.model is not None:
            metrics = from_scratch(
                architecture,
                args.data,
                args.out,
                recipe,
                name=args.model,
                **pairs,
                **common,
            )
        elif args.init is None:
            metrics = toy.train_toy(preset, args.out, **common)
        else:
            metrics = finetune(
                args.init,
                args.data,
                args.out,
                recipe,
                lock_image=args.lock_image,
                **pairs,
                **common,
            )
        lead = not dist.is_initialized() or dist.get_rank() == 0
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if lead and "stopped_at" not in metrics:
        print(json.dumps(metrics))
    return metrics


# What a user can cause and fix: a bad argument, file or image, a missing download, a
# folder in use or holding a run, a damaged checkpoint, a run that diverged.
USER_ERRORS = (
    ValueError,
    OSError,
    DownloadError,
    RunFolderError,
    DamagedCheckpointError,
    DivergedError,
)


def run(argv=None) -> int:
    """``main`` for the command line: a mistake in the command, the data or the run
    folder ends the process with its message and status 1, not a traceback."""
    try:
        main(argv)
    except USER_ERRORS as error:
        print(f"python -m clip_ref.train: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
