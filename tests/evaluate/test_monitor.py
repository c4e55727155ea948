import logging

import numpy as np
import pytest
import torch

from evaluate.monitor import PretrainMonitor, monitor_metrics
from pipeline.errors import InputError
from pipeline.runtime import Runtime
from pipeline.schema import MonitorParams
from preprocess.shards import ShardReader
from tests.shards_fixture import make_tiny_shards
from tests.train.test_pretrain import _setup
from train.pretrain import pretrain

CPU = Runtime(torch.device("cpu"), bf16=False, channels_last=False, compile=False)


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    """The pretraining data and another labelled dataset to watch, as when pretraining is unlabelled."""
    a = make_tiny_shards(tmp_path_factory.mktemp("pretrain"))
    b = make_tiny_shards(tmp_path_factory.mktemp("watched"), n_videos=9, frames=18)
    return ShardReader(a / "frames", a / "motion", [0]), ShardReader(b / "frames", b / "motion", [0])


def _monitor(reader, every, name="watched"):
    return PretrainMonitor(
        reader, name, MonitorParams(every=every, dataset=name, clips=1), 20, 0.07, ("rgb", "res"), 16, 24, 4, CPU
    )


def test_metrics_are_knn_and_retrieval_top1_of_test_against_train():
    train_feats = np.eye(3, dtype=np.float32)  # one train video per class, orthogonal
    test_feats = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]] + 0.01
    feats = np.concatenate([train_feats, test_feats])
    labels = np.array([0, 1, 2, 0, 1, 2, 1])  # the last test video sits on class 2's train video
    train = np.array([True] * 3 + [False] * 4)
    out = monitor_metrics({"rgb": feats, "res": -feats}, labels, train, k=20, temperature=0.07)
    assert out["retrieval_top1_rgb"] == pytest.approx(3 / 4) and out["knn_top1_rgb"] == pytest.approx(3 / 4)
    assert set(out) == {"knn_top1_rgb", "retrieval_top1_rgb", "knn_top1_res", "retrieval_top1_res"}


def test_it_measures_every_n_epochs_and_after_the_last(readers):
    monitor = _monitor(readers[1], every=2)
    assert [e for e in range(1, 6) if monitor.due(e, last=e == 5)] == [2, 4, 5]
    off = _monitor(readers[1], every=0)
    assert not any(off.due(e, last=e == 5) for e in range(1, 6))


def test_model_pt_is_byte_identical_with_the_monitor_on_and_off(readers, tmp_path, caplog):
    """The monitor runs the encoder between epochs; training (weights, batch-norm statistics,
    random streams) must not see it. It watches another dataset than the (unlabelled, as far
    as pretraining knows) one trained on, and the log names it."""
    setup = _setup(epochs=3)
    rows_on = []
    caplog.set_level(logging.INFO, logger="evaluate.monitor")
    for name, monitor, rows in (("off", None, []), ("on", _monitor(readers[1], every=2), rows_on)):
        pretrain(
            readers[0],
            setup,
            CPU,
            tmp_path / f"{name}.pt",
            tmp_path / f"{name}_resume.pt",
            workers=2,
            on_epoch=lambda row, resumed, rows=rows: rows.append(row),
            monitor=monitor,
        )
    assert (tmp_path / "on.pt").read_bytes() == (tmp_path / "off.pt").read_bytes()
    measured = [row["epoch"] for row in rows_on if "knn_top1_rgb" in row]
    assert measured == [2, 3]
    assert all(0 <= row["retrieval_top1_res"] <= 1 for row in rows_on if "retrieval_top1_res" in row)
    assert "monitor watched at epoch 2" in caplog.text and "kNN and retrieval top-1 of watched" in caplog.text


def test_a_dataset_without_test_videos_is_refused(tmp_path):
    folder = make_tiny_shards(tmp_path)
    listed = ShardReader(folder / "frames", folder / "motion", [0]).videos.values()
    only_train = ShardReader(folder / "frames", folder / "motion", [0], [{**r, "split": "train"} for r in listed])
    with pytest.raises(InputError, match="monitor.dataset: watched needs train and test videos"):
        _monitor(only_train, every=1)
