"""Upstream BestJuly/IIC's objective (method cmc_upstream) against a loop reference written from
its description: shared rows for inter- and intra-negatives, the positive among the draws, one
RGB intra-negative bank, raw features, banks off the sphere at the start."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.nn import functional as F

from pipeline.schema import ModelParams
from train.checkpoint import build_encoder
from train.cmc_upstream import UpstreamCMCObjective, draw_with_positive
from train.pretrain import PretrainSetup

T, M = 0.07, 0.5


def _objective(n=10, d=6, k=5, intra=True):
    return UpstreamCMCObjective(n, d, k, T, M, intra, torch.Generator().manual_seed(0))


def test_logits_match_a_loop_reference_and_the_banks_update_after_being_read():
    n, d, k, b = 10, 6, 5, 3
    objective = _objective(n, d, k)
    before = {name: objective.get_submodule(name).rows.clone() for name in ("view1", "view2", "intra")}
    g = torch.Generator().manual_seed(3)
    f1, f2, n1 = (3 * torch.randn(b, d, generator=g) for _ in range(3))  # raw, not unit-norm
    index = torch.tensor([4, 0, 9])
    logits1, logits2, labels = objective(f1, f2, index, torch.Generator().manual_seed(7), n1)
    idx = draw_with_positive(index, n, k, torch.Generator().manual_seed(7))  # the same draws
    assert idx.shape == (b, k + 1) and idx[:, 0].tolist() == index.tolist()
    for i in range(b):
        rows = idx[i].tolist()
        view1 = [f1[i] @ before["view2"][j] for j in rows] + [f1[i] @ before["intra"][j] for j in rows]
        view2 = [f2[i] @ before["view1"][j] for j in rows] + [f2[i] @ before["intra"][j] for j in rows]
        torch.testing.assert_close(logits1[i], torch.stack(view1) / T)
        torch.testing.assert_close(logits2[i], torch.stack(view2) / T)
    assert logits1.shape == (b, 2 * k + 2) and labels.tolist() == [0, 0, 0]
    for name, feature in (("view1", f1), ("view2", f2), ("intra", n1)):  # one intra bank: RGB's
        rows = objective.get_submodule(name).rows
        torch.testing.assert_close(rows[index], F.normalize(M * before[name][index] + (1 - M) * feature, dim=1))
        untouched = torch.ones(n, dtype=torch.bool)
        untouched[index] = False
        torch.testing.assert_close(rows[untouched], before[name][untouched])


def test_the_positive_can_be_drawn_as_a_negative_and_banks_start_off_the_sphere():
    index = torch.tensor([1, 2])
    draws = draw_with_positive(index, 3, 200, torch.Generator().manual_seed(0))
    assert set(draws[0, 1:].tolist()) == {0, 1, 2}  # upstream samples all rows, the positive's too
    norms = _objective(n=50, d=32).view1.rows.norm(dim=1)
    assert not torch.allclose(norms, torch.ones(50))  # CMC's uniform rows, not projected


@pytest.mark.parametrize("intra", [True, False])
def test_identical_features_give_the_log_of_the_number_of_logits(intra):
    n, d, k, b = 8, 4, 6, 3
    objective = _objective(n, d, k, intra)
    same = F.normalize(torch.ones(d), dim=0)
    for bank in ("view1", "view2", *(("intra",) if intra else ())):
        objective.get_submodule(bank).rows[:] = same
    f = same.expand(b, d)
    logits1, logits2, labels = objective(f, f, torch.arange(b), torch.Generator().manual_seed(0), f if intra else None)
    n_logits = 2 * k + 2 if intra else k + 1
    for logits in (logits1, logits2):
        assert logits.shape == (b, n_logits)
        assert F.cross_entropy(logits, labels).item() == pytest.approx(math.log(n_logits), rel=1e-6)


def test_its_encoder_gives_the_backbones_raw_pooled_features():
    setup = PretrainSetup(ModelParams("r3d", 4), _pretrain_params("cmc_upstream"), 16, 24)
    encoder = build_encoder(setup.config())
    assert encoder.head is None and not any(k.startswith("head.") for k in encoder.state_dict())
    x = torch.rand(2, 3, 16, 24, 24)
    torch.testing.assert_close(encoder(x), encoder.backbone(x))  # (2, 32), not normalised
    ours = build_encoder(PretrainSetup(ModelParams("r3d", 4), _pretrain_params("cmc"), 16, 24).config())
    assert ours.head is not None and ours(x).norm(dim=1).allclose(torch.ones(2))


def _pretrain_params(method: str):
    from tests.train.test_pretrain import _setup

    return dataclasses.replace(_setup().pretrain, method=method, feat_dim=8)
