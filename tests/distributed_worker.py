"""One process of the distributed-loss test; launched by tests/test_distributed.py under
torchrun (gloo, CPU).

Every process builds the same seeded full batch, keeps its own shard, and computes the
distributed loss and gradients. It also computes, on its own, the single-process loss
and gradients on the whole batch, and writes how far apart the two are to
OUT/rank<r>.json. The test reads those numbers and decides.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from support import TINY_VIT, random_tokens
from torch.nn.parallel import DistributedDataParallel

from clip_ref import CLIP
from clip_ref.grad_cache import cached_contrastive_backward
from clip_ref.loss import check_equal_batches, contrastive_loss, local_contrastive_loss
from clip_ref.training_run import Features


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def features_check(rank: int, world: int, n: int = 5, e: int = 8) -> dict:
    """Raw features: loss, feature gradients and temperature gradient against the
    full-batch computation."""
    g = torch.Generator().manual_seed(0)
    image = torch.randn(world * n, e, generator=g, dtype=torch.float64)
    text = 0.5 * image + torch.randn(world * n, e, generator=g, dtype=torch.float64)
    mine = slice(rank * n, (rank + 1) * n)

    # The reference: one process holding all N = W * n pairs.
    full_i, full_t = image.clone().requires_grad_(), text.clone().requires_grad_()
    full_s = torch.tensor(20.0, dtype=torch.float64, requires_grad=True)
    full_loss = contrastive_loss(full_i, full_t, full_s)
    full_loss.backward()

    local_i, local_t = (
        image[mine].clone().requires_grad_(),
        text[mine].clone().requires_grad_(),
    )
    local_s = torch.tensor(20.0, dtype=torch.float64, requires_grad=True)
    loss = contrastive_loss(local_i, local_t, local_s, distributed=True)
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= world
    scale_grad = local_s.grad.clone()
    dist.all_reduce(scale_grad)
    scale_grad /= world
    # DistributedDataParallel averages gradients over processes, hence the division by
    # W.
    result = {
        "loss_diff": max_diff(mean_loss, full_loss.detach()),
        "image_grad_diff": max_diff(local_i.grad / world, full_i.grad[mine]),
        "text_grad_diff": max_diff(local_t.grad / world, full_t.grad[mine]),
        "scale_grad_diff": max_diff(scale_grad, full_s.grad),
        "grad_size": full_i.grad.abs().max().item(),
    }

    # Negative control: gather without gradients (only this process's own slice keeps
    # its history). The loss value is the same, but the gradient that other processes'
    # losses send to this shard is lost.
    live_i, live_t = (
        image[mine].clone().requires_grad_(),
        text[mine].clone().requires_grad_(),
    )
    norm_i, norm_t = F.normalize(live_i, dim=-1), F.normalize(live_t, dim=-1)
    gathered_i = [torch.empty_like(norm_i) for _ in range(world)]
    gathered_t = [torch.empty_like(norm_t) for _ in range(world)]
    dist.all_gather(gathered_i, norm_i.detach())
    dist.all_gather(gathered_t, norm_t.detach())
    gathered_i[rank], gathered_t[rank] = norm_i, norm_t
    no_grad_loss = local_contrastive_loss(
        norm_i, norm_t, torch.cat(gathered_i), torch.cat(gathered_t), 20.0, rank * n
    )
    no_grad_loss.backward()
    result["no_grad_gather_loss_diff"] = max_diff(no_grad_loss.detach(), loss.detach())
    result["no_grad_gather_image_grad_diff"] = max_diff(
        live_i.grad / world, full_i.grad[mine]
    )
    return result


def model_check(rank: int, world: int, n: int = 3) -> dict:
    """A small CLIP under DistributedDataParallel: parameter gradients against the
    full-batch computation."""
    torch.manual_seed(0)
    model = CLIP(TINY_VIT).double()
    reference = CLIP(TINY_VIT).double()
    reference.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(1)
    images = torch.randn(world * n, 3, 32, 32, generator=g, dtype=torch.float64)
    tokens = random_tokens(world * n, TINY_VIT.context_length, seed=2)
    mine = slice(rank * n, (rank + 1) * n)

    full_loss = contrastive_loss(
        reference.encode_image(images),
        reference.encode_text(tokens),
        reference.logit_scale.exp(),
    )
    full_loss.backward()

    ddp = DistributedDataParallel(Features(model))
    image_features, text_features, scale = ddp(images[mine], tokens[mine])
    loss = contrastive_loss(image_features, text_features, scale, distributed=True)
    loss.backward()  # DDP averages the parameter gradients over the processes here

    diffs = {
        name: max_diff(p.grad, dict(reference.named_parameters())[name].grad)
        for name, p in model.named_parameters()
    }
    worst = max(diffs, key=diffs.get)

    # Gradient caching under DDP: chunks of 2 and 1 of this process's 3 pairs, the loss
    # over all 2 x 3, the gradients averaged once, in the last chunk.
    chunked = CLIP(TINY_VIT).double()
    chunked.load_state_dict(reference.state_dict())
    chunked_loss, _ = cached_contrastive_backward(
        DistributedDataParallel(Features(chunked)),
        images[mine],
        tokens[mine],
        2,
        distributed=True,
    )
    chunked_diffs = [
        max_diff(p.grad, dict(reference.named_parameters())[name].grad)
        for name, p in chunked.named_parameters()
    ]
    return {
        "chunked_param_grad_max_diff": max(chunked_diffs),
        "chunked_loss_diff": max_diff(chunked_loss, loss.detach()),
        "param_grad_max_diff": diffs[worst],
        "param_grad_worst": worst,
        "param_grad_size": max(
            p.grad.abs().max().item() for p in reference.parameters()
        ),
        "params_compared": len(diffs),
    }


def unequal_batches_check(rank: int) -> dict:
    n = 3 + rank  # rank 0 holds 3 pairs, rank 1 holds 4
    try:
        check_equal_batches(n)
    except ValueError as error:
        return {"unequal_error": str(error)}
    return {"unequal_error": None}


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {"rank": rank, "world": world}
    result.update(features_check(rank, world))
    result.update(model_check(rank, world))
    result.update(unequal_batches_check(rank))
    (out / f"rank{rank}.json").write_text(json.dumps(result, indent=2))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
