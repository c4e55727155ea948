"""Fine-tuning for action recognition, from the pretrained backbone or from random init.

The pretrained backbone loads strictly: a missing or unexpected key fails (only the new
classifier is fresh). The best epoch on a validation part of the train split is kept and
tested at video level: the mean of ``eval_clips`` clips' probabilities or logits
(``finetune.clip_scores``).

Under torchrun it trains with DDP: each rank takes every world-th video of the epoch's
permutation (``finetune.batch_size`` per rank), validation and test clips are shared out the
same way and gathered in item order, so every rank selects the same epoch and the metrics are
those of one process over the whole split.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from pipeline.errors import NonFiniteError
from pipeline.runtime import Runtime, seed_everything
from pipeline.schema import ClipParams, FinetuneParams, SelectBy
from preprocess.shards import ShardReader
from train.checkpoint import load_backbone_strict
from train.classification import CLIP_SCORES, informative_ks, topk_correct, video_scores
from train.data import ClipDataset, EpochSampler, split_ids, to_model_input
from train.distributed import gather_shares, mean_over_ranks, rank_and_world, rank_share
from train.models import Backbone, build_backbone
from train.sync_batchnorm import synchronise_batchnorm
from train.validation import split_validation

log = logging.getLogger(__name__)


class Classifier(nn.Module):
    """Backbone, dropout and a linear layer over the pooled conv5 features: (B,3,T,H,W) -> (B,classes)."""

    def __init__(self, backbone: Backbone, n_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(backbone.out_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.backbone(x)))


def selection_key(val_loss: float, val_accuracy: float, select_by: SelectBy) -> tuple[float, ...]:
    """Sort key of an epoch for model selection; lower is better, the first epoch wins ties.

    ``loss`` is upstream BestJuly/IIC's rule. ``accuracy`` breaks ties by the loss: on a small validation
    part the loss keeps rising as the classifier grows confident, while the accuracy rises
    too, and the loss alone would keep an untrained first epoch. (The schema admits no other value.)
    """
    if select_by == "loss":
        return (val_loss,)
    return (-val_accuracy, val_loss)


def eval_loader(dataset: ClipDataset, batch_size: int, workers: int, persistent: bool) -> torch.utils.data.DataLoader:
    """This rank's share of an evaluation dataset's clips (all of them in one process), in order."""
    share = torch.utils.data.Subset(dataset, rank_share(len(dataset)))
    return torch.utils.data.DataLoader(
        share, batch_size=batch_size, num_workers=workers, persistent_workers=persistent and workers > 0
    )


@torch.no_grad()
def evaluate_clips(
    model: nn.Module, loader: torch.utils.data.DataLoader, modality: str, runtime: Runtime
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clip logits (N,C) float32, clip labels (N,), video of each clip (N,)) over every clip.

    loader: from ``eval_loader``; under torchrun each rank scores its share and every rank
    returns all N clips in item order.
    """
    model.eval()
    logits, labels, videos = [], [], []
    for batch in loader:
        with runtime.autocast():
            out = model(to_model_input(runtime.to_device(batch[modality])))
        logits.append(out.float().cpu())
        labels.append(batch["label"])
        videos.append(batch["index"])
    share = loader.dataset
    assert isinstance(share, torch.utils.data.Subset), "a loader from eval_loader"
    n = len(share.dataset)  # type: ignore[arg-type]  # a ClipDataset: it has a length
    logits_t, labels_t, videos_t = (gather_shares(torch.cat(part), n) for part in (logits, labels, videos))
    return logits_t, labels_t, videos_t


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    modality: str,
    runtime: Runtime,
    epoch: int,
    desc: str,
) -> float:
    """One pass of supervised training; the mean training loss. A non-finite loss raises,
    naming the epoch (1-based) and batch."""
    model.train()
    total, n = 0.0, 0
    for batch_number, batch in enumerate(tqdm(loader, desc=desc, leave=False), start=1):
        with runtime.autocast():
            logits = model(to_model_input(runtime.to_device(batch[modality])))
        loss = F.cross_entropy(logits.float(), batch["label"].to(runtime.device))
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteError(
                f"fine-tuning loss is {value} at epoch {epoch + 1}, batch {batch_number}; "
                f"check finetune.lr and the pretrained weights"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, n = total + value * len(logits), n + len(logits)
    return total / max(n, 1)


class BestEpoch:
    """The epoch ``selection_key`` ranks best so far and a copy of the model's state then."""

    def __init__(self, model: nn.Module):
        self.key: tuple[float, ...] = (float("inf"),)
        self.epoch = 0  # 0: before training, the initial weights
        self.state = copy.deepcopy(model.state_dict())

    def offer(self, key: tuple[float, ...], epoch: int, model: nn.Module) -> None:
        """Keep ``model``'s state when ``key`` is better (lower) than the best so far; ties keep the earlier."""
        if key < self.key:
            self.key, self.epoch, self.state = key, epoch, copy.deepcopy(model.state_dict())


def build_classifier(
    config: dict[str, Any],
    encoder_state: dict | None,
    n_classes: int,
    setup: FinetuneParams,
    runtime: Runtime,
    sync_batchnorm: bool,
) -> nn.Module:
    """The backbone the checkpoint's ``config`` names, from ``encoder_state`` (None: random init),
    with a fresh classifier; seeded by ``finetune.seed``, so both runs start their heads alike."""
    rank, world = rank_and_world()
    seed_everything(setup.seed)
    backbone = build_backbone(config["arch"], config["width"])
    if encoder_state is not None:
        load_backbone_strict(backbone, encoder_state)
    model = runtime.prepare_model(Classifier(backbone, n_classes, setup.dropout))
    if world > 1:
        # Every rank built the same weights; dropout masks must differ between the ranks' videos.
        torch.manual_seed(setup.seed + rank)
        if sync_batchnorm:
            model = synchronise_batchnorm(model, runtime.device.type == "cuda")
    return model


def validate(
    model: nn.Module, loader: torch.utils.data.DataLoader, modality: str, runtime: Runtime
) -> tuple[float, float]:
    """(loss, top-1 accuracy) over the validation clips: the numbers ``selection_key`` ranks."""
    logits, labels, _ = evaluate_clips(model, loader, modality, runtime)
    scores = logits.softmax(1)
    loss = F.nll_loss(scores.clamp_min(1e-12).log(), labels).item()
    return loss, topk_correct(scores, labels, 1).float().mean().item()


def score_test_videos(
    model: nn.Module,
    reader: ShardReader,
    test_ids: list[str],
    setup: FinetuneParams,
    clip: ClipParams,
    workers: int,
    runtime: Runtime,
) -> dict[str, Any]:
    """Video-level test of ``model``: each video scores the mean of its ``clip.eval_clips`` clips'
    probabilities or logits (``finetune.clip_scores``).

    Returns {"metrics": clip and video top-1/top-5, "predicted": (V,), "actual": (V,),
    "video_hits": {"video_top1": (V,) bool, ...}} for the bootstrap intervals.
    """
    test_set = ClipDataset(
        reader, test_ids, (setup.modality,), clip.length, clip.crop, train=False, seed=0, eval_clips=clip.eval_clips
    )
    test_loader = eval_loader(test_set, setup.batch_size, workers, persistent=False)
    logits, labels, videos = evaluate_clips(model, test_loader, setup.modality, runtime)
    scores = logits.softmax(1)
    per_video = video_scores(CLIP_SCORES[setup.clip_scores](logits), videos, len(test_ids))
    video_labels = torch.tensor(test_set.labels)
    ks = informative_ks([1, 5], per_video.shape[1], "finetune", "classes")  # top-5 of 3 classes is always right
    video_hits = {f"video_top{k}": topk_correct(per_video, video_labels, k).numpy() for k in ks}  # (V,) each
    metrics = {f"clip_top{k}": topk_correct(scores, labels, k).float().mean().item() for k in ks}
    metrics |= {f"video_top{k}": topk_correct(per_video, video_labels, k).float().mean().item() for k in ks}
    return {"metrics": metrics, "predicted": per_video.argmax(1), "actual": video_labels, "video_hits": video_hits}


def fit_loaders(
    reader: ShardReader,
    fit_ids: list[str],
    val_ids: list[str],
    setup: FinetuneParams,
    clip: ClipParams,
    workers: int,
) -> tuple[torch.utils.data.DataLoader, EpochSampler, torch.utils.data.DataLoader]:
    """(training loader, its sampler, validation loader): random clips of this rank's share of
    each epoch's permutation of ``fit_ids``; one centre clip of each of ``val_ids``."""
    rank, world = rank_and_world()
    fit_set = ClipDataset(reader, fit_ids, (setup.modality,), clip.length, clip.crop, train=True, seed=setup.seed)
    val_set = ClipDataset(reader, val_ids, (setup.modality,), clip.length, clip.crop, train=False, seed=0, eval_clips=1)
    sampler = EpochSampler(len(fit_ids), setup.seed, rank, world)
    # Persistent workers: starting loader processes every epoch would cost more than the
    # demo's epochs themselves.
    loader = torch.utils.data.DataLoader(
        fit_set, batch_size=setup.batch_size, sampler=sampler, num_workers=workers, persistent_workers=workers > 0
    )
    return loader, sampler, eval_loader(val_set, setup.batch_size, workers, persistent=True)


def finetune(
    reader: ShardReader,
    setup: FinetuneParams,
    clip: ClipParams,
    config: dict[str, Any],
    encoder_state: dict | None,
    runtime: Runtime,
    workers: int,
    n_classes: int,
    name: str,
    sync_batchnorm: bool,
    on_epoch: Callable[[dict[str, float], bool], None] | None = None,
) -> dict[str, Any]:
    """Train a classifier, keep its best validation epoch, test it; return ``score_test_videos``'s
    result with the best epoch in its metrics and the epochs' ``history``.

    config: the pretraining checkpoint's config (the backbone is rebuilt from it).
    encoder_state: the pretrained encoder's state dict, or None for random initialisation.
    sync_batchnorm: under torchrun, batch norm over the global batch (``launch.sync_batchnorm``).
    on_epoch: called with each epoch's row (and False: fine-tuning does not resume), e.g. a live logger.
    """
    start = time.perf_counter()
    world = rank_and_world()[1]
    model = build_classifier(config, encoder_state, n_classes, setup, runtime, sync_batchnorm)
    fit_ids, val_ids = split_validation(split_ids(reader, "train"), setup.val_videos, setup.seed)
    test_ids = split_ids(reader, "test")
    log.info(
        "finetune %s: %d training videos, %d held out for validation (whole groups), %d test videos",
        name,
        len(fit_ids),
        len(val_ids),
        len(test_ids),
    )
    loader, sampler, val_loader = fit_loaders(reader, fit_ids, val_ids, setup, clip, workers)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=setup.lr, momentum=setup.momentum, weight_decay=setup.weight_decay
    )
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=setup.plateau_factor, patience=setup.plateau_patience, min_lr=setup.min_lr
    )
    trained = runtime.maybe_compile(model)
    if world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(trained)
    best, history = BestEpoch(model), []
    for epoch in range(setup.epochs):
        sampler.set_epoch(epoch)
        desc = f"finetune {name} {epoch + 1}/{setup.epochs}"
        train_loss = train_one_epoch(trained, loader, optimizer, setup.modality, runtime, epoch, desc)
        train_loss = mean_over_ranks({"loss": train_loss}, runtime.device)["loss"]  # equal shares: the global mean
        val_loss, val_acc = validate(model, val_loader, setup.modality, runtime)
        plateau.step(val_loss)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_top1": val_acc}
        history.append(row | {"lr": optimizer.param_groups[0]["lr"]})
        if on_epoch is not None:
            on_epoch(history[-1], False)
        best.offer(selection_key(val_loss, val_acc, setup.select_by), epoch + 1, model)
        log.info(
            "finetune %s epoch %d: train loss %.4f, val loss %.4f, val top1 %.3f",
            name,
            epoch + 1,
            train_loss,
            val_loss,
            val_acc,
        )

    model.load_state_dict(best.state)
    result = score_test_videos(model, reader, test_ids, setup, clip, workers, runtime)
    result["metrics"] = {**result["metrics"], "best_epoch": best.epoch, "test_videos": len(test_ids)}
    log.info(
        "finetune %s: video top1 %.3f (best epoch %d, %d test videos) in %.0fs",
        name,
        result["metrics"]["video_top1"],
        best.epoch,
        len(test_ids),
        time.perf_counter() - start,
    )
    return result | {"history": history}
