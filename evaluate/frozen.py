"""What the frozen-feature stages (``knn``, ``linear``) share: classify the test videos from
the cached features of every model, with bootstrap intervals.

Each writes, per model and feature set (rgb, view 2, merge), the test top-k accuracies, plus
``intervals`` and ``paired`` (iic - random on the same resampled test videos) as the retrieve
and finetune stages do, so that the report reads them alike. The classifier is the stage's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluate.feature_file import FeatureFile, read_model_files
from evaluate.intervals import model_intervals
from pipeline.atomic import write_json
from pipeline.errors import ConfigError, check_finite
from pipeline.schema import IntervalsParams
from train.classification import informative_ks, topk_correct

log = logging.getLogger(__name__)

# (the model's feature file, one feature set (N,D), classes) -> ((Q,C) test class scores, extra metrics)
Classify = Callable[[FeatureFile, np.ndarray, int], tuple[torch.Tensor, dict[str, Any]]]


def _n_classes(files: dict[str, FeatureFile]) -> int:
    return int(max(f.labels.max() for f in files.values())) + 1


def frozen_stage(
    name: str,
    classify: Classify,
    feature_files: dict[str, Path],
    ks: list[int],
    intervals: IntervalsParams,
    metrics_path: Path,
) -> dict[str, Any]:
    """Score every model's test videos with ``classify`` on each feature set; write the top-k
    accuracies, their intervals and the paired iic - random differences to ``metrics_path``."""
    files = read_model_files(feature_files)
    n_classes = _n_classes(files)
    wanted, ks = ks, informative_ks(ks, n_classes, f"{name}.topk", "classes")  # top-3 of 3 classes says nothing
    if not ks:
        raise ConfigError(
            f"{name}.topk: every k of {wanted} is at least the {n_classes} classes of {feature_files['iic']}, "
            "so every test video would count as right; use a smaller k"
        )
    metrics: dict[str, Any] = {}
    hits: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for model, data in files.items():
        metrics[model], hits[model] = {}, {}
        test_labels = torch.from_numpy(data.labels[data.test])
        for kind, feats in data.sets.items():
            scores, extra = classify(data, feats, n_classes)
            per_video = {f"top{k}": topk_correct(scores, test_labels, k) for k in ks}
            hits[model][kind] = {k: h.numpy() for k, h in per_video.items()}
            metrics[model][kind] = {k: h.double().mean().item() for k, h in per_video.items()} | extra
        metrics[model]["test_videos"] = int(data.test.sum())
        metrics[model]["train_videos"] = int(data.train.sum())
        # The class with the fewest labelled train videos bounds what any classifier can learn of it.
        per_class = np.bincount(data.labels[data.train], minlength=n_classes)
        metrics[model]["train_videos_per_class_min"] = int(per_class.min())
        log.info(
            "%s %s top%d: %s",
            name,
            model,
            ks[0],
            {k: round(v[f"top{ks[0]}"], 3) for k, v in metrics[model].items() if isinstance(v, dict)},
        )
    metrics |= model_intervals(hits, intervals)
    check_finite(metrics, name)
    write_json(metrics_path, metrics)
    return metrics
