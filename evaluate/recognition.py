"""The finetune stage: action recognition fine-tuned from the pretrained backbone and from random
init (``train/finetune.py`` trains), measured at video level with bootstrap intervals.

``finetune.json`` holds each model's clip and video top-1/top-5, ``intervals`` (each video
top-k's interval over the test videos), ``paired`` (iic - random on the same resampled
videos) and ``paired_baseline`` (iic - baseline), so that the report can say "ahead" only where
the paired interval excludes zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluate.intervals import interval_entry, paired_entry
from pipeline import variants
from pipeline.atomic import write_json
from pipeline.errors import check_finite
from pipeline.live import EpochLog
from pipeline.schema import ClipParams, FinetuneParams, IntervalsParams, RuntimeParams
from preprocess.shards import ShardReader
from train.checkpoint import load_checkpoint
from train.classification import confusion_matrix
from train.data import class_names, split_ids
from train.distributed import process_group, rank_and_world
from train.finetune import finetune
from train.validation import split_validation

log = logging.getLogger(__name__)


def finetune_stage(
    checkpoints: dict[str, Path],
    reader: ShardReader,
    setup: FinetuneParams,
    clip: ClipParams,
    runtime_params: RuntimeParams,
    intervals: IntervalsParams,
    metrics_path: Path,
    live_dir: Callable[[str], Path],
    sync_batchnorm: bool,
) -> dict[str, Any] | None:
    """The dvc stage ``finetune``: from every pretrained backbone (``checkpoints``: {model: model.pt})
    and from random init, each with a live log (``live_dir(model)``: curves and the test
    confusion), then the metrics with their bootstrap intervals over the test videos and the
    paired differences (``pipeline.variants.PAIRS``: iic - random, iic - baseline).

    Under torchrun every rank trains (DDP, ``sync_batchnorm``: batch norm over the global batch)
    and rank 0 alone writes; the other ranks return None.
    """

    # The held-out part is known once the verified list is open: a val_videos that cannot be
    # held out fails here, in one line, before any model is built or any output is written.
    split_validation(split_ids(reader, "train"), setup.val_videos, setup.seed)
    with process_group(runtime_params) as runtime:
        writer = rank_and_world()[0] == 0
        pretrained = {model: load_checkpoint(path) for model, path in checkpoints.items()}
        config = pretrained[variants.IIC]["config"]
        states: dict[str, dict | None] = {m: c["encoder"] for m, c in pretrained.items()} | {variants.RANDOM: None}
        names = class_names(reader)
        results = {}
        for name, state in states.items():
            live = EpochLog(live_dir(name)) if writer else None
            try:
                results[name] = finetune(
                    reader, setup, clip, config, state, runtime, runtime_params.workers, len(names), name,
                    sync_batchnorm, on_epoch=live,
                )  # fmt: skip
                if live is not None:
                    live.confusion(
                        [names[i] for i in results[name]["actual"].tolist()],
                        [names[i] for i in results[name]["predicted"].tolist()],
                    )
                matrix = confusion_matrix(results[name]["predicted"], results[name]["actual"], len(names))
                log.info("finetune %s confusion (rows actual):\n%s", name, matrix.numpy())
            finally:
                if live is not None:
                    live.close()
    if not writer:
        return None
    metrics: dict[str, Any] = {name: r["metrics"] for name, r in results.items()}
    metrics["intervals"] = {
        name: {key: interval_entry(hits, intervals) for key, hits in r["video_hits"].items()}
        for name, r in results.items()
    }
    for pair_key, (ours, theirs) in variants.pairs_of(list(results)).items():  # on the same resampled videos
        metrics[pair_key] = {
            key: paired_entry(hits, results[theirs]["video_hits"][key], intervals)
            for key, hits in results[ours]["video_hits"].items()
        }
    check_finite(metrics, "finetune")
    write_json(metrics_path, metrics)
    return metrics
