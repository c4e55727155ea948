import json

import numpy as np
import pytest

from evaluate.knn_stage import knn_stage
from evaluate.linear_stage import linear_stage
from pipeline.errors import ConfigError
from pipeline.schema import IntervalsParams, KnnParams, LinearParams

INTERVALS = IntervalsParams(resamples=200, seed=0, level=0.95)
KNN = KnnParams(k=5, temperature=0.07, topk=[1, 5])
LINEAR = LinearParams(weight_decays=[0.001, 0.1, 10.0], val_videos=6, seed=0, max_iter=100, topk=[1, 5])


def _write(path, labels, split, feats, ids):
    np.savez(
        path,
        ids=ids,
        labels=labels,
        split=split,
        rgb=feats,
        view2=feats[:, ::-1].copy(),
        view2_modality=np.array("res"),
    )


@pytest.fixture()
def files(tmp_path):
    """3 classes, 8 groups of 3 train videos and 4 groups of 3 test videos: 'iic' features sit on
    their class's centre, 'random' ones are noise."""
    rng = np.random.default_rng(0)
    ids, labels, split = [], [], []
    for group in range(1, 13):
        for c in range(3):
            ids.append(f"C{c}/v_C{c}_g{group:02d}_c01")
            labels.append(c)
            split.append("test" if group > 8 else "train")
    ids, labels, split = np.array(ids), np.array(labels), np.array(split)
    centres = rng.normal(size=(3, 16)) * 3
    paths = {}
    for model, feats in (
        ("iic", centres[labels] + rng.normal(size=(36, 16))),
        ("random", rng.normal(size=(36, 16))),
    ):
        paths[model] = tmp_path / f"{model}.npz"
        _write(paths[model], labels, split, feats.astype(np.float32), ids)
    return paths


def test_knn_and_linear_write_top_k_with_intervals_and_paired_differences(files, tmp_path):
    for stage, p in ((knn_stage, KNN), (linear_stage, LINEAR)):
        out = tmp_path / f"{stage.__name__}.json"
        metrics = stage(files, p, INTERVALS, out)
        assert json.loads(out.read_text()) == json.loads(json.dumps(metrics))
        assert metrics["iic"]["rgb"]["top1"] == 1.0 and metrics["iic"]["test_videos"] == 12
        assert set(metrics["iic"]["rgb"]) >= {"top1"} and "top5" not in metrics["iic"]["rgb"]  # 3 classes
        assert metrics["random"]["rgb"]["top1"] < 0.7
        paired = metrics["paired"]["merge"]["top1"]
        assert paired["low"] > 0 and paired["diff"] == pytest.approx(
            metrics["iic"]["merge"]["top1"] - metrics["random"]["merge"]["top1"]
        )
        low, high = metrics["intervals"]["random"]["rgb"]["top1"].values()
        assert low <= metrics["random"]["rgb"]["top1"] <= high


def test_the_probes_weight_decay_never_sees_the_test_labels(files, tmp_path):
    first = linear_stage(files, LINEAR, INTERVALS, tmp_path / "a.json")
    for path in files.values():  # scramble the test labels only
        data = dict(np.load(path))
        test = data["split"] == "test"
        data["labels"][test] = (data["labels"][test] + 1) % 3
        np.savez(path, **data)
    second = linear_stage(files, LINEAR, INTERVALS, tmp_path / "b.json")
    for model in ("iic", "random"):
        for kind in ("rgb", "res", "merge"):
            assert second[model][kind]["weight_decay"] == first[model][kind]["weight_decay"]
            assert second[model][kind]["val_top1"] == first[model][kind]["val_top1"]
    assert second["iic"]["rgb"]["top1"] == 0.0  # the same predictions, now all wrong


def test_a_validation_part_that_cannot_be_held_out_names_its_key(files, tmp_path):
    with pytest.raises(ConfigError, match="linear.val_videos: 30 must be between 1 and 23"):
        linear_stage(files, LinearParams([0.1], 30, 0, 10, [1]), INTERVALS, tmp_path / "c.json")


def test_a_top_k_beyond_every_class_is_a_config_error(files, tmp_path):
    with pytest.raises(ConfigError, match=r"knn.topk: every k of \[5\] is at least the 3 classes"):
        knn_stage(files, KnnParams(k=5, temperature=0.07, topk=[5]), INTERVALS, tmp_path / "k.json")


def test_a_top_k_equal_to_the_class_count_is_left_out_as_true_by_construction(files, tmp_path):
    """top-3 of 3 classes is right for every video: it was reported as a result."""
    metrics = knn_stage(files, KnnParams(k=5, temperature=0.07, topk=[1, 3]), INTERVALS, tmp_path / "k.json")
    assert set(metrics["iic"]["rgb"]) == {"top1"} and set(metrics["paired"]["rgb"]) == {"top1"}


def test_the_fewest_train_videos_of_any_class_is_counted(files, tmp_path):
    """120 train videos can hide a class with 2 of them: the metrics name the smallest class."""
    for path in files.values():
        data = dict(np.load(path))
        in_class_2 = np.flatnonzero((data["labels"] == 2) & (data["split"] == "train"))
        data["split"][in_class_2[:6]] = "test"  # class 2 keeps 2 of its 8 train videos
        np.savez(path, **data)
    for stage, p in ((knn_stage, KNN), (linear_stage, LINEAR)):
        metrics = stage(files, p, INTERVALS, tmp_path / f"{stage.__name__}.json")
        assert metrics["iic"]["train_videos"] == 18
        assert metrics["iic"]["train_videos_per_class_min"] == 2
