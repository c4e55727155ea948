"""Bootstrap intervals over the test videos, and the verdict a paired interval allows.

A top-k accuracy is the mean of per-video hits (0 or 1). Resampling the test videos with
replacement and taking the percentiles of the resampled means gives its interval; a
difference between two models evaluated on the same videos is resampled on the *same* drawn
videos, so that what both get right or wrong together cancels (the paired interval is
narrower than the two separate ones when results are correlated). "ahead" and "behind" are
said only when the paired interval excludes zero.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pipeline.variants import pairs_of

CHUNK = 256  # resamples drawn at once: (CHUNK, videos) indices stay small at UCF101's 3,783 videos


def _resampled_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(V,) per-video values -> (resamples,) means over videos drawn with replacement."""
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        n = min(CHUNK, resamples - start)
        means[start : start + n] = values[rng.integers(0, len(values), (n, len(values)))].mean(axis=1)
    return means


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(hits: np.ndarray, resamples: int, seed: int, level: float) -> tuple[float, float]:
    """(V,) per-video hits (bool or 0/1) -> the percentile bootstrap interval of their mean."""
    values = np.asarray(hits, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"expected a non-empty (V,) vector of hits, got shape {values.shape}")
    return _percentiles(_resampled_means(values, resamples, seed), level)


def paired_interval(
    hits_a: np.ndarray, hits_b: np.ndarray, resamples: int, seed: int, level: float
) -> tuple[float, float, float]:
    """(V,) hits of two models on the same videos -> (mean(a) - mean(b), low, high), the interval
    from the same resampled videos for both."""
    a, b = np.asarray(hits_a, dtype=np.float64), np.asarray(hits_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired hits need two (V,) vectors of one length, got {a.shape} and {b.shape}")
    low, high = _percentiles(_resampled_means(a - b, resamples, seed), level)
    return float(a.mean() - b.mean()), low, high


def verdict(low: float, high: float) -> str:
    """What a paired interval of (ours - theirs) allows one to say."""
    if low > 0:
        return "ahead"
    if high < 0:
        return "behind"
    return "level"


class IntervalSettings(Protocol):
    """``intervals`` of params.yaml (``pipeline.schema.IntervalsParams``)."""

    @property
    def resamples(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def level(self) -> float: ...


def interval_entry(hits: np.ndarray, p: IntervalSettings) -> dict[str, float]:
    """The metrics-file form of one interval: {"low": ..., "high": ...}."""
    low, high = bootstrap_interval(hits, p.resamples, p.seed, p.level)
    return {"low": low, "high": high}


def paired_entry(hits_a: np.ndarray, hits_b: np.ndarray, p: IntervalSettings) -> dict[str, float]:
    """The metrics-file form of one paired difference a - b: {"diff": ..., "low": ..., "high": ...}."""
    diff, low, high = paired_interval(hits_a, hits_b, p.resamples, p.seed, p.level)
    return {"diff": diff, "low": low, "high": high}


def model_intervals(hits: dict[str, dict[str, dict[str, np.ndarray]]], p: IntervalSettings) -> dict[str, dict]:
    """Per-video hits {model: {feature: {metric: (V,) hits}}} -> their intervals and pairs:
    ``intervals`` {model: {feature: {metric: {low, high}}}} and, for each paired difference the
    models allow (``pipeline.variants.PAIRS``), {feature: {metric: {diff, low, high}}} on the same
    resampled videos: ``paired`` (iic - random), ``paired_baseline`` (iic - baseline)."""
    out: dict[str, dict] = {"intervals": {}}
    for model, kinds in hits.items():
        out["intervals"][model] = {
            kind: {name: interval_entry(h, p) for name, h in per_metric.items()} for kind, per_metric in kinds.items()
        }
    for key, (ours, theirs) in pairs_of(list(hits)).items():
        out[key] = {
            kind: {name: paired_entry(h, hits[theirs][kind][name], p) for name, h in per_metric.items()}
            for kind, per_metric in hits[ours].items()
        }
    return out
