"""MoCo and SimCLR with and without intra-negatives: analytic values, loop references, state updates."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from train.checkpoint import build_encoder
from train.moco import KeyQueue, MoCoObjective
from train.simclr import SimCLRObjective, ntxent_logits

T = 0.07


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _moco(k=6, d=8, intra=True, momentum=0.9):
    encoder = build_encoder({"arch": "r3d", "width": 4, "feat_dim": d})
    return encoder, MoCoObjective(encoder, d, k, T, momentum, intra, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("intra", [True, False])
def test_moco_identical_features_give_the_log_of_the_number_of_logits(intra):
    k, b, d = 16, 4, 8
    _, objective = _moco(k, d, intra)
    same = F.normalize(torch.ones(d), dim=0)
    for queue in objective.modules():
        if isinstance(queue, KeyQueue):
            queue.keys[:] = same
    f = same.expand(b, d)
    logits1, logits2, labels = objective(f, f, f, f, f if intra else None, f if intra else None)
    n_logits = 2 * k + 2 if intra else k + 1
    for logits in (logits1, logits2):
        assert logits.shape == (b, n_logits)
        assert F.cross_entropy(logits, labels).item() == pytest.approx(math.log(n_logits), rel=1e-6)


def test_moco_logits_match_a_loop_reference_and_queues_are_read_before_the_push():
    k, b, d = 6, 3, 8
    _, objective = _moco(k, d)
    before = {name: q.keys.clone() for name, q in objective.named_children() if isinstance(q, KeyQueue)}
    q1, q2, k1, k2, kn1, kn2 = (_unit(b, d, seed=s) for s in range(6))
    logits1, logits2, _ = objective(q1, q2, k1, k2, kn1, kn2)
    for i in range(b):
        row = [q1[i] @ k2[i]] + [q1[i] @ before["queue2"][j] for j in range(k)]
        row += [q1[i] @ kn1[i]] + [q1[i] @ before["intra1"][j] for j in range(k)]
        torch.testing.assert_close(logits1[i], torch.stack(row) / T)
        row = [q2[i] @ k1[i]] + [q2[i] @ before["queue1"][j] for j in range(k)]
        row += [q2[i] @ kn2[i]] + [q2[i] @ before["intra2"][j] for j in range(k)]
        torch.testing.assert_close(logits2[i], torch.stack(row) / T)
    # FIFO: this batch's keys replaced the oldest rows (0..b-1), the rest is untouched.
    torch.testing.assert_close(objective.queue1.keys[:b], k1)
    torch.testing.assert_close(objective.queue2.keys[b:], before["queue2"][b:])
    torch.testing.assert_close(objective.intra1.keys[:b], kn1)
    assert int(objective.queue1.pointer) == b


def test_queue_wraps_around():
    queue = KeyQueue(5, 2, torch.Generator().manual_seed(0))
    first, second = _unit(3, 2, seed=1), _unit(3, 2, seed=2)
    queue.push(first)
    queue.push(second)
    torch.testing.assert_close(queue.keys[[3, 4, 0]], second)
    torch.testing.assert_close(queue.keys[[1, 2]], first[1:])
    assert int(queue.pointer) == 1


def test_moco_key_encoder_is_an_ema_without_gradients():
    encoder, objective = _moco(momentum=0.9)
    assert not any(p.requires_grad for p in objective.key_encoder.parameters())
    old_key = [p.clone() for p in objective.key_encoder.parameters()]
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(1.0)
    objective.after_step(encoder)
    for key, old, query in zip(objective.key_encoder.parameters(), old_key, encoder.parameters(), strict=True):
        torch.testing.assert_close(key, 0.9 * old + 0.1 * query)


def test_moco_queries_get_gradients_keys_do_not():
    encoder, objective = _moco(k=8)
    x1, x2 = torch.rand(2, 3, 8, 16, 16), torch.rand(2, 3, 8, 16, 16)

    def encode(clips, module=encoder):
        return module(clips).float()

    repeat = lambda clips, g: clips[:, :, :1].expand_as(clips).contiguous()  # noqa: E731
    logits1, logits2, labels = objective.logits(encode, x1, x2, torch.arange(2), torch.Generator(), repeat)
    assert logits1.shape == (2, 2 * 8 + 2)
    (F.cross_entropy(logits1, labels) + F.cross_entropy(logits2, labels)).backward()
    assert encoder.backbone.stem[0].weight.grad.abs().sum() > 0
    assert objective.key_encoder.backbone.stem[0].weight.grad is None


@pytest.mark.parametrize("intra", [True, False])
def test_simclr_identical_features_give_the_log_of_the_number_of_logits(intra):
    b, d = 5, 8
    same = F.normalize(torch.ones(d), dim=0).expand(b, d)
    logits1, logits2, labels = SimCLRObjective(T, intra)(same, same, same if intra else None, same if intra else None)
    n_logits = 4 * b - 1 if intra else 2 * b - 1
    for logits in (logits1, logits2):
        assert logits.shape == (b, n_logits)
        assert F.cross_entropy(logits, labels).item() == pytest.approx(math.log(n_logits), rel=1e-6)


def test_simclr_logits_match_a_loop_reference():
    b, d = 4, 6
    z1, z2, n1, n2 = (_unit(b, d, seed=s) for s in range(4))
    logits1, logits2, _ = SimCLRObjective(T, True)(z1, z2, n1, n2)
    intra = torch.cat([n1, n2])
    for anchors, own, other, logits in ((z1, z1, z2, logits1), (z2, z2, z1, logits2)):
        for i in range(b):
            row = [anchors[i] @ other[i]]
            row += [anchors[i] @ own[j] for j in range(b) if j != i]
            row += [anchors[i] @ other[j] for j in range(b) if j != i]
            row += [anchors[i] @ intra[j] for j in range(2 * b)]  # its own intra-negative included
            torch.testing.assert_close(logits[i], torch.stack(row) / T)


def test_ntxent_with_an_offset_treats_rows_as_part_of_a_global_batch():
    g, d = 6, 5
    z1, z2 = _unit(g, d, seed=1), _unit(g, d, seed=2)
    full = ntxent_logits(z1, z1, z2, None, 0, T)
    part = ntxent_logits(z1[2:4], z1, z2, None, 2, T)  # rank 1 of 3, two anchors each
    torch.testing.assert_close(part, full[2:4])
