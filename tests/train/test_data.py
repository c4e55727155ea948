from __future__ import annotations

import numpy as np
import pytest
import torch

from preprocess.shards import ShardReader
from tests.shards_fixture import make_tiny_shards
from train.data import ClipDataset, EpochSampler, eval_windows, random_window, split_ids, to_model_input


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    folder = make_tiny_shards(tmp_path_factory.mktemp("shards"))
    return ShardReader(folder / "frames", folder / "motion", [0])


def test_eval_windows_are_evenly_spaced_and_centred():
    windows = eval_windows(n_frames=46, height=64, width=85, length=16, crop=56, n_clips=10)
    assert [w.start for w in windows] == [round(i * 30 / 9) for i in range(10)]
    assert windows[0].start == 0 and windows[-1].start == 30
    assert {(w.top, w.left) for w in windows} == {(4, 14)}
    # A video exactly one clip long gives the same clip n times.
    assert {w.start for w in eval_windows(16, 64, 85, 16, 56, 10)} == {0}


def test_random_window_stays_inside(rng):
    for _ in range(200):
        w = random_window(20, 30, 40, 16, 28, rng)
        assert 0 <= w.start <= 4 and 0 <= w.top <= 2 and 0 <= w.left <= 12


def test_all_modalities_share_the_crop_and_uv_become_three_channels(reader):
    ds = ClipDataset(reader, split_ids(reader, "train"), ("rgb", "res", "u"), 16, 24, train=True, seed=0)
    item = ds[(0, 1)]
    assert item["rgb"].shape == (3, 16, 24, 24) and item["u"].shape == (1, 16, 24, 24)
    assert item["rgb"].dtype == torch.uint8
    # The residual of the returned RGB crop equals the returned residual crop (same window).
    rgb = item["rgb"].numpy().astype(int)
    res = item["res"].numpy().astype(int)
    np.testing.assert_array_equal(res[:, 1:], (rgb[:, 1:] - rgb[:, :-1] + 256) // 2)
    x = to_model_input(item["u"].unsqueeze(0))
    assert x.shape == (1, 3, 16, 24, 24) and torch.equal(x[:, 0], x[:, 2]) and x.max() <= 1


def test_results_do_not_depend_on_the_number_of_workers(reader):
    ids = split_ids(reader, "train")
    ds = ClipDataset(reader, ids, ("rgb", "res"), 16, 24, train=True, seed=3)

    def epoch_batches(workers):
        sampler = EpochSampler(len(ids), seed=3)
        sampler.set_epoch(2)
        loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)
        return [torch.cat([b["index"].view(-1, 1).float(), b["rgb"].flatten(1).float()], 1) for b in loader]

    for a, b in zip(epoch_batches(0), epoch_batches(2), strict=True):
        assert torch.equal(a, b)


def test_epochs_differ_and_ddp_ranks_partition_the_epoch():
    first, second = EpochSampler(10, 0), EpochSampler(10, 0)
    second.set_epoch(1)
    assert list(first) != list(second)
    ranks = [EpochSampler(10, 0, rank=r, world=3) for r in range(3)]
    seen = [i for r in ranks for _, i in r]
    assert len(seen) == 9 == len(set(seen))  # equal shares, no video twice


def test_eval_dataset_covers_every_clip_of_every_video(reader):
    ids = split_ids(reader, "test")
    ds = ClipDataset(reader, ids, ("rgb",), 16, 24, train=False, seed=0, eval_clips=5)
    assert len(ds) == 5 * len(ids)
    assert sorted(ds[i]["index"] for i in range(len(ds))) == sorted(list(range(len(ids))) * 5)
