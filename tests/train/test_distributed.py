"""DDP logic on CPU: two gloo processes keep identical memory banks (the NCCL path's CPU twin)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import distributed as dist
from torch.nn import functional as F

from train.cmc import CMCObjective


def _features(seed: int, b: int, d: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(b, d, generator=g), dim=1) for _ in range(4)]


@contextlib.contextmanager
def _gloo(rank: int, world: int, port: int) -> Iterator[None]:
    """This worker process as one rank of a gloo process group on localhost."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        yield
        # No rank tears gloo down while the other still finishes a collective (SimCLR's backward
        # all-gather): without this barrier a rank sometimes aborted at exit.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _run_then_exit(rank: int, worker, world: int, port: int, out: str) -> None:
    """Run one rank's ``worker``, then leave without the interpreter's teardown.

    After the work, the saved results and a clean destroy_process_group, a rank still aborted
    now and then in C++ teardown at interpreter exit ("terminate called without an active
    exception"; 1 CI run in about 20 under load, after the barrier above made it rarer). What
    these tests check is in the saved files; os._exit(0) skips that teardown. An exception in
    ``worker`` still propagates to mp.spawn as a failure.
    """
    worker(rank, world, port, out)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _two_ranks(worker, tmp_path: Path, name: str, port_offset: int) -> list:
    """Run ``worker(rank, 2, port, out)`` in two processes; load what each saved as ``<name><rank>.pt``."""
    port = 29500 + (os.getpid() + port_offset) % 1000  # each test its own port
    mp.spawn(_run_then_exit, args=(worker, 2, port, str(tmp_path)), nprocs=2, join=True)
    return [torch.load(tmp_path / f"{name}{rank}.pt", weights_only=True) for rank in range(2)]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    with _gloo(rank, world, port):
        objective = CMCObjective(40, 8, 6, 0.07, 0.5, True, torch.Generator().manual_seed(0))
        f1, f2, n1, n2 = _features(100 + rank, 3, 8)
        index = torch.tensor([0, 1, 2]) + 10 * rank  # each rank holds different videos
        objective(f1, f2, index, torch.Generator().manual_seed(7), n1, n2)
        torch.save(objective.state_dict(), f"{out}/rank{rank}.pt")


def test_banks_stay_identical_across_two_gloo_ranks(tmp_path):
    rank0, rank1 = _two_ranks(_worker, tmp_path, "rank", 0)
    # The same banks on both ranks, equal to one process updating with the global batch.
    single = CMCObjective(40, 8, 6, 0.07, 0.5, True, torch.Generator().manual_seed(0))
    parts = [_features(100 + r, 3, 8) for r in range(2)]
    index = torch.tensor([0, 1, 2, 10, 11, 12])
    for bank, i in (("view1", 0), ("view2", 1), ("intra1", 2), ("intra2", 3)):
        getattr(single, bank).update(index, torch.cat([parts[0][i], parts[1][i]]), 0.5)
    for key, value in single.state_dict().items():
        assert torch.equal(rank0[key], rank1[key]), key
        torch.testing.assert_close(rank0[key], value)


def _ddp_step_worker(rank: int, world: int, port: int, out: str) -> None:
    from pipeline.runtime import Runtime
    from pipeline.schema import BaselineParams, ModelParams, PretrainParams
    from train.checkpoint import build_encoder
    from train.pretrain import PretrainSetup, batch_loss

    with _gloo(rank, world, port):
        pretrain = PretrainParams(
            models=["iic"],
            baseline=BaselineParams(intra_neg=False),
            datasets=["demo"],
            method="cmc",
            modality="res",
            intra_neg=True,
            neg="repeat",
            nce_k=4,
            nce_t=0.07,
            nce_m=0.5,
            moco_m=0.99,
            feat_dim=8,
            epochs=1,
            batch_size=2,
            lr=0.1,
            momentum=0.9,
            weight_decay=1e-4,
            lr_steps=[1],
            lr_decay=0.2,
            seed=0,
            checkpoint_every=1,
        )
        setup = PretrainSetup(ModelParams(arch="r3d", width=4), pretrain, 8, 16)
        torch.manual_seed(0)  # the same initial weights on every rank, as DDP requires
        encoder = build_encoder(setup.config())
        ddp = torch.nn.parallel.DistributedDataParallel(encoder)
        objective = CMCObjective(8, 8, 4, 0.07, 0.5, True, torch.Generator().manual_seed(0))
        g = torch.Generator().manual_seed(10 + rank)  # each rank reads different clips
        batch = {
            "rgb": torch.randint(0, 256, (2, 3, 8, 16, 16), dtype=torch.uint8, generator=g),
            "res": torch.randint(0, 256, (2, 3, 8, 16, 16), dtype=torch.uint8, generator=g),
            "index": torch.tensor([0, 1]) + 2 * rank,
        }
        cpu = Runtime(torch.device("cpu"), bf16=False, channels_last=False, compile=False)
        optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
        loss, _ = batch_loss(batch, setup, ddp, objective, cpu, torch.Generator().manual_seed(3))
        loss.backward()  # the shared encoder ran twice (one forward per view) before this one backward
        optimizer.step()
        torch.save(
            {"encoder": encoder.state_dict(), "grad": encoder.backbone.stem[0].weight.grad}, f"{out}/step{rank}.pt"
        )


def test_ddp_step_of_the_shared_encoder_keeps_ranks_identical(tmp_path):
    rank0, rank1 = _two_ranks(_ddp_step_worker, tmp_path, "step", 500)
    assert rank0["grad"].abs().sum() > 0
    torch.testing.assert_close(rank0["grad"], rank1["grad"])  # gradients averaged across ranks
    for key, value in rank0["encoder"].items():
        if "running" not in key and "num_batches" not in key:  # BN statistics stay per rank
            torch.testing.assert_close(value, rank1["encoder"][key], msg=key)


def _moco_worker(rank: int, world: int, port: int, out: str) -> None:
    from train.checkpoint import build_encoder
    from train.moco import MoCoObjective

    with _gloo(rank, world, port):
        torch.manual_seed(0)
        objective = MoCoObjective(
            build_encoder({"arch": "r3d", "width": 4, "feat_dim": 8}),
            8,
            10,
            0.07,
            0.99,
            True,
            torch.Generator().manual_seed(0),
        )
        q1, q2, k1, k2 = _features(100 + rank, 3, 8)
        kn1, kn2, _, _ = _features(200 + rank, 3, 8)
        objective(q1, q2, k1, k2, kn1, kn2)
        queues = {k: v for k, v in objective.state_dict().items() if not k.startswith("key_encoder.")}
        torch.save(queues, f"{out}/moco{rank}.pt")


def test_moco_queues_receive_the_keys_of_every_rank(tmp_path):
    rank0, rank1 = _two_ranks(_moco_worker, tmp_path, "moco", 250)
    keys = [_features(100 + r, 3, 8) for r in range(2)]
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key
    torch.testing.assert_close(rank0["queue1.keys"][:6], torch.cat([keys[0][2], keys[1][2]]))  # k1 of both ranks
    torch.testing.assert_close(rank0["queue2.keys"][:6], torch.cat([keys[0][3], keys[1][3]]))
    assert int(rank0["queue1.pointer"]) == 6


def _simclr_worker(rank: int, world: int, port: int, out: str) -> None:
    from train.simclr import SimCLRObjective

    with _gloo(rank, world, port):
        z1, z2, n1, n2 = (t.requires_grad_() for t in _features(100 + rank, 3, 8))
        logits1, logits2, labels = SimCLRObjective(0.07, True)(z1, z2, n1, n2)
        (F.cross_entropy(logits1, labels) + F.cross_entropy(logits2, labels)).backward()
        torch.save({"logits1": logits1.detach(), "grad": z1.grad}, f"{out}/simclr{rank}.pt")


def test_simclr_negatives_span_the_global_batch(tmp_path):
    """Two ranks of 3 clips give each anchor the logits one process gives it with the batch of 6."""
    from train.simclr import SimCLRObjective

    saved = _two_ranks(_simclr_worker, tmp_path, "simclr", 750)
    parts = [_features(100 + r, 3, 8) for r in range(2)]
    z1, z2, n1, n2 = (torch.cat([parts[0][i], parts[1][i]]) for i in range(4))
    logits1, _, _ = SimCLRObjective(0.07, True)(z1, z2, n1, n2)
    assert logits1.shape == (6, 4 * 6 - 1)
    for rank, got in enumerate(saved):
        torch.testing.assert_close(got["logits1"], logits1[3 * rank : 3 * rank + 3])
        assert got["grad"].abs().sum() > 0
