"""The dvc stage ``knn``: weighted kNN classification of the test videos on the frozen features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluate.feature_file import FeatureFile
from evaluate.frozen import frozen_stage
from evaluate.knn import knn_class_scores
from pipeline.schema import IntervalsParams, KnnParams


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
