"""The dvc stage ``linear``: a linear probe on the frozen features, its weight decay chosen on
validation groups held out of the train split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluate.feature_file import FeatureFile
from evaluate.frozen import frozen_stage
from evaluate.linear_probe import choose_weight_decay, fit_linear_probe
from pipeline.schema import IntervalsParams, LinearParams
from train.validation import split_validation


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
