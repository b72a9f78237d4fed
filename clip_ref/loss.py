"""The contrastive objective that trains CLIP (Radford et al., 2021, §2.3 and Figure 3).

A batch holds N (image, text) pairs. Both encoders embed their half of the batch; after
L2 normalisation the N x N matrix of dot products is a matrix of cosine similarities,
whose diagonal holds the true pairs. Multiplied by a learned scale (the inverse of a
softmax temperature), each row is a classification of one image among the N texts, and
each column a classification of one text among the N images. The loss is the
cross-entropy of both classifications, averaged.

Across many processes the batch is split: process ``r`` of ``W`` holds ``n = N / W``
pairs. Every process gathers all ``N`` embeddings from the others, scores only its own
``n`` rows against all ``N`` columns, and labels its rows with the positions ``r * n ...
r * n + n - 1`` of its own pairs in the gathered batch. The mean of the ``W`` local
losses is exactly the single-process loss on all ``N`` pairs, at a cost of ``n x N``
instead of ``N x N`` similarities per process.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = [
    "MAX_LOGIT_SCALE",
    "all_gather_with_grad",
    "check_equal_batches",
    "contrastive_loss",
    "local_contrastive_loss",
]

# The paper clips the multiplier applied to the logits at 100 ("to prevent scaling the
# logits by more than 100"). The training loop enforces it by clamping the log-parameter
# at ln(100) after each step.
MAX_LOGIT_SCALE = 100.0
# ln(100) stored in half precision (as in OpenAI's released weights) rounds up to
# 4.60546875, whose exponential is 100.03; this tolerance admits that rounding and
# nothing a forgotten clamp would produce.
_SCALE_TOLERANCE = 2e-3


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward pass sends each process the gradient of *every*
    process's loss.

    Forward: every process contributes its (n, E) tensor and receives all W of them.
    Backward: process ``k`` holds d(loss_k)/d(gathered), a (W, n, E) gradient that
    touches every process's slice, because its loss used every process's embeddings as
    negatives. The gradient for the slice that process ``r`` contributed is the sum over
    ``k`` of those pieces, so the backward pass sums the gathered gradients over
    processes (all-reduce) and keeps its own slice.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.rank = rank
        gathered = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.stack(gathered)  # (W, n, E)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # (W, n, E): this process's loss, differentiated w.r.t. everyone's slice
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate the (n, E) tensors of all processes in rank order into (W * n, E),
    keeping gradients.

    ``torch.distributed.all_gather`` on its own returns tensors with no history: the
    embeddings of other processes would be constants, and the gradient that pushes them
    away from this process's positives would be lost. This version carries that gradient
    back to the process that computed each embedding. Every process must contribute a
    tensor of the same shape.
    """
    return _AllGatherWithGrad.apply(tensor).flatten(0, 1)  # (W, n, E) -> (W*n, E)


def _check_logit_scale(logit_scale: torch.Tensor | float) -> torch.Tensor | float:
    """Refuse a multiplier that is not positive or exceeds 100: it means the raw
    log-parameter was passed, or the clamp was forgotten, and training would go on
    silently with the wrong objective.

    Checking a value means reading it. For a Python number or a CPU tensor that is free;
    for a tensor on a GPU it would wait for the GPU on every training step, so there
    only the shape is checked (the training loop's clamp keeps the value in range).
    """
    if torch.is_tensor(logit_scale):
        if logit_scale.numel() != 1:
            raise ValueError(
                f"logit_scale must be a scalar, got shape {tuple(logit_scale.shape)}"
            )
        if logit_scale.device.type != "cpu":
            return logit_scale.reshape(())
        value = float(logit_scale.detach())
    else:
        value = float(logit_scale)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            "logit_scale is the positive multiplier exp(t) of the logits, got "
            f"{value}; pass model.logit_scale.exp(), not the raw log-parameter"
        )
    if value > MAX_LOGIT_SCALE * (1 + _SCALE_TOLERANCE):
        raise ValueError(
            f"logit_scale = {value:.4g} exceeds {MAX_LOGIT_SCALE:g}: the paper clips "
            "the multiplier at 100; clamp the log-parameter at ln(100) after each "
            "optimiser step (see clip_ref.train)"
        )
    return logit_scale.reshape(()) if torch.is_tensor(logit_scale) else value


def check_equal_batches(n: int, device: torch.device | str = "cpu") -> None:
    """Raise on every process unless all processes hold ``n`` pairs (call it once,
    before training).

    The distributed loss stacks every process's embeddings, so all must contribute the
    same number of rows. Checking costs a collective operation and a wait for the
    device; a training loop checks once, not on every step: a ``DistributedSampler``
    with ``drop_last=True`` and an even split keep it true.
    """
    sizes = [
        torch.zeros(1, dtype=torch.long, device=device)
        for _ in range(dist.get_world_size())
    ]
    dist.all_gather(sizes, torch.tensor([n], device=device))
    if any(int(s) != n for s in sizes):
        raise ValueError(
            "every process must hold the same number of pairs, got "
            f"{[int(s) for s in sizes]}; use a DistributedSampler and drop the last "
            "incomplete batch"
        )


def _check_features(image_features: torch.Tensor, text_features: torch.Tensor) -> None:
    if image_features.ndim != 2 or text_features.ndim != 2:
        raise ValueError(
            "expected image and text features of shape (N, E), got "
            f"{tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )
    if image_features.shape != text_features.shape:
        raise ValueError(
            "image and text features must pair up row by row with the same embedding "
            f"size, got {tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )
    if image_features.shape[0] == 0:
        raise ValueError(
            "the batch is empty: a contrastive loss needs at least one pair"
        )


def local_contrastive_loss(
    image_local: torch.Tensor,
    text_local: torch.Tensor,
    image_all: torch.Tensor,
    text_all: torch.Tensor,
    logit_scale: torch.Tensor | float,
    offset: int,
) -> torch.Tensor:
    """The loss of one process: its own n pairs scored against all N embeddings (already
    normalised).

    Rows ``offset ... offset + n - 1`` of ``image_all`` and ``text_all`` must be this
    process's own pairs. With one process, ``image_all is image_local`` and ``offset ==
    0``: the plain N x N loss.
    """
    n = image_local.shape[0]
    # where each true pair sits
    labels = torch.arange(offset, offset + n, device=image_local.device)
    # (n, N): each image among all texts
    logits_per_image = logit_scale * image_local @ text_all.t()
    # (n, N): each text among all images
    logits_per_text = logit_scale * text_local @ image_all.t()
    return (
        F.cross_entropy(logits_per_image, labels)
        + F.cross_entropy(logits_per_text, labels)
    ) / 2


def contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor | float,
    distributed: bool = False,
) -> torch.Tensor:
    """Symmetric cross-entropy over the scaled cosine similarities of N paired
    embeddings.

    Args:
        image_features: (N, E) image embeddings, row ``i`` paired with row ``i`` of
            ``text_features``. They need not be normalised: the loss L2-normalises both.
        text_features: (N, E) text embeddings.
        logit_scale: the multiplier of the logits, ``model.logit_scale.exp()`` (a
            tensor, to learn it), positive and at most 100 (``MAX_LOGIT_SCALE``; the
            training loop clamps it). A non-positive, non-finite or larger value raises
            ``ValueError``: it signals the raw log-parameter or a missing clamp, which
            would train silently with the wrong objective.
        distributed: the N rows are this process's share of a batch split over a
            ``torch.distributed`` process group. Embeddings are all-gathered with
            gradients and the returned loss is this process's share; the mean over
            processes (as DistributedDataParallel takes of gradients) equals the
            single-process loss on the whole batch. Every process must hold the same
            number of pairs (check it once with :func:`check_equal_batches`; it is not
            checked on every call).

    Returns:
        The scalar loss, mean of the image-to-text and text-to-image cross-entropies.
    """
    _check_features(image_features, text_features)
    scale = _check_logit_scale(logit_scale)
    image_features = F.normalize(image_features, dim=-1)
    text_features = F.normalize(text_features, dim=-1)
    if not distributed:
        return local_contrastive_loss(
            image_features, text_features, image_features, text_features, scale, 0
        )

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "contrastive_loss(distributed=True) needs an initialised torch.distributed "
            "process group (torch.distributed.init_process_group, e.g. under "
            "torchrun); use distributed=False in one process"
        )
    n = image_features.shape[0]
    image_all = all_gather_with_grad(image_features)  # (W*n, E), in rank order
    text_all = all_gather_with_grad(text_features)
    # this process's pairs sit at rows rank*n ... rank*n + n - 1
    offset = dist.get_rank() * n
    return local_contrastive_loss(
        image_features, text_features, image_all, text_all, scale, offset
    )
