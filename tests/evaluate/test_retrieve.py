"""Non-finite features and metrics fail their stage; nothing is written before the failure."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from evaluate.features import video_features
from evaluate.retrieve import retrieve_stage
from pipeline.errors import ConfigError, InputError, NonFiniteError
from pipeline.runtime import Runtime
from pipeline.schema import IntervalsParams
from preprocess.shards import ShardReader
from tests.shards_fixture import make_tiny_shards
from train.checkpoint import build_encoder

INTERVALS = IntervalsParams(resamples=1000, seed=0, level=0.95)
CPU = Runtime(torch.device("cpu"), bf16=False, channels_last=False, compile=False)


def _features(path, split, rgb):
    np.savez(
        path,
        ids=np.array([f"v{i}" for i in range(len(split))]),
        labels=np.arange(len(split)) % 2,
        split=np.array(split),
        rgb=rgb,
        view2=np.ones_like(rgb),
        view2_modality=np.array("res"),
    )
    return path


def test_an_empty_test_split_fails_instead_of_reporting_nan(tmp_path):
    files = {"iic": _features(tmp_path / "f.npz", ["train"] * 4, np.eye(4, dtype=np.float32))}
    with pytest.raises(InputError, match="0 test queries"):
        retrieve_stage(files, [1, 5], INTERVALS, tmp_path / "m.json", tmp_path / "p.csv")
    assert not (tmp_path / "m.json").exists()


def test_nan_features_fail_retrieval_before_writing(tmp_path):
    rgb = np.eye(4, dtype=np.float32)
    rgb[0] = np.nan
    files = {"iic": _features(tmp_path / "f.npz", ["train", "train", "test", "test"], rgb)}
    with pytest.raises(NonFiniteError):
        retrieve_stage(files, [1], INTERVALS, tmp_path / "m.json", tmp_path / "p.csv")
    assert not (tmp_path / "m.json").exists()


def test_topk_without_1_reports_what_was_asked(tmp_path):
    split = ["train"] * 12 + ["test"] * 4
    files = {"iic": _features(tmp_path / "f.npz", split, np.eye(16, dtype=np.float32))}
    metrics = retrieve_stage(files, [5, 10], INTERVALS, tmp_path / "m.json", tmp_path / "p.csv")
    assert set(metrics["iic"]["rgb"]) == {"top5", "top10"}


def test_a_top_k_at_least_the_gallery_is_left_out_and_all_of_them_is_an_error(tmp_path):
    """With 4 train videos, top-5/10/20/50 were reported at 100%: true by construction."""
    split = ["train"] * 4 + ["test"] * 4
    files = {"iic": _features(tmp_path / "f.npz", split, np.eye(8, dtype=np.float32))}
    metrics = retrieve_stage(files, [1, 4, 5, 50], INTERVALS, tmp_path / "m.json", tmp_path / "p.csv")
    assert set(metrics["iic"]["rgb"]) == {"top1"}
    assert {row["k"] for row in csv.DictReader((tmp_path / "p.csv").open())} == {"1"}
    with pytest.raises(ConfigError, match=r"^retrieve\.topk: every k of \[5, 10\] is at least the 4 train videos"):
        retrieve_stage(files, [5, 10], INTERVALS, tmp_path / "m.json", tmp_path / "p.csv")


def test_features_of_nan_weights_fail_naming_a_video(tmp_path):
    folder = make_tiny_shards(tmp_path)
    reader = ShardReader(folder / "frames", folder / "motion", [0])
    encoder = build_encoder({"arch": "r3d", "width": 4, "feat_dim": 8})
    with torch.no_grad():
        encoder.backbone.stem[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="rgb features of 12 of 12 videos are not finite"):
        video_features(encoder, reader, sorted(reader.videos), "rgb", 16, 24, 2, 4, 0, CPU)


def test_every_top_k_carries_its_interval_and_the_iic_random_difference_a_paired_one(tmp_path):
    """Two models on the same 40 test queries: iic finds its class for every query, random for
    none of the first 20; the intervals bound each accuracy and the paired one their difference."""
    n_train, n_test = 8, 40
    split = ["train"] * n_train + ["test"] * n_test
    labels = np.arange(n_train + n_test) % 2
    good = np.stack([labels, 1 - labels], axis=1).astype(np.float32) + 0.01  # each class its own direction
    bad = good.copy()
    bad[n_train : n_train + 20] = good[n_train : n_train + 20, ::-1]  # 20 queries point to the other class
    files = {}
    for model, rgb in (("iic", good), ("random", bad)):
        files[model] = tmp_path / f"{model}.npz"
        np.savez(files[model], ids=np.array([f"v{i}" for i in range(len(split))]), labels=labels,
                 split=np.array(split), rgb=rgb, view2=rgb, view2_modality=np.array("res"))  # fmt: skip
    metrics = retrieve_stage(files, [1], INTERVALS, tmp_path / "m.json", tmp_path / "p.csv")
    assert metrics["iic"]["rgb"]["top1"] == 1.0 and metrics["random"]["rgb"]["top1"] == 0.5
    assert metrics["intervals"]["iic"]["rgb"]["top1"] == {"low": 1.0, "high": 1.0}
    low, high = metrics["intervals"]["random"]["rgb"]["top1"].values()
    assert 0.3 < low < 0.5 < high < 0.7
    paired = metrics["paired"]["rgb"]["top1"]
    assert paired["diff"] == 0.5 and 0.3 < paired["low"] < 0.5 < paired["high"] < 0.7
