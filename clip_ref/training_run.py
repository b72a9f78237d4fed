"""One training run's state beside the loop: its processes, output folder, checkpoints
and log (used by :func:`clip_ref.train.train`).

The loop in :mod:`clip_ref.train` reads on a page because everything it does not need
to show lives here: the distributed set-up (one process, or W of them under
``torchrun``), mixed precision, the order of the batches, and the files of the output
folder: ``checkpoint.pt`` (everything an exact resume needs: tensors and plain values
only, read back with ``torch.load(weights_only=True)``), ``log.jsonl`` (one JSON line
per logged step) and ``model.pt`` (the trained weights as an OpenAI-format state dict).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler, default_collate
from tqdm import tqdm

from .device import default_device
from .loss import check_equal_batches
from .run_folder import RunFolder

__all__ = [
    "NO_LOSS_SCALING",
    "DivergedError",
    "Features",
    "ResumeMismatchError",
    "TrainingRun",
    "batches",
    "check_fp32",
    "check_run",
    "data_fingerprint",
    "distributed_context",
    "freeze_frozen_batchnorm",
    "mixed_precision",
    "run_description",
]

# At or below this logit multiplier the softmax over cosines (which lie in [-1, 1]) is
# nearly uniform: the temperature has collapsed (the paper starts at 1 / 0.07 = 14.3).
MIN_LOGIT_SCALE = 1.0


class DivergedError(RuntimeError):
    """Training went wrong beyond repair: a non-finite loss or weight, or a collapsed
    temperature. The run stops; its last checkpoint (of an earlier step) is kept."""


class ResumeMismatchError(ValueError):
    """A resume asked of a folder that holds a different run."""


def distributed_context() -> tuple[int, int, torch.device]:
    """(rank, world size, device) under torchrun, or (0, 1, the default device) in a
    single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return rank, world, torch.device("cuda", local)
        return rank, world, torch.device("cpu")
    return 0, 1, default_device()


# A loss scaler that does nothing: fp32 training, or bf16 (which needs no scaling).
NO_LOSS_SCALING = torch.amp.GradScaler("cuda", enabled=False)


def mixed_precision(
    device: torch.device,
) -> tuple[AbstractContextManager, torch.amp.GradScaler]:
    """(autocast context, gradient scaler): bf16 on GPUs that support it, else fp16
    with loss scaling.

    The weights stay in fp32 (the master copy that AdamW updates); only the forward
    computation is cast. On the CPU everything is fp32 and the scaler does nothing.
    """
    if device.type != "cuda":
        return nullcontext(), NO_LOSS_SCALING
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    return torch.autocast("cuda", dtype=dtype), scaler


def batches(sampler: DistributedSampler, local_batch: int, step: int):
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


def fetch_batch(dataset: Dataset, indices: list[int]):
    """The items of ``dataset`` at ``indices``, collated into batch tensors. A dataset
    with ``__getitems__`` (PyTorch's batched fetch, as ``DataLoader`` uses it) gives
    them in one call; any other, item by item."""
    fetch = getattr(dataset, "__getitems__", None)
    return default_collate(
        fetch(indices) if fetch is not None else [dataset[i] for i in indices]
    )


def check_fp32(model: nn.Module) -> None:
    """Refuse to train half-precision weights: AdamW needs fp32 master weights (mixed
    precision is autocast)."""
    half = [
        name
        for name, param in model.named_parameters()
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16)
    ]
    if half:
        raise TypeError(
            f"{len(half)} trainable parameters are half precision ({half[0]}, ...). "
            "AdamW on fp16 weights fails: a weight whose gradient rounds to zero gets "
            "0/0 = NaN (epsilon is tiny), and updates smaller than a weight's "
            "precision are lost. Train fp32 weights (model.float(), or "
            "clip_ref.load(..., device='cpu'), which returns fp32); train() computes "
            "in half precision on the GPU with autocast anyway."
        )


def freeze_frozen_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm whose gain and bias are frozen in eval mode: it normalises
    with its stored statistics and leaves them unchanged, so a frozen ResNet image
    encoder stays exactly as it was (LiT)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def check_run(config, dataset_size: int, world: int, stop_at, device):
    """Refuse, before anything is touched, a run that cannot learn or cannot do what
    was asked."""
    if config.batch_size < 2:
        raise ValueError(
            f"batch size {config.batch_size}: the contrastive loss compares each image "
            "with the other captions of its batch, and one pair has none (its loss "
            "and gradient are 0 at every step); use at least 2"
        )
    if config.batch_size % world:
        raise ValueError(
            f"batch size {config.batch_size} does not split evenly over {world} "
            "processes"
        )
    if dataset_size // world < config.batch_size // world:
        raise ValueError(
            f"the dataset ({dataset_size} pairs) is smaller than one batch of "
            f"{config.batch_size}; use a smaller batch size"
        )
    if not config.warmup_steps < config.steps:
        raise ValueError(
            f"the warm-up ({config.warmup_steps} steps) is not shorter than the run "
            f"({config.steps} steps): the learning rate would never reach its peak and "
            "decay"
        )
    if stop_at is not None and not 1 <= stop_at <= config.steps:
        raise ValueError(f"stop_at must lie in 1..{config.steps}, got {stop_at}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device}: no CUDA GPU is available here")


class Features(nn.Module):
    """CLIP's forward pass up to the loss: (image features, text features, logit
    multiplier).

    DistributedDataParallel prepares its gradient synchronisation when its wrapped
    module's ``forward`` runs, so that ``forward`` must return what the loss needs.
    ``CLIP.forward`` returns logits that compare one process's images with its own texts
    only; the distributed loss needs the features, to gather them.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images, tokens):
        return (
            self.model.encode_image(images),
            self.model.encode_text(tokens),
            self.model.logit_scale.exp(),
        )


def data_fingerprint(dataset) -> object:
    """What identifies the training data: the dataset's own ``fingerprint`` (the toy
    world's parameters, a CSV file's checksum and image list), else its type and
    size."""
    fingerprint = getattr(dataset, "fingerprint", None)
    if fingerprint is not None:
        return fingerprint
    return {"type": type(dataset).__qualname__, "items": len(dataset)}


def run_description(model: nn.Module, config, dataset=None) -> str:
    """What an exact resume must match, as JSON: the recipe (a dataclass such as
    :class:`clip_ref.train.TrainConfig`), the architecture, which parameters are frozen
    and the data."""
    description = {
        "train": dataclasses.asdict(config),
        "model": dataclasses.asdict(model.config),
    }
    if dataset is not None:
        description["data"] = data_fingerprint(dataset)
    frozen = [
        name for name, param in model.named_parameters() if not param.requires_grad
    ]
    # only then, so that checkpoints of runs that train everything read as before
    if frozen:
        description["frozen"] = frozen
    return json.dumps(description)


@dataclass
class TrainingRun:
    """What the loop and its helpers share: the model, its optimiser and loss scaler,
    this process's place among W, and the output folder.

    ``description`` is what an exact resume must match (the recipe, the architecture
    and which parameters are frozen), as JSON.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    rank: int
    world: int
    device: torch.device
    out: Path
    description: str
    autocast: AbstractContextManager = field(init=False)
    scaler: torch.amp.GradScaler = field(init=False)

    def __post_init__(self):
        self.autocast, self.scaler = mixed_precision(self.device)
        self._folder = RunFolder(self.out, self.rank)
        self._bar = None

    def features(self, local_batch: int) -> nn.Module:
        """The forward pass the loss needs; across processes, wrapped for DDP."""
        features = Features(self.model)
        if self.world > 1:  # checked once, here, rather than on every step
            check_equal_batches(local_batch, self.device)
            ids = [self.device.index] if self.device.type == "cuda" else None
            features = DistributedDataParallel(features, device_ids=ids)
        return features

    @property
    def folder(self) -> RunFolder:
        return self._folder

    def save_checkpoint(self, step: int) -> None:
        """Save what an exact resume needs: weights, AdamW moments, loss scaler, step
        and every process's RNG state (gathered to process 0, which writes the file).
        Weights that are no longer finite are not saved: the run stops instead."""
        bad = [n for n, p in self.model.named_parameters() if not p.isfinite().all()]
        if bad:
            raise DivergedError(
                f"step {step}: {len(bad)} weights are no longer finite ({bad[0]}, "
                f"...); the checkpoint of an earlier step in {self.out} is kept. Lower "
                "the learning rate"
            )
        rng = torch.get_rng_state()
        if self.world > 1:
            states = [None] * self.world
            dist.all_gather_object(states, rng)
            rng = states
        else:
            rng = [rng]
        if self.rank == 0:
            state = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "step": step,
                "rng": rng,
                "world_size": self.world,
                "device_type": next(self.model.parameters()).device.type,
                "config": self.description,
            }
            self.folder.save_checkpoint(state)

    def restore_checkpoint(self) -> int:
        """Load the newest intact checkpoint of this same run; return its step."""
        state = self.folder.load_checkpoint(self.device)
        then = {
            **json.loads(state["config"]),
            "processes": state["world_size"],
            "device": state["device_type"],
        }
        now = {
            **json.loads(self.description),
            "processes": self.world,
            "device": self.device.type,
        }
        changed = _differences(then, now)
        if changed:
            raise ResumeMismatchError(
                f"{self.out} holds a different run; an exact resume needs the same "
                "model, data, settings, process count and kind of device. Differences "
                f"(checkpoint -> now): {'; '.join(changed)}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"][self.rank].cpu())
        return int(state["step"])

    def read_log(self, upto_step: int) -> list[dict]:
        """The log lines up to ``upto_step``: a resumed run drops the lines of steps
        it will redo."""
        return self.folder.read_log(upto_step)

    def write_log(self, log: list[dict]) -> None:
        self.folder.write_log(log)
        if self._bar is not None:
            latest = log[-1]
            self._bar.set_postfix(
                loss=f"{latest['loss']:.3f}", scale=f"{latest['logit_scale']:.1f}"
            )

    def progress_bar(self, steps: int, step: int, progress: bool) -> tqdm:
        """The run's progress bar (process 0 only), from ``step`` of ``steps``."""
        self._bar = tqdm(
            total=steps,
            initial=step,
            desc="training",
            unit="step",
            disable=not progress or self.rank != 0,
            dynamic_ncols=True,
        )
        return self._bar

    def sampler(self, dataset, seed: int, local_batch: int) -> DistributedSampler:
        """This process's shard of a seeded permutation per epoch (one process: a plain
        seeded shuffle); dropping the incomplete last batch keeps every batch equal."""
        sampler = DistributedSampler(
            dataset, self.world, self.rank, seed=seed, drop_last=True
        )
        if len(sampler) < local_batch:
            raise ValueError(
                f"the dataset ({len(dataset)} pairs) is smaller than one batch of "
                f"{local_batch * self.world}; use a smaller batch size"
            )
        return sampler

    def check_temperature(self, scale: torch.Tensor) -> None:
        """Stop a run whose logit multiplier has collapsed (or is no longer finite).
        Read only on the CPU, where reading is free; on a GPU it would wait for the GPU
        every step, so there :meth:`log_entry` checks it every few steps."""
        if scale.device.type == "cpu":
            value = scale.item()
            if not (math.isfinite(value) and value > MIN_LOGIT_SCALE):
                raise DivergedError(
                    f"the temperature collapsed: the logit scale is {value} (at most "
                    f"{MIN_LOGIT_SCALE} the softmax over cosines is nearly uniform); "
                    f"training diverged. The last checkpoint in {self.out} is kept; "
                    "lower the learning rate"
                )

    def log_entry(self, step, loss, grad_norm, lr: float, seconds: float) -> dict:
        """A log line; the loss is the whole batch's (the processes' mean). A loss or
        temperature gone wrong stops the run here, where the values are read anyway."""
        if self.world > 1:
            dist.all_reduce(loss)
            loss /= self.world
        entry = {
            "step": step,
            "loss": round(loss.item(), 6),
            "lr": lr,
            "grad_norm": round(grad_norm.item(), 6),
            "logit_scale": round(self.model.logit_scale.exp().item(), 6),
            "seconds": round(seconds, 3),
        }
        if not (math.isfinite(entry["loss"]) and math.isfinite(entry["grad_norm"])):
            problem = (
                f"the loss is {entry['loss']} (gradient norm {entry['grad_norm']})"
            )
        elif not entry["logit_scale"] > MIN_LOGIT_SCALE:
            problem = (
                f"the temperature collapsed: the logit scale is {entry['logit_scale']} "
                f"(at most {MIN_LOGIT_SCALE} the softmax over cosines is nearly "
                "uniform)"
            )
        else:
            return entry
        raise DivergedError(
            f"step {step}: {problem}; training diverged. The last checkpoint in "
            f"{self.out} is of an earlier step; lower the learning rate (it was "
            f"{lr:g})"
        )

    def finish(self, steps: int, step: int, log: list[dict], seconds: float) -> dict:
        """Save the trained model and summarise the run, or say where it stopped."""
        if step < steps:
            summary = {"stopped_at": step}
        else:
            self.save_model()
            summary = {
                "steps": steps,
                "final_loss": log[-1]["loss"] if log else None,
                "logit_scale": self.model.logit_scale.exp().item(),
                "train_seconds": round(seconds, 2),
                "world_size": self.world,
                "device": str(self.device),
                "threads": torch.get_num_threads(),
            }
        if self.world > 1:
            dist.barrier()
        self.model.eval()
        return summary

    def save_model(self) -> None:
        """Write the trained weights, as an OpenAI-format state dict, to model.pt."""
        weights = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        self.folder.save_model(weights)

    # the folder is locked from _start's claim until the run ends, however it ends
    def __enter__(self) -> TrainingRun:
        return self

    def __exit__(self, *exc) -> None:
        self.folder.release()


def _differences(then: dict, now: dict, where: str = "") -> list[str]:
    """``path: old -> new`` for every leaf that differs between two nested dicts."""
    found = []
    for key in sorted(set(then) | set(now), key=str):
        a, b = then.get(key, "(absent)"), now.get(key, "(absent)")
        name = f"{where}.{key}" if where else str(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, name)
        elif a != b:
            found.append(f"{name}: {json.dumps(a)} -> {json.dumps(b)}")
    return found
