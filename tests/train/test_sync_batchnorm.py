"""Batch norm over two gloo ranks' halves equals batch norm over the whole batch in one process."""

from __future__ import annotations

import torch
from torch import nn

from tests.train.test_distributed import _gloo, _two_ranks
from train.distributed import gather_shares, rank_share
from train.sync_batchnorm import GlobalBatchNorm, synchronise_batchnorm


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(6, 4, 3, 5, 5, generator=g) * 2 + 1, torch.randn(6, 4, 3, 5, 5, generator=g)


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(4, 4, 1), nn.BatchNorm3d(4))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-1, 1)
    return model


def _step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, scale: float) -> dict[str, torch.Tensor]:
    """Forward, loss, backward; returns the output, the gradients and the running stats."""
    out = model(x)
    ((out * target).sum() * scale).backward()
    return {
        "out": out.detach(),
        "grad_weight": model[0].weight.grad,
        "grad_bn": model[1].weight.grad,
        "running_mean": model[1].running_mean,
        "running_var": model[1].running_var,
    }


def _worker(rank: int, world: int, port: int, out: str) -> None:
    with _gloo(rank, world, port):
        x, target = _batch()
        model = synchronise_batchnorm(_model(), on_cuda=False)
        assert isinstance(model[1], GlobalBatchNorm)
        half = slice(3 * rank, 3 * rank + 3)
        # The loss of the global batch, split: each rank's share of it, gradients summed over the ranks.
        result = _step(model, x[half], target[half], 1.0)
        for key in ("grad_weight", "grad_bn"):
            torch.distributed.all_reduce(result[key])
        result["gathered"] = gather_shares(torch.arange(7)[list(rank_share(7))] * 10, 7)
        torch.save(result, f"{out}/bn{rank}.pt")


def test_two_ranks_normalise_and_differentiate_like_one_process(tmp_path):
    ranks = _two_ranks(_worker, tmp_path, "bn", 7)
    x, target = _batch()
    single = _step(_model(), x, target, 1.0)
    for rank, result in enumerate(ranks):
        torch.testing.assert_close(result["out"], single["out"][3 * rank : 3 * rank + 3], rtol=1e-5, atol=1e-5)
        for key in ("grad_weight", "grad_bn", "running_mean", "running_var"):
            torch.testing.assert_close(result[key], single[key], rtol=1e-4, atol=1e-5)
        assert result["gathered"].tolist() == [0, 10, 20, 30, 40, 50, 60]  # item order, whoever computed it
    # Per-rank batch norm (what DDP does without it) would not match: the halves' statistics differ.
    plain = _model()
    assert not torch.allclose(plain(x[:3]), single["out"][:3], atol=1e-3)


def test_in_one_process_it_is_plain_batch_norm():
    x, _ = _batch()
    plain, synced = _model(), synchronise_batchnorm(_model(), on_cuda=False)
    torch.testing.assert_close(synced(x), plain(x), rtol=0, atol=0)
    assert synced[1].state_dict().keys() == plain[1].state_dict().keys()  # checkpoints load either way
    synced.eval(), plain.eval()
    torch.testing.assert_close(synced(x), plain(x), rtol=0, atol=0)
    assert rank_share(5) == range(5)
    assert gather_shares(torch.arange(5), 5).tolist() == [0, 1, 2, 3, 4]
