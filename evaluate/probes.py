"""The frozen-feature stages ``knn`` and ``linear``: classify the test videos from the
cached features of the pretrained and of the random-init encoder, with bootstrap intervals.

Both write, per model and feature set (rgb, view 2, merge), the test top-k accuracies, plus
``intervals`` and ``paired`` (iic - random on the same resampled test videos) as the retrieve
and finetune stages do, so that the report reads them alike.
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
from evaluate.knn import knn_class_scores
from evaluate.linear_probe import choose_weight_decay, fit_linear_probe
from pipeline.atomic import write_json
from pipeline.errors import ConfigError, check_finite
from pipeline.schema import IntervalsParams, KnnParams, LinearParams
from train.classification import topk_correct
from train.validation import split_validation

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
    wanted, ks = ks, [k for k in ks if k <= n_classes]  # top-5 of 3 classes says nothing
    if not ks:
        raise ConfigError(f"{name}.topk: every k of {wanted} exceeds the {n_classes} classes of {feature_files['iic']}")
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


def knn_stage(
    feature_files: dict[str, Path], p: KnnParams, intervals: IntervalsParams, metrics_path: Path
) -> dict[str, Any]:
    """The dvc stage ``knn``: weighted kNN (``p.k`` neighbours, exp(s / ``p.temperature``)
    votes) of each test video among the train videos."""

    def classify(data: FeatureFile, feats: np.ndarray, n_classes: int) -> tuple[torch.Tensor, dict[str, Any]]:
        x, labels = torch.from_numpy(feats), torch.from_numpy(data.labels)
        scores = knn_class_scores(x[data.test], x[data.train], labels[data.train], n_classes, p.k, p.temperature)
        return scores, {}

    return frozen_stage("knn", classify, feature_files, list(p.topk), intervals, metrics_path)


def linear_stage(
    feature_files: dict[str, Path], p: LinearParams, intervals: IntervalsParams, metrics_path: Path
) -> dict[str, Any]:
    """The dvc stage ``linear``: a linear probe per model and feature set, its weight decay
    chosen on validation groups held out of the train split (``p.val_videos``, drawn with
    ``p.seed``), then refitted on the whole train split and tested once."""

    held_out: dict[Path, tuple[list[int], list[int]]] = {}  # per feature file: one split for its three sets

    def fit_and_val_rows(data: FeatureFile) -> tuple[list[int], list[int]]:
        if data.path not in held_out:
            train_ids = [str(v) for v in data.ids[data.train]]
            fit_ids, val_ids = split_validation(train_ids, p.val_videos, p.seed, setting="linear.val_videos")
            row = {str(v): i for i, v in enumerate(data.ids)}
            held_out[data.path] = [row[v] for v in fit_ids], [row[v] for v in val_ids]
        return held_out[data.path]

    def classify(data: FeatureFile, feats: np.ndarray, n_classes: int) -> tuple[torch.Tensor, dict[str, Any]]:
        fit, val = fit_and_val_rows(data)
        x, labels = torch.from_numpy(feats), torch.from_numpy(data.labels)
        best, val_accuracy = choose_weight_decay(
            (x[fit], labels[fit]), (x[val], labels[val]), n_classes, list(p.weight_decays), p.max_iter
        )
        probe = fit_linear_probe(x[data.train], labels[data.train], n_classes, best, p.max_iter)
        extra = {"weight_decay": best, "val_top1": val_accuracy[best], "val_videos": len(val)}
        return probe.scores(x[data.test]), extra

    return frozen_stage("linear", classify, feature_files, list(p.topk), intervals, metrics_path)
