"""IIC pretraining: one encoder for both views (RGB and the view-2 modality), a contrastive
objective (``train/methods.py``) and intra-negatives.

One network serves both views, as upstream (BestJuly/IIC) does: u/v are replicated to three
channels for that reason. CMC trains one network per view; sharing the weights makes the
RGB features answer to what the residual or flow view shows, i.e. to motion.

The training state is checkpointed every ``checkpoint_every`` epochs; a run killed after a
checkpoint resumes from it, and on CPU ends with the same weights as an uninterrupted run.
A resume state is used only for the same configuration *and* the same inputs (the reader's
fingerprint: the video list and the checksums of the shards), so data rebuilt after a kill
restarts training instead of finishing a hybrid. A non-finite loss stops training at once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch.nn import functional as F
from tqdm import tqdm

from pipeline.errors import ConfigError, NonFiniteError
from pipeline.runtime import Runtime, seed_everything
from pipeline.schema import ModelParams, PretrainParams, RuntimeParams
from preprocess.shards import ClipSource
from train.checkpoint import CheckpointFormatError, build_encoder, load_checkpoint, save_checkpoint
from train.data import ClipDataset, EpochSampler, split_ids, to_model_input, view_modalities
from train.distributed import mean_over_ranks, process_group, rank_and_world
from train.intra_negatives import INTRA_NEGATIVES
from train.methods import RAW_FEATURE_METHODS, build_objective
from train.objective import Objective
from train.sync_batchnorm import synchronise_batchnorm

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PretrainSetup:
    """Everything pretraining reads: the backbone, the clip size and the pretrain section."""

    model: ModelParams
    pretrain: PretrainParams
    clip_length: int
    crop: int
    # Under torchrun: batch norm over the global batch (launch.sync_batchnorm). Not in the
    # config: a checkpoint's weights load the same either way.
    sync_batchnorm: bool = False

    def config(self) -> dict[str, Any]:
        """Flat plain-value config stored in checkpoints; the encoder is rebuilt from it."""
        pretrain = {k: v for k, v in dataclasses.asdict(self.pretrain).items() if k not in ("models", "baseline")}
        return {
            **dataclasses.asdict(self.model),
            **pretrain,
            "view2": self.pretrain.modality,
            "clip_length": self.clip_length,
            "crop": self.crop,
            # Only where it is false, so that the other methods' checkpoints keep their bytes.
            **({"projection_head": False} if self.pretrain.method in RAW_FEATURE_METHODS else {}),
        }


def resume_state(path: Path, config: dict[str, Any], inputs: str, epochs: int) -> dict[str, Any] | None:
    """The unfinished run's state at ``path`` when it belongs to this configuration and these
    inputs (``inputs``: the reader's fingerprint), else None. An unreadable file is named in a
    warning and ignored: it must not block the stage until someone deletes it by hand.
    """
    if not path.exists():
        return None
    try:
        state = load_checkpoint(path)
    except CheckpointFormatError:
        log.info("ignoring %s: written in an older checkpoint format", path)
        return None
    except Exception as exc:  # a truncated or foreign file: torch raises several kinds
        log.warning("ignoring the resume state %s, which cannot be read (%s: %s)", path, type(exc).__name__, exc)
        return None
    if state["config"] != config or state["epoch"] >= epochs:
        log.info("ignoring %s: it belongs to another configuration", path)
        return None
    if state.get("inputs") != inputs:
        log.info("ignoring %s: it was trained on other inputs (the frames, motion or index changed)", path)
        return None
    return state


def batch_loss(
    batch: dict,
    setup: PretrainSetup,
    encoder: torch.nn.Module,
    objective: Objective,
    runtime: Runtime,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one batch and its statistics (positive probability per view).

    encoder: the shared encoder (or its DDP / compiled wrapper), (N,3,T,H,W) -> (N,D).
    objective: the ``Objective`` of a ``train.methods`` method (cmc, moco or simclr).
    """
    t = setup.pretrain
    view2_key = "rgb_second" if t.modality == "rgb" else t.modality
    x1 = to_model_input(runtime.to_device(batch["rgb"]))  # (B,3,T,H,W)
    x2 = to_model_input(runtime.to_device(batch[view2_key]))  # (B,3,T,H,W)
    index = batch["index"].to(runtime.device)

    def encode(clips: torch.Tensor, module: torch.nn.Module = encoder) -> torch.Tensor:
        with runtime.autocast():  # the encoder in bf16 on CUDA; the logits stay in float32
            return module(clips).float()

    make_negative = INTRA_NEGATIVES[t.neg] if t.intra_neg else None
    logits1, logits2, labels = objective.logits(encode, x1, x2, index, generator, make_negative)  # (B,L) each
    loss = F.cross_entropy(logits1, labels) + F.cross_entropy(logits2, labels)
    stats = {
        "loss": loss.item(),
        "p_pos_view1": logits1.softmax(1)[:, 0].mean().item(),
        "p_pos_view2": logits2.softmax(1)[:, 0].mean().item(),
    }
    return loss, stats


EPOCH_LOG = ("epoch", "loss", "p_pos_view1", "p_pos_view2")  # an epoch row's fields in the log line


@dataclasses.dataclass
class Training:
    """What pretraining updates, and what a resume state restores: the encoder (unwrapped), the
    objective (banks or queues), the optimiser, its schedule and the negatives' generator."""

    encoder: torch.nn.Module
    objective: torch.nn.Module  # an Objective (train.objective) with state: banks, queues
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    generator: torch.Generator


def build_training(setup: PretrainSetup, config: dict[str, Any], n_train: int, runtime: Runtime) -> Training:
    """A fresh encoder, objective, optimiser and schedule, seeded by ``pretrain.seed``.

    n_train: the train videos (the memory banks' rows). Under torchrun every rank builds the
    same weights, banks and generators; batch norm is synchronised when ``setup`` asks for it.
    """
    t = setup.pretrain
    world = rank_and_world()[1]
    seed_everything(t.seed)
    encoder = runtime.prepare_model(build_encoder(config))
    if world > 1 and setup.sync_batchnorm:
        encoder = synchronise_batchnorm(encoder, runtime.device.type == "cuda")
    bank_generator = torch.Generator().manual_seed(t.seed)  # the banks' or queues' initial state
    objective = build_objective(encoder, n_train, t, t.batch_size * world, bank_generator).to(runtime.device)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, t.lr_steps, t.lr_decay)
    generator = torch.Generator(device=runtime.device).manual_seed(t.seed + 1)  # negatives, intra-negatives
    return Training(encoder, objective, optimizer, scheduler, generator)


def checkpoint_state(
    config: dict[str, Any], epoch: int, curves: list[dict], training: Training, inputs: str | None = None
) -> dict[str, Any]:
    """The checkpoint after ``epoch``: the final one (config, epoch, curves, encoder) or, given
    the reader's fingerprint ``inputs``, the resume state, which also holds what
    ``restore_training`` needs to go on exactly where training stopped."""
    if inputs is None:
        return {"config": config, "epoch": epoch, "curves": curves, "encoder": training.encoder.state_dict()}
    return {
        "config": config,
        "inputs": inputs,
        "epoch": epoch,
        "curves": curves,
        "encoder": training.encoder.state_dict(),
        "objective": training.objective.state_dict(),
        "optimizer": training.optimizer.state_dict(),
        "scheduler": training.scheduler.state_dict(),
        "generator": training.generator.get_state(),
    }


def restore_training(training: Training, state: dict[str, Any]) -> None:
    """Load a resume state written by ``checkpoint_state(..., inputs=...)`` into ``training``."""
    training.encoder.load_state_dict(state["encoder"])
    training.objective.load_state_dict(state["objective"])
    training.optimizer.load_state_dict(state["optimizer"])
    training.scheduler.load_state_dict(state["scheduler"])
    training.generator.set_state(state["generator"])


def train_loader(
    reader: ClipSource, train_ids: list[str], setup: PretrainSetup, workers: int, runtime: Runtime
) -> tuple[torch.utils.data.DataLoader, EpochSampler]:
    """Pairs of views of the train videos, this rank's share of each epoch's permutation, whole batches only."""
    t = setup.pretrain
    rank, world = rank_and_world()
    dataset = ClipDataset(
        reader,
        train_ids,
        view_modalities(t.modality),
        setup.clip_length,
        setup.crop,
        train=True,
        seed=t.seed,
        second_rgb=t.modality == "rgb",
    )
    sampler = EpochSampler(len(train_ids), t.seed, rank, world)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=runtime.device.type == "cuda",
        persistent_workers=workers > 0,
    )
    return loader, sampler


def train_one_epoch(
    loader: torch.utils.data.DataLoader,
    setup: PretrainSetup,
    trained: torch.nn.Module,
    training: Training,
    runtime: Runtime,
    epoch: int,
    show: bool,
) -> dict[str, float]:
    """One pass over the loader and the schedule's step; the epoch's row of the curves: the mean
    loss and positive probabilities over the batches (and the ranks), and the next epoch's lr.

    trained: ``training.encoder`` as it trains (compiled, or DDP-wrapped under torchrun).
    Raises NonFiniteError naming the epoch (1-based) and batch when a loss is NaN or infinite:
    training on would only spread it into the weights and every later stage.
    """
    trained.train()
    objective = cast(Objective, training.objective)
    totals = {"loss": 0.0, "p_pos_view1": 0.0, "p_pos_view2": 0.0}
    n_batches = 0
    for batch in tqdm(
        loader, desc=f"pretrain epoch {epoch + 1}/{setup.pretrain.epochs}", disable=not show, leave=False
    ):
        loss, stats = batch_loss(batch, setup, trained, objective, runtime, training.generator)
        if not math.isfinite(stats["loss"]):
            raise NonFiniteError(
                f"pretraining loss is {stats['loss']} at epoch {epoch + 1}, batch {n_batches + 1}; "
                f"check pretrain.lr and pretrain.nce_t"
            )
        training.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        training.optimizer.step()
        objective.after_step(trained)  # MoCo: the key encoder follows
        for key in totals:
            totals[key] += stats[key]
        n_batches += 1
    training.scheduler.step()
    means = mean_over_ranks({k: v / max(n_batches, 1) for k, v in totals.items()}, runtime.device)
    row = {"epoch": epoch + 1, **means, "lr": training.optimizer.param_groups[0]["lr"]}
    log.info("epoch %d: loss %.4f, p(pos) view1 %.4f view2 %.4f", *(row[k] for k in EPOCH_LOG))
    return row


def pretrain(
    reader: ClipSource,
    setup: PretrainSetup,
    runtime: Runtime,
    checkpoint_path: Path,
    resume_path: Path,
    workers: int,
    stop_after_epoch: int | None = None,
    on_epoch: Callable[[dict[str, float], bool], None] | None = None,
    monitor: Callable[[torch.nn.Module, int, bool], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Train on the train split without labels; write the final checkpoint (curves included).

    stop_after_epoch: end early after that epoch (and its checkpoint), as a kill would; tests
    use it to check that resuming gives the uninterrupted result.
    on_epoch: called on rank 0 with each epoch's row (and whether training resumed), e.g. a live logger.
    monitor: called on rank 0 after each epoch with the encoder, the 1-based epoch and whether it
    is the last; what it returns joins the row given to ``on_epoch`` but never the checkpoint's
    curves (``evaluate.monitor.PretrainMonitor``: it must leave training as it was).
    """
    rank, world = rank_and_world()
    t = setup.pretrain
    config = setup.config()
    train_ids = split_ids(reader, "train")
    config["train_videos"] = len(train_ids)
    if len(train_ids) < t.batch_size * world:
        raise ConfigError(
            f"pretrain.batch_size: {len(train_ids)} train videos cannot fill one batch of {t.batch_size} per rank"
        )
    inputs = reader.fingerprint
    training = build_training(setup, config, len(train_ids), runtime)
    state = resume_state(resume_path, config, inputs, t.epochs)
    curves: list[dict] = state["curves"] if state is not None else []
    start_epoch = state["epoch"] if state is not None else 0
    if state is not None:
        restore_training(training, state)
        log.info("resuming pretraining from %s at epoch %d", resume_path, start_epoch)

    trained = runtime.maybe_compile(training.encoder)
    if world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(trained)
    loader, sampler = train_loader(reader, train_ids, setup, workers, runtime)
    start = time.perf_counter()
    for epoch in range(start_epoch, t.epochs):
        sampler.set_epoch(epoch)
        curves.append(train_one_epoch(loader, setup, trained, training, runtime, epoch, rank == 0))
        last = epoch + 1 == t.epochs
        if rank == 0 and ((epoch + 1) % t.checkpoint_every == 0) and not last:
            save_checkpoint(resume_path, checkpoint_state(config, epoch + 1, curves, training, inputs=inputs))
        if rank == 0:
            measured = monitor(training.encoder, epoch + 1, last) if monitor is not None else {}
            if on_epoch is not None:
                on_epoch(curves[-1] | measured, state is not None)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and not last:
            log.info("stopping after epoch %d as asked", epoch + 1)
            return {"config": config, "curves": curves, "stopped": True}

    if rank == 0:
        save_checkpoint(checkpoint_path, checkpoint_state(config, t.epochs, curves, training))
        resume_path.unlink(missing_ok=True)  # finished: a later rerun starts from scratch
        clips = (t.epochs - start_epoch) * len(sampler) // t.batch_size * t.batch_size * world
        elapsed = time.perf_counter() - start
        log.info(
            "pretrained %s on %d videos: %d clips in %.0fs on %d process(es) -> %s",
            *(config["arch"], len(train_ids), clips, elapsed, world, checkpoint_path),
        )
    return {"config": config, "curves": curves, "stopped": False}


def pretrain_stage(
    setup: PretrainSetup,
    runtime_params: RuntimeParams,
    reader: ClipSource,
    checkpoint_path: Path,
    resume_path: Path,
    live_dir: Path,
    stop_after_epoch: int | None = None,
    make_monitor: Callable[[Runtime], Callable[[torch.nn.Module, int, bool], dict[str, float]]] | None = None,
) -> dict[str, Any]:
    """The dvc stage ``pretrain``: in torchrun's process group when launched by it, train on
    ``reader``'s train split with a live log of every epoch (DVCLive, rank 0) and, from
    ``make_monitor(runtime)``, the learning curve a monitor measures on rank 0."""
    from pipeline.live import EpochLog

    with process_group(runtime_params) as runtime:
        live = EpochLog(live_dir)
        try:
            return pretrain(
                reader,
                setup,
                runtime,
                checkpoint_path,
                resume_path,
                runtime_params.workers,
                stop_after_epoch=stop_after_epoch,
                on_epoch=live,
                monitor=make_monitor(runtime) if make_monitor is not None and rank_and_world()[0] == 0 else None,
            )
        finally:
            live.close()
