"""Non-finite features and metrics fail their stage; nothing is written before the failure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluate.features import video_features
from evaluate.retrieve import retrieve_stage
from pipeline.errors import InputError, NonFiniteError
from pipeline.runtime import Runtime
from preprocess.shards import ShardReader
from tests.shards_fixture import make_tiny_shards
from train.checkpoint import build_encoder

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
        retrieve_stage(files, [1, 5], tmp_path / "m.json", tmp_path / "p.csv")
    assert not (tmp_path / "m.json").exists()


def test_nan_features_fail_retrieval_before_writing(tmp_path):
    rgb = np.eye(4, dtype=np.float32)
    rgb[0] = np.nan
    files = {"iic": _features(tmp_path / "f.npz", ["train", "train", "test", "test"], rgb)}
    with pytest.raises(NonFiniteError):
        retrieve_stage(files, [1], tmp_path / "m.json", tmp_path / "p.csv")
    assert not (tmp_path / "m.json").exists()


def test_topk_without_1_reports_what_was_asked(tmp_path):
    files = {"iic": _features(tmp_path / "f.npz", ["train", "train", "test", "test"], np.eye(4, dtype=np.float32))}
    metrics = retrieve_stage(files, [5, 10], tmp_path / "m.json", tmp_path / "p.csv")
    assert set(metrics["iic"]["rgb"]) == {"top5", "top10"}


def test_features_of_nan_weights_fail_naming_a_video(tmp_path):
    folder = make_tiny_shards(tmp_path)
    reader = ShardReader(folder / "frames", folder / "motion", [0])
    encoder = build_encoder({"arch": "r3d", "width": 4, "feat_dim": 8})
    with torch.no_grad():
        encoder.backbone.stem[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="rgb features of 12 of 12 videos are not finite"):
        video_features(encoder, reader, sorted(reader.videos), "rgb", 16, 24, 2, 4, 0, CPU)
