from __future__ import annotations

import pytest
import torch

from tests.conftest import needs_cuda
from train.intra_negatives import INTRA_NEGATIVES, repeat_frame, shuffle_chunks


def _clips(b=5, t=16):
    # Frame t of clip i holds the value 100 * i + t everywhere: frame identity is readable.
    values = 100 * torch.arange(b).view(b, 1, 1, 1, 1) + torch.arange(t).view(1, 1, t, 1, 1)
    return values.expand(b, 3, t, 4, 4).float().contiguous()


def test_repeat_uses_one_frame_of_the_same_clip():
    clips = _clips()
    out = repeat_frame(clips, torch.Generator().manual_seed(0))
    assert out.shape == clips.shape
    for i in range(len(clips)):
        frame = out[i, 0, 0, 0, 0].item()
        assert (out[i] == frame).all()  # the same frame everywhere in time
        assert 100 * i <= frame < 100 * i + 16  # taken from its own clip


def test_shuffle_swaps_exactly_two_distinct_chunks():
    clips = _clips(b=64)
    out = shuffle_chunks(clips, torch.Generator().manual_seed(1))
    for i in range(len(clips)):
        order = (out[i, 0, :, 0, 0] - 100 * i).long().view(4, 4)
        chunks = order[:, 0] // 4
        assert torch.equal(order, chunks.view(4, 1) * 4 + torch.arange(4))  # chunks stay whole
        moved = (chunks != torch.arange(4)).nonzero().flatten()
        assert len(moved) == 2 and chunks[moved[0]] == moved[1] and chunks[moved[1]] == moved[0]


def test_negatives_are_reproducible_from_the_generator():
    clips = _clips()
    for make in INTRA_NEGATIVES.values():
        a = make(clips, torch.Generator().manual_seed(3))
        b = make(clips, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)


def test_shuffle_needs_four_equal_chunks():
    with pytest.raises(ValueError):
        shuffle_chunks(_clips(t=10), torch.Generator())


@needs_cuda
def test_intra_negatives_on_the_device():
    clips = _clips().cuda()
    generator = torch.Generator(device="cuda").manual_seed(0)
    for make in INTRA_NEGATIVES.values():
        assert make(clips, generator).device == clips.device
