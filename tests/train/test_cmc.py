from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from train.cmc import CMCObjective, MemoryBank, draw_negatives
from train.objective import nce_logits


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("intra_neg, k", [(True, 16), (False, 16), (True, 1024), (False, 1024)])
def test_identical_features_give_the_analytic_loss(intra_neg, k):
    n, b, d = 2000, 4, 8
    objective = CMCObjective(n, d, k, 0.07, 0.5, intra_neg, torch.Generator().manual_seed(0))
    same = F.normalize(torch.ones(d), dim=0)
    for bank in objective.modules():
        if isinstance(bank, MemoryBank):
            bank.rows[:] = same
    f = same.expand(b, d)
    logits1, logits2, labels = objective(f, f, torch.arange(b), torch.Generator().manual_seed(1), f, f)
    expected = math.log(2 * k + 2) if intra_neg else math.log(k + 1)
    assert logits1.shape == (b, 2 * k + 2 if intra_neg else k + 1)
    for logits in (logits1, logits2):
        assert F.cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_logits_match_a_loop_reference():
    b, k, d, t = 3, 5, 6, 0.07
    anchor, positive = _unit(b, d, seed=1), _unit(b, d, seed=2)
    negatives, intra = _unit(b, k, d, seed=3), _unit(b, k + 1, d, seed=4)
    logits = nce_logits(anchor, positive, negatives, intra, t)
    for i in range(b):
        row = [anchor[i] @ positive[i]] + [anchor[i] @ negatives[i, j] for j in range(k)]
        row += [anchor[i] @ intra[i, j] for j in range(k + 1)]
        torch.testing.assert_close(logits[i], torch.stack(row) / t)


def test_bank_is_read_before_it_is_updated_and_only_batch_rows_change():
    n, d, k = 50, 8, 10
    objective = CMCObjective(n, d, k, 0.07, 0.5, True, torch.Generator().manual_seed(0))
    before = {name: bank.rows.clone() for name, bank in objective.named_children()}
    index = torch.tensor([3, 17, 42])
    f1, f2, n1, n2 = (_unit(3, d, seed=s) for s in range(10, 14))
    logits1, logits2, _ = objective(f1, f2, index, torch.Generator().manual_seed(5), n1, n2)
    # The positive logit used the view-2 bank as it was before this batch.
    torch.testing.assert_close(logits1[:, 0], (f1 * before["view2"][index]).sum(1) / 0.07)
    torch.testing.assert_close(logits2[:, 0], (f2 * before["view1"][index]).sum(1) / 0.07)
    others = torch.ones(n, dtype=torch.bool)
    others[index] = False
    for name, bank in objective.named_children():
        assert torch.equal(bank.rows[others], before[name][others])
        assert not torch.equal(bank.rows[index], before[name][index])
        torch.testing.assert_close(bank.rows.norm(dim=1), torch.ones(n))
    expected = F.normalize(before["view1"][index] * 0.5 + f1 * 0.5, dim=1)
    torch.testing.assert_close(objective.view1.rows[index], expected)


def test_negatives_never_repeat_the_positive_and_cover_the_rest():
    index = torch.tensor([0, 7, 9])
    draws = draw_negatives(index, 10, 5000, torch.Generator().manual_seed(0))
    assert draws.shape == (3, 5000)
    for row, positive in zip(draws, index.tolist(), strict=True):
        assert positive not in row.tolist()
        assert set(row.tolist()) == set(range(10)) - {positive}


def test_gradients_flow_to_features_not_banks():
    objective = CMCObjective(20, 4, 6, 0.07, 0.5, False, torch.Generator().manual_seed(0))
    f1 = _unit(2, 4, seed=1).requires_grad_()
    f2 = _unit(2, 4, seed=2).requires_grad_()
    logits1, logits2, labels = objective(f1, f2, torch.tensor([1, 2]), torch.Generator().manual_seed(0))
    (F.cross_entropy(logits1, labels) + F.cross_entropy(logits2, labels)).backward()
    assert f1.grad is not None and f1.grad.abs().sum() > 0
    assert not any(b.requires_grad for b in objective.buffers())
