"""DDP logic on CPU: two gloo processes keep identical memory banks (the NCCL path's CPU twin)."""
from __future__ import annotations

import os

import torch
import torch.multiprocessing as mp
from torch import distributed as dist
from torch.nn import functional as F

from train.contrast import IICObjective


def _features(seed: int, b: int, d: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(b, d, generator=g), dim=1) for _ in range(4)]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    objective = IICObjective(40, 8, 6, 0.07, 0.5, True, torch.Generator().manual_seed(0))
    f1, f2, n1, n2 = _features(100 + rank, 3, 8)
    index = torch.tensor([0, 1, 2]) + 10 * rank  # each rank holds different videos
    objective(f1, f2, index, torch.Generator().manual_seed(7), n1, n2)
    torch.save(objective.state_dict(), f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_banks_stay_identical_across_two_gloo_ranks(tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # The same banks on both ranks, equal to one process updating with the global batch.
    single = IICObjective(40, 8, 6, 0.07, 0.5, True, torch.Generator().manual_seed(0))
    parts = [_features(100 + r, 3, 8) for r in range(2)]
    index = torch.tensor([0, 1, 2, 10, 11, 12])
    for bank, i in (("view1", 0), ("view2", 1), ("intra1", 2), ("intra2", 3)):
        getattr(single, bank).update(index, torch.cat([parts[0][i], parts[1][i]]), 0.5)
    for key, value in single.state_dict().items():
        assert torch.equal(rank0[key], rank1[key]), key
        torch.testing.assert_close(rank0[key], value)
