"""The paper's training recipe for any model and loss on data held in memory: the
loop that trains the book's baselines (the supervised classifiers of the robustness
chapter, the captioning and bag-of-words objectives of Figure 2).

It reuses the reference's recipe pieces (:func:`clip_ref.train.adamw`,
:func:`~clip_ref.train.learning_rate`, :func:`~clip_ref.train.optimizer_step`), so a
baseline and CLIP differ in their supervision only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from ..train import TrainConfig, adamw, learning_rate, optimizer_step

__all__ = ["train_on_tensors"]


def train_on_tensors(
    model: nn.Module,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    config: TrainConfig,
    *,
    after_step: Callable[[], None] | None = None,
    evaluate: Callable[[nn.Module], float] | None = None,
    evaluate_every: int = 100,
    progress: bool = True,
) -> dict:
    """The recipe of :func:`clip_ref.train.train` for any model and loss, on data held
    in memory, in one process: the book's baselines (:mod:`clip_ref.toy.supervised`,
    :mod:`clip_ref.toy.objectives`) train with it.

    ``loss(inputs[batch], targets[batch])`` is minimised with AdamW (the paper's decay
    rule), a warm-up then cosine schedule and gradient clipping; batches come from a
    seeded shuffle per epoch (``config.seed``), the incomplete last batch dropped;
    ``after_step()`` runs after each optimiser step. ``evaluate(model)`` (in eval mode,
    without gradients) is called at step 0, every ``evaluate_every`` steps and at the
    end. Deterministic for a given seed, data and thread count. Returns ``{"steps",
    "final_loss", "train_seconds", "curve"}``, ``curve`` a list of ``{"step",
    "images_seen", "score"}`` (empty without ``evaluate``); the model ends in eval mode.
    """
    if len(inputs) != len(targets):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    if len(targets) < config.batch_size:
        raise ValueError(
            f"{len(targets)} examples are fewer than one batch of {config.batch_size}"
        )
    if evaluate_every < 1:
        raise ValueError(f"evaluate_every must be positive, got {evaluate_every}")
    optimizer = adamw(model, config, inputs.device)
    generator = torch.Generator().manual_seed(config.seed)
    per_epoch = len(targets) // config.batch_size
    curve, seconds, value = [], 0.0, torch.tensor(math.nan)

    def checkpoint(step: int) -> None:
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                score = evaluate(model)
            curve.append(
                {"step": step, "images_seen": step * config.batch_size, "score": score}
            )
            model.train()

    model.train()
    checkpoint(0)
    order = torch.empty(0, dtype=torch.long)
    for step in tqdm(
        range(config.steps), disable=not progress, desc="training", unit="step"
    ):
        started = time.perf_counter()
        if step % per_epoch == 0:
            order = torch.randperm(len(targets), generator=generator)
        batch = order[(step % per_epoch) * config.batch_size :][: config.batch_size]
        value = loss(inputs[batch], targets[batch])
        lr = learning_rate(step, config)
        optimizer_step(model, optimizer, value, lr, config.grad_clip)
        if after_step is not None:
            after_step()
        seconds += time.perf_counter() - started
        if (step + 1) % evaluate_every == 0 or step + 1 == config.steps:
            checkpoint(step + 1)
    model.eval()
    return {
        "steps": config.steps,
        "final_loss": round(value.item(), 6),
        "train_seconds": round(seconds, 2),
        "curve": curve,
    }
