"""The dvc stage ``temporal``: the temporal-sensitivity measures (``evaluate/temporal.py``) of
every pretrained model and of random init on one evaluation dataset, with bootstrap intervals
over the test videos and the paired differences between the models.

``temporal.json``: {model: {"rgb": {repeat, shuffle, reverse, arrow}, "test_videos", "train_videos"}},
``intervals`` and ``paired`` / ``paired_baseline`` (iic - random, iic - baseline) in the shape
the retrieve and frozen-feature stages use, so the report reads them alike. The RGB clips are
measured: the input fine-tuning and the headline retrieval features use.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from evaluate.features import evaluation_encoders
from evaluate.intervals import model_intervals
from evaluate.temporal import (
    ALTERATIONS,
    ARROW,
    SIMILARITIES,
    altered_features,
    arrow_of_time_accuracy,
    per_video_mean,
    similarity,
)
from pipeline.atomic import write_json
from pipeline.errors import check_finite
from pipeline.runtime import Runtime, make_runtime
from pipeline.schema import ClipParams, IntervalsParams, RuntimeParams, TemporalParams
from preprocess.shards import ShardReader
from train.checkpoint import Encoder
from train.data import ClipDataset, split_ids, to_model_input

log = logging.getLogger(__name__)

MODALITY = "rgb"


@torch.no_grad()
def clip_features(
    encoder: Encoder,
    reader: ShardReader,
    video_ids: list[str],
    clip: ClipParams,
    p: TemporalParams,
    workers: int,
    runtime: Runtime,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """((N,D) features of ``p.clips`` evaluation clips per video, {alteration: (N,D) features of
    their altered copies}, (N,) each clip's video position), every model seeing the same
    alterations (``p.seed``)."""
    dataset = ClipDataset(
        reader, video_ids, (MODALITY,), clip.length, clip.crop, train=False, seed=0, eval_clips=p.clips
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=p.batch_size, num_workers=workers)
    backbone = encoder.backbone.to(runtime.device).eval()
    generator = torch.Generator().manual_seed(p.seed)

    def encode(clips: torch.Tensor) -> torch.Tensor:
        with runtime.autocast():
            return backbone.retrieval_features(clips)

    features: list[torch.Tensor] = []
    altered: dict[str, list[torch.Tensor]] = {name: [] for name in ALTERATIONS}
    videos: list[torch.Tensor] = []
    for batch in tqdm(loader, desc="temporal", leave=False):
        f, a = altered_features(encode, to_model_input(runtime.to_device(batch[MODALITY])), ALTERATIONS, generator)
        features.append(f.cpu())
        for name, g in a.items():
            altered[name].append(g.cpu())
        videos.append(batch["index"])
    return torch.cat(features), {n: torch.cat(g) for n, g in altered.items()}, torch.cat(videos)


def temporal_measures(
    encoder: Encoder, reader: ShardReader, clip: ClipParams, p: TemporalParams, workers: int, runtime: Runtime
) -> dict[str, np.ndarray]:
    """{measure: (V,) per test video}: the three similarities and the arrow-of-time accuracy."""
    test_ids, train_ids = split_ids(reader, "test"), split_ids(reader, "train")
    test, test_altered, test_videos = clip_features(encoder, reader, test_ids, clip, p, workers, runtime)
    train, train_altered, _ = clip_features(encoder, reader, train_ids, clip, p, workers, runtime)
    measures = {
        name: per_video_mean(similarity(test, test_altered[name]), test_videos, len(test_ids)) for name in SIMILARITIES
    }
    measures[ARROW] = arrow_of_time_accuracy(
        train,
        train_altered["reverse"],
        test,
        test_altered["reverse"],
        test_videos,
        len(test_ids),
        p.weight_decay,
        p.max_iter,
    )
    return {name: values.numpy() for name, values in measures.items()}


def temporal_stage(
    checkpoints: dict[str, Path],
    reader: ShardReader,
    clip: ClipParams,
    random_init_seed: int,
    p: TemporalParams,
    runtime_params: RuntimeParams,
    intervals: IntervalsParams,
    metrics_path: Path,
) -> dict[str, Any]:
    """Measure every pretrained model (``checkpoints``: {model: model.pt}) and random init (the
    features stage's, ``random_init_seed``); write ``temporal.json``."""
    start = time.perf_counter()
    runtime = make_runtime(runtime_params)
    _config, encoders = evaluation_encoders(checkpoints, random_init_seed)
    metrics: dict[str, Any] = {}
    per_video: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for model, encoder in encoders.items():
        values = temporal_measures(encoder, reader, clip, p, runtime_params.workers, runtime)
        per_video[model] = {MODALITY: values}
        metrics[model] = {MODALITY: {name: float(v.mean()) for name, v in values.items()}}
        metrics[model] |= {
            "test_videos": len(split_ids(reader, "test")),
            "train_videos": len(split_ids(reader, "train")),
        }
        log.info("temporal %s: %s", model, {k: round(v, 3) for k, v in metrics[model][MODALITY].items()})
    metrics |= model_intervals(per_video, intervals)
    check_finite(metrics, "temporal")
    write_json(metrics_path, metrics)
    log.info("temporal: %d models in %.0fs -> %s", len(encoders), time.perf_counter() - start, metrics_path)
    return metrics
