"""A contrastive batch larger than memory: gradient caching (Gao et al., 2021,
"Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"), for the
paper's batch of 32,768 (§2.5) on fewer, smaller devices.

The contrastive loss needs every embedding of the batch at once: each image is scored
against all N captions. Back-propagating it the plain way keeps the activations of both
encoders for all N pairs in memory until the backward pass, so memory grows with N. But
the loss depends on the encoders only through the N x E embeddings, and the chain rule
splits the gradient there:

    d loss / d weights = sum over pairs i of (d loss / d e_i) . (d e_i / d weights)

so the backward pass can run in three passes, each holding only what it needs:

1. embed the batch in chunks of C pairs *without* gradients: only the [N, E] embeddings
   are kept;
2. compute the loss on all N embeddings and its gradient with respect to them (and to
   the temperature): the "cached" gradient, [N, E], small;
3. embed each chunk again, *with* gradients, and back-propagate the chunk's rows of the
   cached gradient through it; the weights' gradients add up over the chunks.

The sum in step 3 is the full-batch gradient, exactly: every negative is still seen, the
loss is the full batch's, only the order of additions differs (float rounding). Memory
for activations grows with C, not with N; the price is a second forward pass. The
recomputation must repeat the first pass exactly, which holds for CLIP: it has no
dropout. It does hold BatchNorm in a ResNet image encoder, which in training normalises
with each chunk's own statistics (as it would with a batch split over C-pair devices),
so for a modified ResNet the chunked gradient is that of C-pair normalisation; the first
pass leaves the running statistics untouched, so they are updated once per chunk, as a
plain pass would.

Across processes nothing changes: step 2's loss gathers every process's embeddings
(:func:`clip_ref.loss.contrastive_loss` with ``distributed=True``), and under
DistributedDataParallel the gradients are averaged once, in the last chunk's backward
pass.

Shapes: n pairs on this process, C pairs per chunk, E embedding dim.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from .loss import contrastive_loss

__all__ = ["cached_contrastive_backward"]


def _no_sync(features: nn.Module) -> AbstractContextManager:
    """DistributedDataParallel's "accumulate, do not average yet" context, or
    nothing."""
    no_sync = getattr(features, "no_sync", None)
    return no_sync() if no_sync is not None else nullcontext()


def _leaf(tensor: torch.Tensor) -> torch.Tensor:
    """A copy in at least fp32 that gradients stop at."""
    dtype = torch.promote_types(tensor.dtype, torch.float32)
    return tensor.detach().to(dtype).requires_grad_()


def cached_contrastive_backward(
    features: nn.Module,
    images: torch.Tensor,
    tokens: torch.Tensor,
    chunk_size: int,
    *,
    distributed: bool = False,
    autocast: AbstractContextManager | None = None,
    scale_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accumulate into ``.grad`` the gradient of the contrastive loss over all n pairs,
    running the encoders on ``chunk_size`` pairs at a time; return ``(loss, logit
    multiplier)``, both detached.

    ``features(images, tokens)`` returns ``(image features [b, E], text features [b, E],
    logit multiplier)`` (:class:`clip_ref.training_run.Features`, possibly wrapped in
    DistributedDataParallel). ``distributed`` is that of
    :func:`~clip_ref.loss.contrastive_loss`.
    ``autocast`` is the context the encoders run in (mixed precision); the loss is
    computed in fp32. ``scale_loss`` multiplies the loss before the backward pass (a
    ``GradScaler``'s ``scale``). The gradients are those of ``loss.backward()`` on the
    whole batch, up to float rounding.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    autocast = autocast if autocast is not None else nullcontext()
    image_chunks = images.split(chunk_size)  # n / C chunks of [C, 3, R, R]
    token_chunks = tokens.split(chunk_size)  # and of [C, L]
    module = getattr(features, "module", features)  # inside DDP

    # 1. All n embeddings, without keeping activations. A ResNet's BatchNorm would
    # update its running statistics here and again in pass 3: keep them as they were.
    buffers = [b.clone() for b in module.buffers()]
    with torch.no_grad(), autocast:
        embedded = [features(i, t) for i, t in zip(image_chunks, token_chunks)]
    with torch.no_grad():
        for buffer, saved in zip(module.buffers(), buffers):
            buffer.copy_(saved)

    # 2. The loss over all n (and across processes, all N) pairs, and its gradient with
    # respect to the embeddings and the multiplier: leaves of a graph that ends here.
    # (in at least fp32: the softmax over a large batch is where half precision hurts)
    image_all = _leaf(torch.cat([e[0] for e in embedded]))  # [n, E]
    text_all = _leaf(torch.cat([e[1] for e in embedded]))  # [n, E]
    scale = _leaf(embedded[0][2])
    loss = contrastive_loss(image_all, text_all, scale, distributed=distributed)
    (scale_loss(loss) if scale_loss is not None else loss).backward()
    image_grads = image_all.grad.split(chunk_size)  # n / C chunks of [C, E]
    text_grads = text_all.grad.split(chunk_size)

    # 3. Each chunk again, with gradients, back-propagating its rows of the cached
    # gradient. Under DDP the gradients are averaged over processes once, in the last
    # chunk; the multiplier's gradient enters there, so every weight has one then.
    last = len(image_chunks) - 1
    for k, (i, t) in enumerate(zip(image_chunks, token_chunks)):
        with _no_sync(features) if k < last else nullcontext():
            with autocast:
                image_chunk, text_chunk, chunk_scale = features(i, t)
            pairs = [(image_chunk, image_grads[k]), (text_chunk, text_grads[k])]
            if k == last:
                pairs.append((chunk_scale, scale.grad))
            # a frozen encoder (LiT) or temperature has nothing to back-propagate
            pairs = [
                (out, grad.to(out.dtype)) for out, grad in pairs if out.requires_grad
            ]
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
    return loss.detach(), scale.detach()
