"""Everything torchrun-related in one place: joining the group, rank and world size, and the
collectives the objectives and the epoch logs use.

Each function is the identity (or rank 0 of 1) without a process group, so single-process
code and tests run the same lines as a DDP rank.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import distributed as dist

from pipeline.runtime import Runtime, check_device, make_runtime
from pipeline.schema import RuntimeParams


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) under torchrun, (0, 1) otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(use_cuda: bool) -> None:
    """Join the torchrun process group when launched by torchrun (NCCL on CUDA, gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if use_cuda else "gloo")


def leave_distributed() -> None:
    """Leave the group before the interpreter's exit tears the backend down under it."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(p: RuntimeParams) -> Iterator[Runtime]:
    """The block of a training or evaluation stage: join torchrun's process group when launched
    by torchrun (NCCL on CUDA, gloo on the CPU), yield the stage's ``Runtime``, and leave the
    group afterwards, on an error too. Without torchrun it only yields the runtime.

    The device choice is checked first, so ``runtime.device: cuda`` on a machine without CUDA
    fails in one line before any process group is formed.
    """
    check_device(p.device, "runtime.device")
    init_distributed(use_cuda=p.device != "cpu" and torch.cuda.is_available())
    try:
        yield make_runtime(p)
    finally:
        leave_distributed()


def gather_from_ranks(x: torch.Tensor) -> torch.Tensor:
    """(B,...) on each rank -> (world*B,...) in rank order, without gradients.

    Every rank updates its banks or queues with the whole global batch, so they stay
    identical across ranks without ever being broadcast.
    """
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B,D) from every rank -> ((G,D), offset of this rank's rows); gradients flow back."""
    if not is_distributed():
        return x, 0
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x)), dist.get_rank() * x.shape[0]


def mean_over_ranks(means: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each rank's epoch means -> their mean over the ranks (every rank ran as many batches), on every rank.

    Without it the curves and the log would show rank 0's share of the global batch only.
    """
    if not is_distributed():
        return means
    values = torch.tensor(list(means.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(means, (values / dist.get_world_size()).tolist(), strict=True))


def rank_share(n: int) -> range:
    """This rank's items of ``n`` (every world-th, from its rank): all of them in one process."""
    rank, world = rank_and_world()
    return range(rank, n, world)


def gather_shares(share: torch.Tensor, n: int) -> torch.Tensor:
    """(len(rank_share(n)),...) rows of each rank -> (n,...) in item order, on every rank.

    The inverse of ``rank_share``: row i of the result is item i, whichever rank computed it,
    so a sharded evaluation gives the same tensor as one process.
    """
    if not is_distributed():
        return share
    world = dist.get_world_size()
    shares: list[torch.Tensor | None] = [None] * world
    dist.all_gather_object(shares, share.cpu())
    out = torch.empty((n, *share.shape[1:]), dtype=share.dtype)
    for r, part in enumerate(shares):
        assert part is not None, f"rank {r} sent no share"
        out[r::world] = part
    return out.to(share.device)
