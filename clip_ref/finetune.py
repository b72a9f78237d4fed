"""Fine-tuning a trained CLIP on your own image-caption pairs, listed in a CSV file.

The paper's recipe (:func:`clip_ref.train.train`) with a far smaller learning rate, from
a released model or any checkpoint, on pairs read by
:class:`clip_ref.captions.CSVCaptions`:

    python -m clip_ref.train --init ViT-B/32 --data pairs.csv --out runs/ft
    python -m clip_ref.train --init ViT-B/32 --data pairs.csv --out lit --lock-image
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from .captions import CSVCaptions
from .loading import load
from .train import TrainConfig, train
from .training_run import distributed_context

__all__ = ["FINETUNE", "finetune"]

# Fine-tuning a trained model (:func:`finetune`): the paper's recipe with a learning
# rate far below the peak rates of a few times 1e-4 it trained with from scratch, so
# that the model adapts without forgetting what it knows, after a warm-up over the first
# tenth of the steps.
FINETUNE = TrainConfig(
    steps=1000, batch_size=128, lr=1e-5, warmup_steps=100, checkpoint_every=250
)


def finetune(
    init: str | os.PathLike,
    data: str | os.PathLike,
    out: os.PathLike,
    config: TrainConfig = FINETUNE,
    *,
    lock_image: bool = False,
    truncate: bool = True,
    delimiter: str = ",",
    skip_bad_images: bool = False,
    resume: bool = False,
    overwrite: bool = False,
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
    captions tokenized and every image decoded, before the first step and before
    anything in ``out`` is touched; ``truncate``, ``delimiter`` and
    ``skip_bad_images`` go to it).

    ``lock_image=True`` freezes the whole image encoder and trains the text side and the
    temperature only, as LiT does (Zhai et al., 2022): the image encoder's weights, and
    for a ResNet its BatchNorm statistics, come out bit-identical, and image features
    computed before fine-tuning stay valid.

    Writes what :func:`train` writes into ``out``, and ``metrics.json``: the training
    summary with ``init``, ``data``, ``pairs``, ``lock_image`` and the images skipped
    (``skipped_images``, with their CSV lines and reasons). ``resume`` and
    ``overwrite`` are :func:`train`'s. Runs under ``torchrun`` as :func:`train` does.
    """
    out = Path(out)
    rank, world, _ = distributed_context()
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
        data,
        preprocess,
        model.context_length,
        truncate=truncate,
        delimiter=delimiter,
        skip_bad_images=skip_bad_images,
        progress=progress and rank == 0,
    )
    if lock_image:
        model.visual.requires_grad_(False)
    summary = train(
        model,
        dataset,
        config,
        out,
        resume=resume,
        overwrite=overwrite,
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
        "skipped_images": dataset.skipped,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
