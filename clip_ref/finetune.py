"""Training CLIP on your own image-caption pairs, listed in a CSV file: fine-tuning a
trained model, or a released architecture from scratch.

The paper's recipe (:func:`clip_ref.train.train`) on pairs read by
:class:`clip_ref.captions.CSVCaptions`: with a far smaller learning rate from a released
model or any checkpoint (:func:`finetune`), or with the paper's own from its
initialisation (:func:`from_scratch`):

    python -m clip_ref.train --init ViT-B/32 --data pairs.csv --out runs/ft
    python -m clip_ref.train --init ViT-B/32 --data pairs.csv --out lit --lock-image
    python -m clip_ref.train --model RN50 --data pairs.csv --out runs/rn50
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from .captions import COLUMNS, CSVCaptions
from .config import CLIPConfig
from .loading import load
from .model import CLIP
from .preprocess import Preprocess
from .train import TrainConfig, train
from .training_run import distributed_context

__all__ = ["FINETUNE", "FROM_SCRATCH", "finetune", "from_scratch", "train_on_csv"]

# Fine-tuning a trained model (:func:`finetune`): the paper's recipe with a learning
# rate far below the peak rates of a few times 1e-4 it trained with from scratch, so
# that the model adapts without forgetting what it knows, after a warm-up over the first
# tenth of the steps.
FINETUNE = TrainConfig(
    steps=1000, batch_size=128, lr=1e-5, warmup_steps=100, checkpoint_every=250
)
# Training from scratch (:func:`from_scratch`): the paper's peak learning rate for
# ViT-B/32 and RN50 (5e-4, appendix F) and its AdamW settings; the batch is what one
# device holds (the paper's 32,768 is reached with --chunk-size and many processes).
FROM_SCRATCH = TrainConfig(
    steps=1000, batch_size=128, lr=5e-4, warmup_steps=100, checkpoint_every=250
)


def finetune(
    init: str | os.PathLike,
    data: str | os.PathLike,
    out: os.PathLike,
    config: TrainConfig = FINETUNE,
    *,
    lock_image: bool = False,
    **options,
) -> dict:
    """Fine-tune ``init`` on the image-caption pairs of the CSV file ``data``; return
    its metrics.

    ``init`` is anything :func:`clip_ref.load` accepts: a released model's name or a
    checkpoint file (a previous run's ``model.pt`` too). The model is loaded in fp32
    (the master weights that AdamW updates; on a GPU, :func:`train` runs the forward
    pass in half precision under autocast), and its own preprocessing and context length
    read the pairs (:class:`clip_ref.captions.CSVCaptions`: the CSV is checked, and its
    captions tokenized and every image decoded, before the first step and before
    anything in ``out`` is touched).

    ``lock_image=True`` freezes the whole image encoder and trains the text side and the
    temperature only, as LiT does (Zhai et al., 2022): the image encoder's weights, and
    for a ResNet its BatchNorm statistics, come out bit-identical, and image features
    computed before fine-tuning stay valid.

    ``options`` are those of :func:`train_on_csv`. Writes what :func:`train` writes into
    ``out``, and ``metrics.json``: the training summary with ``init``, ``data``,
    ``pairs``, ``lock_image`` and the images skipped (``skipped_images``, with their CSV
    lines and reasons). Runs under ``torchrun`` as :func:`train` does.
    """
    rank, world, _ = distributed_context()
    if world > 1 and rank > 0:
        # process 0 downloads a released model first; the others then find it cached
        dist.barrier()
    # On the CPU, load returns fp32 weights; on a GPU it would return fp16 ones, for
    # inference.
    progress = options.get("progress", True)
    model, preprocess = load(init, device="cpu", progress=progress and rank == 0)
    if world > 1 and rank == 0:
        dist.barrier()
    model = model.float()  # already fp32; says what the recipe needs
    if lock_image:
        model.visual.requires_grad_(False)
    about = {"init": str(init), "lock_image": lock_image}
    return train_on_csv(model, preprocess, data, out, config, about, **options)


def from_scratch(
    architecture: str | CLIPConfig,
    data: str | os.PathLike,
    out: os.PathLike,
    config: TrainConfig = FROM_SCRATCH,
    *,
    name: str | None = None,
    **options,
) -> dict:
    """Train a CLIP of ``architecture`` (a released model's name, such as ``RN50``, or
    a :class:`~clip_ref.config.CLIPConfig`) from the paper's initialisation on the
    image-caption pairs of the CSV file ``data``; return its metrics.

    The initial weights are OpenAI's initialisation (:class:`clip_ref.model.CLIP`)
    drawn with ``config.seed``, so the same command gives the same model. ``options``
    are those of :func:`train_on_csv`; ``metrics.json`` records ``model`` (``name``,
    or the released name) and ``architecture`` where fine-tuning records ``init``.
    """
    if isinstance(architecture, CLIPConfig):
        architecture_config = architecture
    else:
        name = name or str(architecture)
        architecture_config = CLIPConfig.from_name(str(architecture))
    torch.manual_seed(config.seed)  # the same initial weights in every process
    model = CLIP(architecture_config)
    preprocess = Preprocess(model.visual.input_resolution)
    about = {"model": name, "architecture": dataclasses.asdict(architecture_config)}
    return train_on_csv(model, preprocess, data, out, config, about, **options)


def train_on_csv(
    model: CLIP,
    preprocess: Callable,
    data: str | os.PathLike,
    out: os.PathLike,
    config: TrainConfig,
    about: dict | None = None,
    *,
    truncate: bool = True,
    delimiter: str | None = None,
    image_key: str = COLUMNS[0],
    caption_key: str | None = None,
    skip_bad_images: bool = False,
    **run,
) -> dict:
    """Train ``model`` on the pairs of the CSV file ``data``, read with ``preprocess``
    and the model's context length by :class:`clip_ref.captions.CSVCaptions`
    (``truncate``, ``delimiter``, ``image_key``, ``caption_key`` and
    ``skip_bad_images`` go to it); ``run`` holds :func:`train`'s keywords (``resume``,
    ``overwrite``, ``progress``, ``stop_at``, ``device``, ``chunk_size``,
    ``grad_checkpointing``). Writes ``out/metrics.json``: the training summary, then
    ``about``, ``data``, ``pairs`` and ``skipped_images``."""
    rank, _, _ = distributed_context()
    dataset = CSVCaptions(
        data,
        preprocess,
        model.context_length,
        truncate=truncate,
        delimiter=delimiter,
        image_key=image_key,
        caption_key=caption_key,
        skip_bad_images=skip_bad_images,
        progress=run.get("progress", True) and rank == 0,
    )
    summary = train(model, dataset, config, out, **run)
    if "stopped_at" in summary or rank != 0:
        return summary
    metrics = {
        **summary,
        **(about or {}),
        "data": str(data),
        "pairs": len(dataset),
        "skipped_images": dataset.skipped,
    }
    (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
