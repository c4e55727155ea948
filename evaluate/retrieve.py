"""The retrieve stage: top-k metrics as JSON for ``dvc metrics`` and the top-k table for ``dvc plots``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluate.feature_file import read_model_files
from evaluate.intervals import model_intervals
from evaluate.retrieval import topk_hits
from pipeline.atomic import write_csv, write_json
from pipeline.errors import ConfigError, check_finite
from pipeline.schema import IntervalsParams
from train.classification import informative_ks

log = logging.getLogger(__name__)


def retrieve_stage(
    feature_files: dict[str, Path], ks: list[int], intervals: IntervalsParams, metrics_path: Path, plot_path: Path
) -> dict:
    """{model: {feature: {topk: accuracy}}} for rgb, the view-2 modality and their merge, with
    ``intervals``: {model: {feature: {topk: {low, high}}}} by bootstrap over the test queries and
    ``paired``: {feature: {topk: {diff, low, high}}} of iic - random on the same resampled queries."""
    files = read_model_files(feature_files)
    gallery = min(int(data.train.sum()) for data in files.values())
    wanted, ks = ks, informative_ks(ks, gallery, "retrieve.topk", "train videos in the gallery")
    if not ks:
        raise ConfigError(
            f"retrieve.topk: every k of {wanted} is at least the {gallery} train videos of "
            f"{feature_files['iic']}, so every query would count as a hit; use a smaller k"
        )
    metrics: dict[str, Any] = {}
    hits: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    rows = []
    for model, data in files.items():
        labels = torch.from_numpy(data.labels)
        train, test = data.train, data.test
        metrics[model], hits[model] = {}, {}
        for kind, feats in data.sets.items():
            x = torch.from_numpy(feats)
            per_query = topk_hits(x[test], labels[test], x[train], labels[train], ks)
            hits[model][kind] = {name: h.numpy() for name, h in per_query.items()}
            result = {name: h.float().mean().item() for name, h in per_query.items()}
            metrics[model][kind] = result
            rows += [
                {
                    "model": model,
                    "feature": kind,
                    "model_feature": f"{model}/{kind}",
                    "k": k,
                    "accuracy": result[f"top{k}"],
                }
                for k in ks
            ]
        metrics[model]["queries"] = int(test.sum())
        metrics[model]["gallery"] = int(train.sum())
        first = f"top{min(ks)}"
        log.info(
            "retrieval %s %s: %s",
            model,
            first,
            {k: round(v[first], 3) for k, v in metrics[model].items() if isinstance(v, dict)},
        )
    metrics |= model_intervals(hits, intervals)
    check_finite(metrics, "retrieval")
    write_json(metrics_path, metrics)
    write_csv(plot_path, rows)
    return metrics
