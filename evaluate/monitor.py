"""A learning curve while pretraining: every ``monitor.every`` epochs, the current encoder's
kNN top-1 and retrieval top-1 of a labelled dataset's test split against its train split.

Self-supervised pretraining is often on unlabelled video, so the monitored dataset is its own
setting (``monitor.dataset``): the pretraining dataset when it has labels, else an evaluation
dataset. The measurement must not change training: it runs the backbone in eval mode without
gradients (batch-norm statistics untouched), draws from no global random generator (its
loader has its own seeded one, and torch's global state is forked around it), and its numbers go to the live
log only, never into the checkpoint, so model.pt is byte-identical with the monitor on or off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import torch

from evaluate.features import video_features
from evaluate.knn import knn_class_scores
from evaluate.retrieval import topk_hits
from pipeline.errors import InputError
from pipeline.runtime import Runtime
from pipeline.schema import MonitorParams
from preprocess.shards import ShardReader
from train.checkpoint import Encoder
from train.classification import topk_correct
from train.data import view_modalities
from train.pretrain import PretrainSetup

log = logging.getLogger(__name__)


def monitor_metrics(
    features: dict[str, np.ndarray], labels: np.ndarray, train: np.ndarray, k: int, temperature: float
) -> dict[str, float]:
    """{modality: (N,D)} features, (N,) labels, (N,) train mask -> kNN and retrieval top-1 of the
    test rows against the train rows: {"knn_top1_rgb": ..., "retrieval_top1_rgb": ..., ...}."""
    y = torch.from_numpy(labels)
    test = ~train
    n_classes = int(labels.max()) + 1
    out = {}
    for modality, feats in features.items():
        x = torch.from_numpy(feats)
        scores = knn_class_scores(x[test], x[train], y[train], n_classes, k, temperature)
        out[f"knn_top1_{modality}"] = topk_correct(scores, y[test], 1).double().mean().item()
        hits = topk_hits(x[test], y[test], x[train], y[train], [1])["top1"]
        out[f"retrieval_top1_{modality}"] = hits.double().mean().item()
    return out


class PretrainMonitor:
    """Called after every epoch with the encoder; measures on the epochs ``p.every`` divides and
    after the last, returning {} on the others (and always when ``p.every`` is 0)."""

    def __init__(
        self,
        reader: ShardReader,
        dataset: str,
        p: MonitorParams,
        knn_k: int,
        knn_temperature: float,
        modalities: tuple[str, ...],
        length: int,
        crop: int,
        batch_size: int,
        runtime: Runtime,
    ):
        self.reader, self.dataset, self.p = reader, dataset, p
        self.knn_k, self.knn_temperature = knn_k, knn_temperature  # the knn stage's: one curve, one protocol
        self.modalities, self.length, self.crop = modalities, length, crop
        self.batch_size, self.runtime = batch_size, runtime
        self.ids = sorted(reader.videos)
        self.labels = np.array([reader.videos[v]["label"] for v in self.ids], np.int64)
        self.train = np.array([reader.videos[v]["split"] == "train" for v in self.ids])
        if p.every and (self.train.all() or not self.train.any()):
            raise InputError(f"monitor.dataset: {dataset} needs train and test videos to measure anything")
        if p.every:
            log.info(
                "monitor: every %d epochs, kNN and retrieval top-1 of %s (%d test videos against %d train, %d clip(s) each)",
                p.every,
                dataset,
                int((~self.train).sum()),
                int(self.train.sum()),
                p.clips,
            )

    def due(self, epoch: int, last: bool) -> bool:
        """Whether to measure after ``epoch`` (1-based)."""
        return self.p.every > 0 and (epoch % self.p.every == 0 or last)

    def __call__(self, encoder: torch.nn.Module, epoch: int, last: bool) -> dict[str, float]:
        if not self.due(epoch, last):
            return {}
        assert isinstance(encoder, Encoder), "the monitor measures a pretraining Encoder's backbone"
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # nothing here may move training's random streams
            features = {
                m: video_features(
                    encoder,
                    self.reader,
                    self.ids,
                    m,
                    self.length,
                    self.crop,
                    self.p.clips,
                    self.batch_size,
                    0,  # in this process: worker start-up would cost more than the reading
                    self.runtime,
                )
                for m in self.modalities
            }
        metrics = monitor_metrics(features, self.labels, self.train, self.knn_k, self.knn_temperature)
        log.info(
            "monitor %s at epoch %d: %s (%.1fs)",
            self.dataset,
            epoch,
            ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()),
            time.perf_counter() - start,
        )
        return metrics


def monitor_factory(
    reader: ShardReader, dataset: str, p: MonitorParams, knn_k: int, knn_temperature: float, setup: PretrainSetup
) -> Callable[[Runtime], PretrainMonitor] | None:
    """What ``train.pretrain.pretrain_stage`` calls, once it knows its runtime, to build the monitor
    of ``dataset`` (``reader``: its verified videos); None when ``p.every`` is 0 (no curve).

    It measures both views of the pretraining setup with the knn stage's k and temperature, one
    protocol for the curve and the stage, on clips of the pretraining size.
    """
    if not p.every:
        return None

    def make(runtime: Runtime) -> PretrainMonitor:
        return PretrainMonitor(
            reader,
            dataset,
            p,
            knn_k,
            knn_temperature,
            view_modalities(setup.pretrain.modality),
            setup.clip_length,
            setup.crop,
            setup.pretrain.batch_size,
            runtime,
        )

    return make
