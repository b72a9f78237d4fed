"""Training CLIP: the paper's recipe and its loop, on one CPU, one GPU or many
processes (paper §2.5, "Training").

The paper trains with AdamW (decoupled weight decay "to all weights that are not gains
or biases"), a cosine learning-rate schedule after a warm-up, a learned temperature
whose multiplier is clipped at 100, mixed precision, and a very large batch (32,768)
split over many GPUs, with the contrastive loss computed across the whole batch.
:func:`train` is that recipe for any CLIP and any dataset of (image, tokens) pairs; the
run's processes, checkpoints and log live beside it in :mod:`clip_ref.training_run`.
:mod:`clip_ref.finetune` continues training a given model on pairs listed in a CSV
file, and ``python -m clip_ref.train`` is the command line (:mod:`clip_ref.cli`):

    python -m clip_ref.train --preset toy --out runs/toy    # the book's toy CLIP
    python -m clip_ref.train --init ViT-B/32 --data pairs.csv --out runs/ft

Shapes: N pairs in the global batch, n = N / W pairs per process of W, E embedding dim.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from .grad_cache import cached_contrastive_backward
from .layers import Transformer
from .loss import MAX_LOGIT_SCALE, contrastive_loss
from .model import CLIP
from .training_run import (
    NO_LOSS_SCALING,
    TrainingRun,
    batches,
    check_fp32,
    check_run,
    distributed_context,
    fetch_batch,
    freeze_frozen_batchnorm,
    run_description,
)

__all__ = [
    "TrainConfig",
    "adamw",
    "apply_gradients",
    "clamp_logit_scale",
    "learning_rate",
    "optimizer_step",
    "param_groups",
    "set_grad_checkpointing",
    "train",
]


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe; with the same model, data and config, two runs
    compute the same numbers."""

    steps: int  # optimiser steps
    batch_size: int  # N, the global contrastive batch, split evenly over the processes
    lr: float  # peak learning rate, reached at the end of the warm-up
    warmup_steps: int
    weight_decay: float = 0.2  # the paper's value
    betas: tuple[float, float] = (0.9, 0.98)  # the paper's AdamW betas and epsilon
    eps: float = 1e-6
    grad_clip: float = 1.0  # maximum global gradient norm
    seed: int = 0  # the order of the batches
    log_every: int = 10
    checkpoint_every: int = 100

    def __post_init__(self):
        # a list read back from JSON compares equal
        object.__setattr__(self, "betas", tuple(self.betas))


# ---------------------------------------------------------------- the recipe


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters for AdamW as the paper does: decay every weight except gains and
    biases.

    Gains are the scales of the normalisation layers (LayerNorm, BatchNorm): decay would
    pull a channel's gain to zero and switch the channel off. Embeddings (token,
    positional, the class token) are weights and are decayed: the paper's sentence read
    literally (it says nothing more about embeddings). open_clip reads it otherwise: it
    exempts every parameter of fewer than two dimensions (the class token among them),
    and its recent versions the positional embeddings too. One addition: the
    temperature, ``logit_scale``, is not decayed either; pulling its log towards 0 would
    pull the logit multiplier towards 1, the softest possible softmax, against what the
    model learns (open_clip exempts it too).
    """
    gains = {
        id(p)
        for module in model.modules()
        if isinstance(module, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm))
        for p in module.parameters(recurse=False)
    }
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = id(param) in gains or name.endswith("bias") or name == "logit_scale"
        (no_decay if exempt else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``config.lr`` over ``warmup_steps``, then a cosine decay to
    zero at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * config.lr * (1 + math.cos(math.pi * min(1.0, progress)))


def adamw(
    model: nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """The paper's optimiser, with the recipe's settings. On CPUs and CUDA GPUs it is
    PyTorch's fused implementation (the same update, in one kernel per step instead of a
    dozen per parameter): on the toy CLIP, whose token embedding is nine tenths of its
    weights, a training step took 37 ms instead of 48 (BENCHMARKS.md).
    """
    return torch.optim.AdamW(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        fused=torch.device(device).type in ("cpu", "cuda"),
    )


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    lr: float,
    grad_clip: float,
    scaler: torch.amp.GradScaler = NO_LOSS_SCALING,
) -> torch.Tensor:
    """One update from ``loss`` at learning rate ``lr``: back-propagate, clip the
    global gradient norm to ``grad_clip``, step. Returns the norm before clipping. With
    fp16 on a GPU, ``scaler`` scales the loss so that small gradients do not
    underflow."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    return apply_gradients(model, optimizer, lr, grad_clip, scaler)


def apply_gradients(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr: float,
    grad_clip: float,
    scaler: torch.amp.GradScaler = NO_LOSS_SCALING,
) -> torch.Tensor:
    """The update of :func:`optimizer_step` from gradients already in ``.grad`` (by
    :func:`clip_ref.grad_cache.cached_contrastive_backward`, say): clip, step. Returns
    the norm before clipping."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    scaler.unscale_(optimizer)  # clip the true gradient, not the scaled one
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return grad_norm


def set_grad_checkpointing(model: nn.Module, enable: bool = True) -> None:
    """Recompute every Transformer block's activations in the backward pass instead of
    keeping them (the text encoder, and a ViT image encoder): less memory for a third
    more computation, the same gradients. A modified ResNet's blocks are not
    checkpointed: their BatchNorm would update its running statistics twice."""
    for module in model.modules():
        if isinstance(module, Transformer):
            module.grad_checkpointing = enable


@torch.no_grad()
def clamp_logit_scale(model: CLIP) -> None:
    """Clip the learned log-temperature so that the logits are multiplied by at most
    100 (paper §2.5)."""
    model.logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))


# ---------------------------------------------------------------- the loop


def _start(model, dataset, config, out, device, **folder) -> TrainingRun:
    """Check the model, the data and the recipe, place the model, set up its optimiser
    and precision, and only then claim the output folder (``resume``/``overwrite``)."""
    check_fp32(model)
    rank, world, default = distributed_context()
    device = torch.device(device) if device is not None else default
    check_run(config, len(dataset), world, folder.pop("stop_at"), device)
    model = model.to(device)
    optimizer = adamw(model, config, device)
    description = run_description(model, config, dataset)
    run = TrainingRun(model, optimizer, rank, world, device, Path(out), description)
    run.folder.claim(**folder)
    return run


def _step(run: TrainingRun, features, images, tokens, lr, grad_clip, chunk_size):
    """One training step on one batch: forward, loss, backward, update, clamp. Returns
    (loss, gradient norm before clipping), still on the device. With ``chunk_size``
    the encoders run on that many pairs at a time (gradient caching), to the same
    gradient."""
    if chunk_size is not None and chunk_size < len(images):
        run.optimizer.zero_grad(set_to_none=True)
        loss, scale = cached_contrastive_backward(
            features,
            images,
            tokens,
            chunk_size,
            distributed=run.world > 1,
            autocast=run.autocast,
            scale_loss=run.scaler.scale,
        )
        run.check_temperature(scale)
        grad_norm = apply_gradients(run.model, run.optimizer, lr, grad_clip, run.scaler)
        clamp_logit_scale(run.model)
        return loss, grad_norm.detach()
    with run.autocast:
        image_features, text_features, scale = features(images, tokens)  # [n, E] x 2
    run.check_temperature(scale)
    # The loss in fp32: the softmax over a large batch is where half precision hurts.
    distributed = run.world > 1
    loss = contrastive_loss(
        image_features.float(),
        text_features.float(),
        scale.float(),
        distributed=distributed,
    )
    grad_norm = optimizer_step(
        run.model, run.optimizer, loss, lr, grad_clip, run.scaler
    )
    clamp_logit_scale(run.model)
    return loss.detach(), grad_norm.detach()


def train(
    model: CLIP,
    dataset: Dataset,
    config: TrainConfig,
    out: os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    grad_checkpointing: bool = False,
) -> dict:
    """Train ``model`` on ``dataset`` (items ``(image [3, R, R], tokens [L])``) as
    ``config`` says, in one process or in each of W under ``torchrun``. ``resume``
    continues the run in ``out`` exactly, ``overwrite`` replaces it, ``stop_at`` ends it
    after that step with a checkpoint. Trainable weights must be fp32; frozen ones stay
    as they are. Returns ``{"stopped_at": step}``, or a summary after writing
    ``out/model.pt``.

    Two ways to fit a large batch in memory, both computing the same gradients (up to
    float rounding), so neither is part of the recipe that a resume must match:
    ``chunk_size`` runs the encoders on that many pairs of each process's batch at a
    time (gradient caching, :mod:`clip_ref.grad_cache`), and ``grad_checkpointing``
    recomputes the Transformer blocks' activations (:func:`set_grad_checkpointing`)."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    set_grad_checkpointing(model, grad_checkpointing)
    run = _start(
        model,
        dataset,
        config,
        out,
        device,
        resume=resume,
        overwrite=overwrite,
        stop_at=stop_at,
    )
    with run:  # the folder stays locked until the run ends, however it ends
        n = config.batch_size // run.world  # pairs per process
        sampler = run.sampler(dataset, config.seed, n)
        step = run.restore_checkpoint() if resume else 0
        log = run.read_log(step) if resume else []
        features = run.features(n)
        model.train()
        freeze_frozen_batchnorm(model)
        end = config.steps if stop_at is None else stop_at
        bar = run.progress_bar(config.steps, step, progress)
        started = time.perf_counter()
        for indices in batches(sampler, n, step):
            if step >= end:
                break
            # [n, 3, R, R], [n, L]
            images, tokens = fetch_batch(dataset, indices)
            images, tokens = images.to(run.device), tokens.to(run.device)
            lr = learning_rate(step, config)
            loss, grad_norm = _step(
                run, features, images, tokens, lr, config.grad_clip, chunk_size
            )
            step += 1
            if step % config.log_every == 0 or step == config.steps:
                seconds = time.perf_counter() - started
                log.append(run.log_entry(step, loss, grad_norm, lr, seconds))
                run.write_log(log)  # and shows the latest loss on the progress bar
            if step % config.checkpoint_every == 0 or step == end:
                run.save_checkpoint(step)
            bar.update(1)
        bar.close()
        return run.finish(config.steps, step, log, time.perf_counter() - started)


if __name__ == "__main__":  # python -m clip_ref.train: the command line of clip_ref.cli
    import sys

    from clip_ref.cli import run

    sys.exit(run())
