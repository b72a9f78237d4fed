"""Training CLIP from scratch, on one CPU, one GPU or many processes (paper §2.5, "Training").

The paper trains with AdamW (decoupled weight decay on every weight except gains, biases and the
temperature), a cosine learning-rate schedule after a warm-up, a learned temperature whose multiplier is
clipped at 100, mixed precision, and a very large batch (32,768) split over many GPUs, with the
contrastive loss computed across the whole batch. This module is that recipe at toy scale:

    python -m clip_ref.train --preset toy --out runs/toy          # chapter 6's toy CLIP, < 2 min on 2 cores
    torchrun --nproc_per_node 2 -m clip_ref.train --preset toy --out runs/toy2   # the same, 2 processes
    python -m clip_ref.train --preset toy --out runs/toy --resume  # continue an interrupted run exactly

The output folder receives ``log.jsonl`` (one JSON line per logged step), ``checkpoint.pt`` (everything a
resumed run needs, tensors and plain values only, read back with ``torch.load(weights_only=True)``),
``model.pt`` with ``config.json`` (the trained weights in OpenAI's state-dict format, for
:func:`load_trained`) and ``metrics.json`` (zero-shot top-1 on the held-out and seen combinations of
:mod:`clip_ref.toy_data`, chance, and the training time).

Shapes: N pairs in the global batch, n = N / W pairs per process of W, E embedding dim.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, default_collate
from tqdm import tqdm

from .config import CLIPConfig
from .loss import MAX_LOGIT_SCALE, contrastive_loss
from .model import CLIP
from .toy_data import CLASSNAMES, COMBINATIONS, DEFAULT_TEMPLATE, ToyCaptions, normalize, prompt_template
from .zeroshot import zero_shot_classifier

__all__ = [
    "TrainConfig", "PRESETS", "param_groups", "learning_rate", "clamp_logit_scale", "zero_shot_top1",
    "train", "save_trained", "load_trained", "main",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; two runs with equal configs compute the same numbers."""

    model: CLIPConfig
    steps: int  # optimiser steps
    batch_size: int  # N, the global contrastive batch, split evenly over the processes
    lr: float  # peak learning rate, reached at the end of the warm-up
    warmup_steps: int
    weight_decay: float = 0.2  # the paper's value
    betas: tuple = (0.9, 0.98)  # the paper's AdamW betas and epsilon
    eps: float = 1e-6
    grad_clip: float = 1.0  # maximum global gradient norm
    train_size: int = 8192  # toy pairs to train on
    eval_size: int = 1024  # toy images per evaluation split
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        values["model"] = CLIPConfig(**values["model"])
        values["betas"] = tuple(values["betas"])
        return cls(**values)


# The toy CLIP: the real architecture (a ViT image encoder, a causal text Transformer, the real 49,408-token
# BPE vocabulary), shrunk until it trains in under two minutes on two CPU cores (benchmarks/toy_training.py).
# Measured choices: 8-pixel patches (16 per image) learned more per second than 4-pixel ones, and a tiny
# modified ResNet fitted the seen combinations but transferred far worse to the held-out ones.
_TOY_MODEL = CLIPConfig(embed_dim=64, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
                        transformer_width=64, transformer_heads=1, transformer_layers=2, context_length=20)
PRESETS = {
    "toy": TrainConfig(model=_TOY_MODEL, steps=1500, batch_size=128, lr=2e-3, warmup_steps=100,
                       checkpoint_every=500),
    # A smoke test: the same pipeline in seconds, too short to learn much.
    "tiny": TrainConfig(model=dataclasses.replace(_TOY_MODEL, vision_layers=1, transformer_layers=1),
                        steps=8, batch_size=16, lr=1e-3, warmup_steps=2, train_size=256, eval_size=64,
                        log_every=2, checkpoint_every=4),
}


def param_groups(model: nn.Module, weight_decay: float) -> list:
    """Split parameters for AdamW: decay the weight matrices, not gains, biases, embeddings or the temperature.

    Decay pulls weights towards zero. That regularises a matrix, but a LayerNorm gain pulled to zero
    switches its channel off, and pulling the temperature's log down would soften every softmax.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim < 2 or "embedding" in name or name.endswith("logit_scale")
        (no_decay if exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``config.lr`` over ``warmup_steps``, then a cosine decay to zero at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * config.lr * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def clamp_logit_scale(model: CLIP) -> None:
    """Clip the learned log-temperature so that the logits are multiplied by at most 100 (paper §2.5)."""
    model.logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))


class _Features(nn.Module):
    """CLIP's forward pass up to the loss: (image features, text features, logit multiplier).

    DistributedDataParallel prepares its gradient synchronisation when its wrapped module's ``forward``
    runs, so that ``forward`` must return what the loss needs. ``CLIP.forward`` returns logits that compare
    one process's images with its own texts only; the distributed loss needs the features, to gather them.
    """

    def __init__(self, model: CLIP):
        super().__init__()
        self.model = model

    def forward(self, images, tokens):
        return self.model.encode_image(images), self.model.encode_text(tokens), self.model.logit_scale.exp()


@torch.no_grad()
def zero_shot_top1(model: CLIP, dataset: ToyCaptions, template: str = DEFAULT_TEMPLATE,
                   batch_size: int = 512) -> float:
    """Top-1 accuracy of classifying the dataset's images among all ``COMBINATIONS`` by prompt alone."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    weights = zero_shot_classifier(model, CLASSNAMES, [prompt_template(template)], device=device,
                                   progress=False)  # [E, C]
    correct = 0
    for start in range(0, len(dataset), batch_size):
        images = normalize(dataset.images[start:start + batch_size]).to(device)
        features = F.normalize(model.encode_image(images).float(), dim=-1)  # [B, E]
        predictions = (features @ weights).argmax(dim=-1).cpu()
        correct += (predictions == dataset.labels[start:start + batch_size]).sum().item()
    model.train(was_training)
    return correct / len(dataset)


def _distributed_context():
    """(rank, world size, device) under torchrun, or (0, 1, best device) in a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return rank, world, torch.device("cuda", local)
        return rank, world, torch.device("cpu")
    return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _atomic_save(obj, path: Path) -> None:
    """Write to a temporary file and rename, so an interruption never leaves a half-written checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _batches(sampler: DistributedSampler, local_batch: int, step: int):
    """This process's batches of dataset indices from ``step`` on, epoch after epoch, without end.

    The order depends only on the sampler's seed and the epoch, so a resumed run rebuilds the epoch it
    stopped in and skips the batches it has already trained on.
    """
    per_epoch = len(sampler) // local_batch  # the incomplete last batch is dropped
    epoch, skip = divmod(step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        order = list(sampler)
        for b in range(skip, per_epoch):
            yield order[b * local_batch:(b + 1) * local_batch]
        epoch, skip = epoch + 1, 0


def _read_log(path: Path, upto_step: int) -> list:
    """The log lines up to ``upto_step``: a resumed run drops the lines of steps it will redo."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [entry for entry in lines if entry["step"] <= upto_step]


def train(config: TrainConfig, out: os.PathLike, resume: bool = False, progress: bool = True,
          stop_at: Optional[int] = None, device: Optional[torch.device] = None) -> dict:
    """Train a CLIP on the toy data as ``config`` says, writing logs, checkpoints and results to ``out``.

    Run it in one process, or in each of W processes under ``torchrun`` (the batch is then split W ways
    and the loss gathered across processes). ``resume=True`` continues from ``out/checkpoint.pt``
    exactly as if the run had never stopped. ``stop_at`` ends the run after that many steps with a
    checkpoint (an interruption on purpose, e.g. to fit a session limit). Returns the metrics (also
    written to ``out/metrics.json``) when the run is complete, else ``{"stopped_at": step}``.

    Process 0 writes every file; all processes read the checkpoint when resuming, so ``out`` must be a
    folder they all see. An exact resume needs the same config, number of processes and kind of device.
    """
    started = time.perf_counter()
    out = Path(out)
    rank, world, default_device = _distributed_context()
    device = torch.device(device) if device is not None else default_device
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} does not split evenly over {world} processes")
    local_batch = config.batch_size // world  # n
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:  # a fresh run in an old folder: never leave the old run's results beside the new run
            (out / "metrics.json").unlink(missing_ok=True)

    # Same seed on every process: identical initial weights (DDP also broadcasts rank 0's at start).
    torch.manual_seed(config.seed)
    model = CLIP(config.model).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                                  betas=config.betas, eps=config.eps)
    # Mixed precision on GPU (the paper trains in it): bf16 where supported, else fp16 with loss scaling.
    use_amp = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    step = 0
    checkpoint_path, log_path = out / "checkpoint.pt", out / "log.jsonl"
    if resume:
        if not checkpoint_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}")
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        saved = TrainConfig.from_dict(json.loads(state["config"]))
        if saved != config or state["world_size"] != world or state["device_type"] != device.type:
            raise ValueError(
                f"{checkpoint_path} was written by a different run ({saved}, {state['world_size']} processes on "
                f"{state['device_type']}); an exact resume needs the same settings, process count and kind of "
                f"device (now: {config}, {world} processes on {device.type})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"][rank].cpu())
        step = int(state["step"])
    log = _read_log(log_path, step) if resume else []

    features = _Features(model)
    if world > 1:
        features = DistributedDataParallel(features, device_ids=[device.index] if device.type == "cuda" else None)

    dataset = ToyCaptions("train", size=config.train_size, seed=config.seed,
                          resolution=config.model.image_resolution, context_length=config.model.context_length)
    # DistributedSampler deals each process its own shard of a seeded permutation per epoch; with one
    # process it is a plain seeded shuffle.
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=config.seed,
                                 drop_last=True)
    if len(sampler) < local_batch:
        raise ValueError(f"train_size {config.train_size} is smaller than one batch of {config.batch_size}")

    model.train()
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    bar = tqdm(total=config.steps, initial=step, disable=not progress or rank != 0, desc="training",
               unit="step", dynamic_ncols=True)
    loop_started = time.perf_counter()
    for indices in _batches(sampler, local_batch, step):
        if step >= end:
            break
        images, tokens = default_collate([dataset[i] for i in indices])  # [n, 3, R, R], [n, L]
        images, tokens = images.to(device, non_blocking=True), tokens.to(device, non_blocking=True)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)

        with torch.autocast(device.type, dtype=amp_dtype) if use_amp else nullcontext():
            image_features, text_features, scale = features(images, tokens)  # [n, E], [n, E], []
        # The loss in fp32: the softmax over a large batch is where half precision hurts.
        loss = contrastive_loss(image_features.float(), text_features.float(), scale.float(),
                                distributed=world > 1)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradient, not the loss-scaled one
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        clamp_logit_scale(model)
        step += 1

        if step % config.log_every == 0 or step == config.steps:
            loss_value = loss.detach().clone()
            if world > 1:  # the logged loss is the whole batch's: the mean of the processes' shares
                dist.all_reduce(loss_value)
                loss_value /= world
            log.append({"step": step, "loss": round(loss_value.item(), 6),
                        "lr": learning_rate(step - 1, config), "grad_norm": round(grad_norm.item(), 6),
                        "logit_scale": round(model.logit_scale.exp().item(), 6),
                        "seconds": round(time.perf_counter() - loop_started, 3)})
            if rank == 0:
                log_path.write_text("".join(json.dumps(entry) + "\n" for entry in log))
            bar.set_postfix(loss=f"{log[-1]['loss']:.3f}", scale=f"{log[-1]['logit_scale']:.1f}")
        if step % config.checkpoint_every == 0 or step == end:
            _save_checkpoint(checkpoint_path, model, optimizer, scaler, step, config, rank, world)
        bar.update(1)
    bar.close()
    train_seconds = time.perf_counter() - loop_started

    if step < config.steps:
        if world > 1:
            dist.barrier()
        return {"stopped_at": step}

    metrics = {}
    if rank == 0:
        save_trained(model, out)
        heldout = ToyCaptions("heldout", size=config.eval_size, seed=config.seed,
                              resolution=config.model.image_resolution, context_length=config.model.context_length)
        seen = ToyCaptions("seen", size=config.eval_size, seed=config.seed,
                           resolution=config.model.image_resolution, context_length=config.model.context_length)
        metrics = {
            "heldout_top1": zero_shot_top1(model, heldout),
            "seen_top1": zero_shot_top1(model, seen),
            "chance": 1 / len(COMBINATIONS),
            "train_seconds": round(train_seconds, 2),
            "total_seconds": round(time.perf_counter() - started, 2),
            "steps": config.steps,
            "final_loss": log[-1]["loss"] if log else None,
            "logit_scale": model.logit_scale.exp().item(),
            "world_size": world,
            "device": str(device),
            "threads": torch.get_num_threads(),
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if world > 1:
        dist.barrier()
    return metrics


def _save_checkpoint(path, model, optimizer, scaler, step, config, rank, world) -> None:
    """Save what an exact resume needs: weights, AdamW moments, loss scaler, step, every process's RNG."""
    rng = torch.get_rng_state()
    if world > 1:  # the RNG state of each process, gathered to rank 0
        states = [None] * world
        dist.all_gather_object(states, rng)
        rng = states
    else:
        rng = [rng]
    if rank == 0:
        _atomic_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "step": step, "rng": rng, "world_size": world, "device_type": next(model.parameters()).device.type,
            "config": json.dumps(config.to_dict()),
        }, path)


def save_trained(model: CLIP, out: os.PathLike) -> None:
    """Write ``out/model.pt`` (OpenAI-format state dict, tensors only) and ``out/config.json``."""
    out = Path(out)
    _atomic_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out / "model.pt")
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(model.config), indent=2) + "\n")


def load_trained(out: os.PathLike, device="cpu") -> CLIP:
    """The model a training run saved in ``out``, in eval mode (weights read with ``weights_only=True``)."""
    out = Path(out)
    config = CLIPConfig(**json.loads((out / "config.json").read_text()))
    model = CLIP(config)
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu", weights_only=True), strict=True)
    return model.to(device).eval()


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m clip_ref.train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="toy", help="model and schedule (default: toy)")
    parser.add_argument("--out", required=True, help="output folder for logs, checkpoints and results")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--steps", type=int, help="override the preset's number of steps")
    parser.add_argument("--batch-size", type=int, help="override the global batch size N")
    parser.add_argument("--lr", type=float, help="override the peak learning rate")
    parser.add_argument("--train-size", type=int, help="override the number of training pairs")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--checkpoint-every", type=int, help="override the checkpoint interval (steps)")
    parser.add_argument("--stop-at", type=int, help="stop after this step with a checkpoint (resume later)")
    parser.add_argument("--device", help="e.g. cpu or cuda:0 (default: the GPU if there is one)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = _parse_args(argv)
    overrides = {name: value for name, value in [
        ("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr), ("train_size", args.train_size),
        ("seed", args.seed), ("checkpoint_every", args.checkpoint_every)] if value is not None}
    config = dataclasses.replace(PRESETS[args.preset], **overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        metrics = train(config, args.out, resume=args.resume, progress=not args.no_progress,
                        stop_at=args.stop_at, device=args.device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if metrics and "heldout_top1" in metrics:
        print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
