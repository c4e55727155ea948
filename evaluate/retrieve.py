"""The retrieve stage: top-k metrics as JSON for ``dvc metrics`` and the top-k table for ``dvc plots``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluate.intervals import interval_entry, paired_entry
from evaluate.retrieval import merge_features, topk_hits
from pipeline.atomic import write_csv, write_json
from pipeline.errors import InputError, NonFiniteError, check_finite
from pipeline.schema import IntervalsParams

log = logging.getLogger(__name__)


def retrieve_stage(
    feature_files: dict[str, Path], ks: list[int], intervals: IntervalsParams, metrics_path: Path, plot_path: Path
) -> dict:
    """{model: {feature: {topk: accuracy}}} for rgb, the view-2 modality and their merge, with
    ``intervals``: {model: {feature: {topk: {low, high}}}} by bootstrap over the test queries and
    ``paired``: {feature: {topk: {diff, low, high}}} of iic - random on the same resampled queries."""
    metrics: dict[str, Any] = {}
    hits: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    query_ids: dict[str, np.ndarray] = {}
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
        query_ids[model] = data["ids"][test]
        metrics[model], hits[model] = {}, {}
        for kind, feats in kinds.items():
            if not np.isfinite(feats).all():
                raise NonFiniteError(f"{path}: {kind} features hold NaN or inf; nothing was written")
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
    metrics |= retrieval_intervals(hits, query_ids, intervals)
    check_finite(metrics, "retrieval")
    write_json(metrics_path, metrics)
    write_csv(plot_path, rows)
    return metrics


def retrieval_intervals(
    hits: dict[str, dict[str, dict[str, np.ndarray]]], query_ids: dict[str, np.ndarray], p: IntervalsParams
) -> dict[str, dict]:
    """``intervals`` of every model, feature and top-k, and ``paired`` iic - random differences."""
    if "iic" in query_ids and "random" in query_ids and not np.array_equal(query_ids["iic"], query_ids["random"]):
        raise InputError("the iic and random feature files hold other test videos: rerun `dvc repro features@...`")
    out: dict[str, dict] = {"intervals": {}, "paired": {}}
    for model, kinds in hits.items():
        out["intervals"][model] = {
            kind: {name: interval_entry(h, p) for name, h in per_k.items()} for kind, per_k in kinds.items()
        }
    if "iic" in hits and "random" in hits:
        for kind, per_k in hits["iic"].items():
            out["paired"][kind] = {name: paired_entry(h, hits["random"][kind][name], p) for name, h in per_k.items()}
    return out
