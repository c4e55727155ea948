"""The retrieve stage: top-k metrics as JSON for ``dvc metrics`` and the top-k table for ``dvc plots``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluate.retrieval import merge_features, topk_accuracy
from pipeline.atomic import write_csv, write_json
from pipeline.errors import InputError, NonFiniteError, check_finite

log = logging.getLogger(__name__)


def retrieve_stage(feature_files: dict[str, Path], ks: list[int], metrics_path: Path, plot_path: Path) -> dict:
    """{model: {feature: {topk: accuracy}}} for rgb, the view-2 modality and their merge."""
    metrics: dict[str, Any] = {}
    rows = []
    for model, path in feature_files.items():
        data = np.load(path)
        train, test = data["split"] == "train", data["split"] == "test"
        view2 = str(data["view2_modality"])
        kinds = {
            "rgb": data["rgb"],
            view2 if view2 != "rgb" else "rgb2": data["view2"],
            "merge": merge_features(data["rgb"], data["view2"]),
        }
        labels = torch.from_numpy(data["labels"])
        if not test.any() or not train.any():
            raise InputError(
                f"{path}: {int(test.sum())} test queries and {int(train.sum())} train videos; retrieval needs both"
            )
        metrics[model] = {}
        for kind, feats in kinds.items():
            if not np.isfinite(feats).all():
                raise NonFiniteError(f"{path}: {kind} features hold NaN or inf; nothing was written")
            x = torch.from_numpy(feats)
            result = topk_accuracy(x[test], labels[test], x[train], labels[train], ks)
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
    check_finite(metrics, "retrieval")
    write_json(metrics_path, metrics)
    write_csv(plot_path, rows)
    return metrics
