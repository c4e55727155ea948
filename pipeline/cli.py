"""``python -m pipeline <stage>``: one click command per dvc stage.

Each command only loads its params and makes one call into the stage's module. A mistake a
person can fix (a bad key or value in params.yaml, a missing or stale input, an unreadable
dataset folder) prints one line naming the key or file and exits with status 2; the
traceback only with ``--debug``.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pipeline import paths
from pipeline.errors import UserError
from pipeline.stage import setup_logging, stage

log = logging.getLogger("pipeline")


class _Pipeline(click.Group):
    """Turns the errors a person can fix into one line and exit status 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (UserError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            if ctx.meta.get("debug"):
                raise
            if isinstance(exc, UserError):
                message = str(exc)
            else:  # OSError: name the file the stage could not open
                message = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
            click.echo(f"error: {message} (--debug for the traceback)", err=True)
            sys.exit(2)


@click.group(cls=_Pipeline)
@click.option("--debug", is_flag=True, help="show the traceback of an error")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """IIC self-supervised video representation pipeline."""
    ctx.meta["debug"] = debug


@main.command()
def demo() -> None:
    """Generate the procedural demo videos and their split lists."""
    from preprocess.demo import generate_demo

    with stage("demo") as p:
        generate_demo(p.demo, paths.DEMO_VIDEOS, paths.DEMO_LISTS)


@main.command()
def dataset() -> None:
    """Index the dataset: classes, split membership, size and hash; write rejects and shard lists."""
    from preprocess.dataset import index_dataset
    from preprocess.formats import FormatOptions

    with stage("dataset") as p:
        options = FormatOptions(p.dataset.split, p.dataset.test_ratio, p.dataset.split_seed)
        index_dataset(Path(p.dataset.root), Path(p.dataset.lists), p.dataset.format, options, p.shards.ids,
                      p.dataset.max_reject_share, paths.INDEX, paths.DATASET_REJECTS, paths.shard_list,
                      (paths.FRAMES, paths.MOTION))


@main.command()
@click.argument("shard_id", type=int)
def frames(shard_id: int) -> None:
    """Decode one shard's videos with ffmpeg into uint8 RGB frames."""
    from preprocess.frames import frames_stage

    with stage("frames") as p:
        frames_stage(paths.shard_list(shard_id), Path(p.dataset.root), paths.frames_shard(shard_id),
                     paths.frames_manifest(shard_id), p.frames.materialize(), p.storage.materialize(),
                     p.pool.materialize())


@main.command()
@click.argument("shard_id", type=int)
def motion(shard_id: int) -> None:
    """TV-L1 flow and residuals of one frames shard."""
    from preprocess.motion import compute_motion_shard

    with stage("motion") as p:
        compute_motion_shard(paths.frames_shard(shard_id), paths.frames_manifest(shard_id), paths.motion_shard(shard_id),
                             paths.motion_manifest(shard_id), p.motion.materialize(), p.storage.materialize(),
                             p.pool.materialize())


@main.command()
def verify() -> None:
    """Check the shards against the index, count rejects over the dataset, list the usable videos."""
    from preprocess.verify import verify_dataset

    with stage("verify") as p:
        verify_dataset(paths.INDEX, paths.DATASET_REJECTS, paths.FRAMES, paths.MOTION, p.shards.ids,
                       p.dataset.max_reject_share, paths.VERIFIED_VIDEOS, paths.VERIFIED_REJECTS)


@main.command()
@click.argument("video_id")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="PNG path (default artifacts/preview/<id>.png)")
@click.option("--frames", "n_frames", type=int, default=8, show_default=True, help="frames in the strip")
def preview(video_id: str, out: Path | None, n_frames: int) -> None:
    """Write a PNG of a video's RGB, residual and flow frames side by side."""
    from evaluate.preview import write_preview

    setup_logging()
    out = out or paths.PREVIEW / f"{video_id.replace('/', '__')}.png"
    write_preview(paths.VERIFIED_VIDEOS, paths.FRAMES, paths.MOTION, video_id, out, n_frames)
    log.info("preview of %s -> %s", video_id, out)


@main.command()
@click.option("--stop-after-epoch", type=int, default=None, help="end after this epoch's checkpoint (resume tests)")
def pretrain(stop_after_epoch: int | None) -> None:
    """IIC pretraining on the train split, resumable from its last checkpoint."""
    from train.pretrain import pretrain_stage, setup_from_params

    with stage("pretrain") as p:
        pretrain_stage(setup_from_params(p), p.runtime.materialize(), paths.VERIFIED_VIDEOS, paths.FRAMES,
                       paths.MOTION, paths.PRETRAIN_CHECKPOINT, paths.PRETRAIN_RESUME / "last.pt",
                       paths.PRETRAIN_LIVE, stop_after_epoch=stop_after_epoch)


@main.command()
def features() -> None:
    """Per-video features of the pretrained and of a random-init model (train and test splits)."""
    from evaluate.features import features_stage
    from preprocess.verify import open_verified

    with stage("features") as p:
        features_stage(paths.PRETRAIN_CHECKPOINT, open_verified(paths.VERIFIED_VIDEOS, paths.FRAMES, paths.MOTION),
                       p.clip.materialize(), p.features.materialize(), p.runtime.materialize(),
                       {m: paths.features_file(m) for m in ("iic", "random")})


@main.command()
def retrieve() -> None:
    """Top-k retrieval (test queries train) for both models and rgb / view 2 / merge features."""
    from evaluate.report import retrieval_report

    with stage("retrieve") as p:
        retrieval_report({m: paths.features_file(m) for m in ("iic", "random")}, list(p.retrieve.topk),
                         paths.RETRIEVAL_METRICS, paths.RETRIEVAL_PLOT)


@main.command()
def finetune() -> None:
    """Fine-tune from the pretrained backbone and from random init; video-level test metrics."""
    from preprocess.verify import open_verified
    from train.finetune import finetune_stage

    with stage("finetune") as p:
        finetune_stage(paths.PRETRAIN_CHECKPOINT, open_verified(paths.VERIFIED_VIDEOS, paths.FRAMES, paths.MOTION),
                       p.finetune.materialize(), p.clip.materialize(), p.runtime.materialize(),
                       paths.FINETUNE_METRICS, paths.finetune_live)


@main.command()
def export() -> None:
    """The pretrained backbone as safetensors and .pth with a model card (a DVC model artifact)."""
    from evaluate.export import export_stage

    with stage("export") as p:
        dataset = f"{p.dataset.root} (split {p.dataset.split})"
        export_stage(paths.PRETRAIN_CHECKPOINT, paths.RETRIEVAL_METRICS, paths.FINETUNE_METRICS, dataset, paths.EXPORT)
