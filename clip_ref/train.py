"""Training CLIP: the paper's recipe, on one CPU, one GPU or many processes (paper §2.5,
"Training").

The paper trains with AdamW (decoupled weight decay "to all weights that are not gains
or biases"), a cosine learning-rate schedule after a warm-up, a learned temperature
whose multiplier is clipped at 100, mixed precision, and a very large batch (32,768)
split over many GPUs, with the contrastive loss computed across the whole batch.
:func:`train` is that recipe for any CLIP and any dataset of (image, tokens) pairs.
:mod:`clip_ref.toy` runs it on the toy world of the book, and :func:`finetune` continues
training a given model (a released one, or any checkpoint) on image-caption pairs listed
in a CSV file (:mod:`clip_ref.captions`):

    python -m clip_ref.train --preset toy --out runs/toy                          # chapter 6's toy CLIP
    torchrun --nproc_per_node 2 -m clip_ref.train --preset toy --out runs/toy2    # the same, 2 processes
    python -m clip_ref.train --preset toy --out runs/toy --resume                 # continue exactly
    python -m clip_ref.train --init ViT-B/32 --data captions.csv --out runs/ft    # fine-tune on your pairs
    python -m clip_ref.train --init ViT-B/32 --data captions.csv --out runs/lit --lock-image   # text only

The output folder receives ``log.jsonl`` (one JSON line per logged step),
``checkpoint.pt`` (everything a resumed run needs: tensors and plain values only, read
back with ``torch.load(weights_only=True)``) and, at the end, ``model.pt``: the trained
weights as an OpenAI-format state dict, which ``clip_ref.load`` and
``clip_ref.build_model`` read like any released checkpoint, and ``metrics.json``.

Shapes: N pairs in the global batch, n = N / W pairs per process of W, E embedding dim.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler, default_collate
from tqdm import tqdm

from .captions import CSVCaptions
from .loading import load
from .loss import MAX_LOGIT_SCALE, check_equal_batches, contrastive_loss
from .model import CLIP

__all__ = [
    "FINETUNE",
    "TrainConfig",
    "clamp_logit_scale",
    "finetune",
    "learning_rate",
    "main",
    "param_groups",
    "train",
    "train_on_tensors",
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


# Fine-tuning a trained model (:func:`finetune`): the paper's recipe with a learning
# rate far below the peak rates of a few times 1e-4 it trained with from scratch, so
# that the model adapts without forgetting what it knows, after a warm-up over the first
# tenth of the steps.
FINETUNE = TrainConfig(
    steps=1000, batch_size=128, lr=1e-5, warmup_steps=100, checkpoint_every=250
)


# ---------------------------------------------------------------- the recipe's parts


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters for AdamW as the paper does: decay every weight except gains and
    biases.

    Gains are the scales of the normalisation layers (LayerNorm, BatchNorm): decay would
    pull a channel's gain to zero and switch the channel off. Embeddings (token,
    positional, the class token) are weights and are decayed, as in the paper and in
    open_clip. One addition: the temperature, ``logit_scale``, is not decayed either;
    pulling its log towards 0 would pull the logit multiplier towards 1, the softest
    possible softmax, against what the model learns (open_clip exempts it too).
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


def _adamw(
    model: nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """The paper's optimiser, with the recipe's settings. On CPUs and CUDA GPUs it is
    PyTorch's fused
    implementation (the same update, in one kernel per step instead of a dozen per
    parameter): on the toy CLIP, whose token embedding is nine tenths of its weights,
    that makes a training step a quarter faster.
    """
    return torch.optim.AdamW(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        fused=torch.device(device).type in ("cpu", "cuda"),
    )


@torch.no_grad()
def clamp_logit_scale(model: CLIP) -> None:
    """Clip the learned log-temperature so that the logits are multiplied by at most
    100 (paper §2.5)."""
    model.logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))


class _Features(nn.Module):
    """CLIP's forward pass up to the loss: (image features, text features, logit
    multiplier).

    DistributedDataParallel prepares its gradient synchronisation when its wrapped
    module's ``forward`` runs, so that ``forward`` must return what the loss needs.
    ``CLIP.forward`` returns logits that compare one process's images with its own texts
    only; the distributed loss needs the features, to gather them.
    """

    def __init__(self, model: CLIP):
        super().__init__()
        self.model = model

    def forward(self, images, tokens):
        return (
            self.model.encode_image(images),
            self.model.encode_text(tokens),
            self.model.logit_scale.exp(),
        )


def _distributed_context() -> tuple[int, int, torch.device]:
    """(rank, world size, device) under torchrun, or (0, 1, best device) in a single
    process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group(
                backend="nccl" if torch.cuda.is_available() else "gloo"
            )
        rank, world = dist.get_rank(), dist.get_world_size()
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return rank, world, torch.device("cuda", local)
        return rank, world, torch.device("cpu")
    return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _batches(sampler: DistributedSampler, local_batch: int, step: int):
    """This process's batches of dataset indices from ``step`` on, epoch after epoch,
    without end.

    The order depends only on the sampler's seed and the epoch, so a resumed run
    rebuilds the epoch it stopped in and skips the batches it has already trained on.
    """
    per_epoch = len(sampler) // local_batch  # the incomplete last batch is dropped
    epoch, skip = divmod(step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        order = list(sampler)
        for b in range(skip, per_epoch):
            yield order[b * local_batch : (b + 1) * local_batch]
        epoch, skip = epoch + 1, 0


def _atomic_save(obj, path: Path) -> None:
    """Write to a temporary file and rename, so an interruption never leaves a
    half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _run_description(model: CLIP, config: TrainConfig) -> str:
    """What an exact resume must match: the recipe, the architecture and which
    parameters are frozen."""
    description = {
        "train": dataclasses.asdict(config),
        "model": dataclasses.asdict(model.config),
    }
    frozen = [
        name for name, param in model.named_parameters() if not param.requires_grad
    ]
    # only then, so that checkpoints of runs that train everything read as before
    if frozen:
        description["frozen"] = frozen
    return json.dumps(description)


def _check_fp32(model: nn.Module) -> None:
    """Refuse to train half-precision weights: AdamW needs fp32 master weights (mixed
    precision is autocast)."""
    half = [
        name
        for name, param in model.named_parameters()
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16)
    ]
    if half:
        raise TypeError(
            f"{len(half)} trainable parameters are half precision ({half[0]}, "
            "...). AdamW on fp16 weights "
            "fails: a weight whose gradient rounds to zero gets 0/0 = NaN "
            "(epsilon is tiny), and updates "
            "smaller than a weight's precision are lost. Train fp32 weights "
            "(model.float(), or "
            "clip_ref.load(..., device='cpu'), which returns fp32); train() "
            "computes in half precision on "
            "the GPU with autocast anyway."
        )


def _freeze_frozen_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm whose gain and bias are frozen in eval mode: it normalises
    with its stored
    statistics and leaves them unchanged, so a frozen ResNet image encoder stays
    exactly as it was (LiT)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def _save_checkpoint(
    path: Path,
    model,
    optimizer,
    scaler,
    step: int,
    description: str,
    rank: int,
    world: int,
) -> None:
    """Save what an exact resume needs: weights, AdamW moments, loss scaler, step,
    every process's RNG."""
    rng = torch.get_rng_state()
    if world > 1:  # the RNG state of each process, gathered to rank 0
        states = [None] * world
        dist.all_gather_object(states, rng)
        rng = states
    else:
        rng = [rng]
    if rank == 0:
        _atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "rng": rng,
                "world_size": world,
                "device_type": next(model.parameters()).device.type,
                "config": description,
            },
            path,
        )


def _restore_checkpoint(
    path: Path,
    model,
    optimizer,
    scaler,
    description: str,
    rank: int,
    world: int,
    device: torch.device,
) -> int:
    """Load a checkpoint written by the same run; return the step it was taken at."""
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint at {path}")
    state = torch.load(path, map_location=device, weights_only=True)
    if (
        state["config"] != description
        or state["world_size"] != world
        or state["device_type"] != device.type
    ):
        raise ValueError(
            f"{path} was written by a different run ({state['config']}, "
            f"{state['world_size']} processes on "
            f"{state['device_type']}); an exact resume needs the same "
            "settings, process count and kind of "
            f"device (now: {description}, {world} processes on {device.type})"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"][rank].cpu())
    return int(state["step"])


def _read_log(path: Path, upto_step: int) -> list[dict]:
    """The log lines up to ``upto_step``: a resumed run drops the lines of steps it
    will redo."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [entry for entry in lines if entry["step"] <= upto_step]


def _mixed_precision(device: torch.device):
    """(autocast context, gradient scaler): bf16 on GPUs that support it, else fp16 with
    loss scaling.

    The weights stay in fp32 (the master copy that AdamW updates); only the forward
    computation is cast. On the CPU everything is fp32.
    """
    if device.type != "cuda":
        return nullcontext(), torch.amp.GradScaler("cuda", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype), torch.amp.GradScaler(
        "cuda", enabled=dtype == torch.float16
    )


def _step(
    features: nn.Module,
    model: CLIP,
    images: torch.Tensor,
    tokens: torch.Tensor,
    optimizer,
    scaler,
    autocast,
    lr: float,
    grad_clip: float,
    distributed: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on one batch; returns (loss, gradient norm before
    clipping), still on the device."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast:
        # [n, E], [n, E], []
        image_features, text_features, scale = features(images, tokens)
    # The loss in fp32: the softmax over a large batch is where half precision hurts.
    loss = contrastive_loss(
        image_features.float(),
        text_features.float(),
        scale.float(),
        distributed=distributed,
    )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradient, not the loss-scaled one
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    clamp_logit_scale(model)
    return loss.detach(), grad_norm.detach()


# ---------------------------------------------------------------- the loop


def train(
    model: CLIP,
    dataset: Dataset,
    config: TrainConfig,
    out: os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Train ``model`` on ``dataset`` (items ``(image [3, R, R], tokens [L])``) as
    ``config`` says.

    Run it in one process, or in each of W processes under ``torchrun`` (the batch is
    then split W ways and the loss gathered across processes); every process must build
    the same model and dataset. The trainable weights must be fp32 (on a GPU the forward
    pass runs in half precision under autocast). Parameters with ``requires_grad=False``
    stay exactly as they are (to train one side only), and so do the running statistics
    of a BatchNorm whose gain and bias are frozen: it stays in eval mode.
    ``resume=True`` continues from ``out/checkpoint.pt`` exactly as if the run had never
    stopped; ``stop_at`` ends the run after that many steps with a checkpoint (an
    interruption on purpose).

    Returns ``{"stopped_at": step}`` if the run stopped early, else a summary (steps,
    final loss, logit scale, training seconds, processes, device, threads), after
    writing ``out/model.pt``. Process 0 writes every file; all processes read the
    checkpoint when resuming, so ``out`` must be a folder they all see. An exact resume
    needs the same model, data, config, number of processes and kind of device.
    """
    out = Path(out)
    _check_fp32(model)
    rank, world, default_device = _distributed_context()
    device = torch.device(device) if device is not None else default_device
    if config.batch_size % world:
        raise ValueError(
            f"batch_size {config.batch_size} does not split evenly over "
            f"{world} processes"
        )
    local_batch = config.batch_size // world  # n
    # DistributedSampler deals each process its own shard of a seeded permutation per
    # epoch; with one process it is a plain seeded shuffle. Dropping the incomplete last
    # batch keeps every n equal.
    sampler = DistributedSampler(
        dataset,
        num_replicas=world,
        rank=rank,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
    )
    if len(sampler) < local_batch:
        raise ValueError(
            f"the dataset ({len(dataset)} pairs) is smaller than one batch of "
            f"{config.batch_size}; "
            "use a smaller batch size"
        )
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        # a fresh run in an old folder: never leave the old run's model beside the new
        # run
        if not resume:
            (out / "model.pt").unlink(missing_ok=True)

    model = model.to(device)
    optimizer = _adamw(model, config, device)
    autocast, scaler = _mixed_precision(device)
    description = _run_description(model, config)
    checkpoint_path, log_path = out / "checkpoint.pt", out / "log.jsonl"
    step = 0
    if resume:
        step = _restore_checkpoint(
            checkpoint_path, model, optimizer, scaler, description, rank, world, device
        )
    log = _read_log(log_path, step) if resume else []

    features = _Features(model)
    if world > 1:
        # once, here, rather than on every step
        check_equal_batches(local_batch, device)
        features = DistributedDataParallel(
            features, device_ids=[device.index] if device.type == "cuda" else None
        )

    model.train()
    _freeze_frozen_batchnorm(model)
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    bar = tqdm(
        total=config.steps,
        initial=step,
        disable=not progress or rank != 0,
        desc="training",
        unit="step",
        dynamic_ncols=True,
    )
    started = time.perf_counter()
    for indices in _batches(sampler, local_batch, step):
        if step >= end:
            break
        # [n, 3, R, R], [n, L]
        images, tokens = default_collate([dataset[i] for i in indices])
        loss, grad_norm = _step(
            features,
            model,
            images.to(device, non_blocking=True),
            tokens.to(device, non_blocking=True),
            optimizer,
            scaler,
            autocast,
            learning_rate(step, config),
            config.grad_clip,
            distributed=world > 1,
        )
        step += 1
        if step % config.log_every == 0 or step == config.steps:
            if (
                world > 1
                # the logged loss is the whole batch's: the processes' shares' mean
            ):
                dist.all_reduce(loss)
                loss /= world
            log.append(
                {
                    "step": step,
                    "loss": round(loss.item(), 6),
                    "lr": learning_rate(step - 1, config),
                    "grad_norm": round(grad_norm.item(), 6),
                    "logit_scale": round(model.logit_scale.exp().item(), 6),
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
            if rank == 0:
                log_path.write_text("".join(json.dumps(entry) + "\n" for entry in log))
            bar.set_postfix(
                loss=f"{log[-1]['loss']:.3f}", scale=f"{log[-1]['logit_scale']:.1f}"
            )
        if step % config.checkpoint_every == 0 or step == end:
            _save_checkpoint(
                checkpoint_path,
                model,
                optimizer,
                scaler,
                step,
                description,
                rank,
                world,
            )
        bar.update(1)
    bar.close()
    train_seconds = time.perf_counter() - started

    if step < config.steps:
        summary = {"stopped_at": step}
    else:
        if rank == 0:
            _atomic_save(
                {k: v.detach().cpu() for k, v in model.state_dict().items()},
                out / "model.pt",
            )
        summary = {
            "steps": config.steps,
            "final_loss": log[-1]["loss"] if log else None,
            "logit_scale": model.logit_scale.exp().item(),
            "train_seconds": round(train_seconds, 2),
            "world_size": world,
            "device": str(device),
            "threads": torch.get_num_threads(),
        }
    if world > 1:
        dist.barrier()
    model.eval()
    return summary


# ---------------------------------------------------------------- the same recipe, for
# other objectives


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
    """The recipe of :func:`train` for any model and loss, on data held in memory, in
    one process: the
    baselines of the book (:mod:`clip_ref.supervised`, :mod:`clip_ref.objectives`) train
    with it.

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
    optimizer = _adamw(model, config, inputs.device)
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
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        value = loss(inputs[batch], targets[batch])
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
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


# ---------------------------------------------------------------- fine-tuning


def finetune(
    init: str | os.PathLike,
    data: str | os.PathLike,
    out: os.PathLike,
    config: TrainConfig = FINETUNE,
    *,
    lock_image: bool = False,
    truncate: bool = True,
    delimiter: str = ",",
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Fine-tune ``init`` on the image-caption pairs of the CSV file ``data``; return
    its metrics.

    ``init`` is anything :func:`clip_ref.load` accepts: a released model's name or a
    checkpoint file (a previous run's ``model.pt`` too). The model is loaded in fp32
    (the master weights that AdamW updates; on a GPU, :func:`train` runs the forward
    pass in half precision under autocast), and its own preprocessing and context length
    read the pairs (:class:`clip_ref.captions.CSVCaptions`: the CSV is checked, and its
    captions tokenized, before the first step; ``truncate`` and ``delimiter`` go to it).

    ``lock_image=True`` freezes the whole image encoder and trains the text side and the
    temperature only, as LiT does (Zhai et al., 2022): the image encoder's weights, and
    for a ResNet its BatchNorm statistics, come out bit-identical, and image features
    computed before fine-tuning stay valid.

    Writes what :func:`train` writes into ``out``, and ``metrics.json``: the training
    summary with ``init``, ``data``, ``pairs`` and ``lock_image``. Runs under
    ``torchrun`` as :func:`train` does.
    """
    out = Path(out)
    rank, world, _ = _distributed_context()
    if rank == 0 and not resume:  # never leave an old run's results beside a new run
        (out / "metrics.json").unlink(missing_ok=True)
    if world > 1 and rank > 0:
        # process 0 downloads a released model first; the others then find it cached
        dist.barrier()
    # On the CPU, load returns fp32 weights; on a GPU it would return fp16 ones, for
    # inference.
    model, preprocess = load(init, device="cpu", progress=progress and rank == 0)
    if world > 1 and rank == 0:
        dist.barrier()
    model = model.float()  # already fp32; says what the recipe needs
    dataset = CSVCaptions(
        data, preprocess, model.context_length, truncate=truncate, delimiter=delimiter
    )
    if lock_image:
        model.visual.requires_grad_(False)
    summary = train(
        model,
        dataset,
        config,
        out,
        resume=resume,
        progress=progress,
        stop_at=stop_at,
        device=device,
    )
    if "stopped_at" in summary or rank != 0:
        return summary
    metrics = {
        **summary,
        "init": str(init),
        "data": str(data),
        "pairs": len(dataset),
        "lock_image": lock_image,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


# ---------------------------------------------------------------- command line


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m clip_ref.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group(
        "what to train: a toy CLIP from scratch, or fine-tuning a given model"
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
        "--data",
        metavar="CSV",
        help="with --init: the image-caption pairs, a CSV file with "
        "the columns filepath (relative to the CSV's folder) and caption",
    )
    what.add_argument(
        "--csv-separator",
        default=",",
        help="with --data: the column separator (default ,)",
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
        "--resume", action="store_true", help="continue from OUT/checkpoint.pt"
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
        help="learning-rate warm-up steps (default: the preset's; "
        "fine-tuning: a tenth of the steps)",
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
    if args.init is not None:
        if args.preset is not None:
            parser.error(
                "--init fine-tunes a given model and --preset trains a toy "
                "CLIP from scratch; pass one"
            )
        if args.data is None:
            parser.error(
                "--init needs --data, the CSV file of image-caption pairs to "
                "fine-tune on"
            )
        if args.train_size is not None:
            parser.error(
                "--train-size sets the size of a toy preset; with --init the "
                "CSV file sets the data"
            )
    else:
        for flag, value in (
            ("--data", args.data),
            ("--lock-image", args.lock_image),
            ("--csv-separator", args.csv_separator != ","),
        ):
            if value:
                parser.error(
                    f"{flag} is for fine-tuning: pass --init with the model to "
                    "start from"
                )
    for flag, least in (
        ("steps", 1),
        ("batch_size", 1),
        ("warmup_steps", 0),
        ("checkpoint_every", 1),
        ("threads", 1),
    ):
        value = getattr(args, flag)
        if value is not None and value < least:
            parser.error(
                f"--{flag.replace('_', '-')} must be at least {least}, got {value}"
            )
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be positive, got {args.lr}")
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
    from . import toy  # the presets live with the toy world, above this module

    args = _parse_args(argv)
    if args.init is None:
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
        "progress": not args.no_progress,
        "stop_at": args.stop_at,
        "device": args.device,
    }
    try:
        if args.init is None:
            metrics = toy.train_toy(preset, args.out, **common)
        else:
            metrics = finetune(
                args.init,
                args.data,
                args.out,
                recipe,
                lock_image=args.lock_image,
                delimiter=args.csv_separator,
                **common,
            )
        lead = not dist.is_initialized() or dist.get_rank() == 0
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if lead and "stopped_at" not in metrics:
        print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
