"""``python -m pipeline <stage>``: one click command per dvc stage.

Each command only opens its stage (logging, params, cleanup) and calls into the stage's module
with the params and paths it reads. A mistake a
person can fix (a bad key or value in params.yaml, a missing or stale input, an unreadable
dataset folder) prints one line naming the key or file and exits with status 2; the
traceback only with ``--debug``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline import paths, variants
from pipeline.errors import InputError, UserError
from pipeline.stage import setup_logging, stage

if TYPE_CHECKING:
    from preprocess.shards import ShardReader
    from preprocess.union import UnionReader

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


def _verified_reader(name: str) -> ShardReader:
    """The verified videos of dataset ``name``: what every training and evaluation stage reads."""
    from preprocess.verified import open_verified

    data = paths.dataset(name)
    return open_verified(data.verified_videos, data.frames, data.motion)


DATASET = click.argument("name")  # a key of datasets (or of demo) in params.yaml
SHARD = click.argument("shard_id", type=int)


@main.command()
@DATASET
def demo(name: str) -> None:
    """Generate one procedural demo dataset: its videos and official-format lists."""
    from preprocess.demo import generate_demo

    with stage("demo", {"dataset": name}) as p:
        generate_demo(p.demo[name].materialize(), paths.demo_videos(name), paths.demo_lists(name))


@main.command()
@DATASET
def dataset(name: str) -> None:
    """Index a dataset: classes, split membership, size and hash; write rejects and shard lists."""
    from preprocess.dataset import index_dataset
    from preprocess.formats import FormatOptions

    with stage("dataset", {"dataset": name}) as p:
        d, out = p.datasets[name], paths.dataset(name)
        options = FormatOptions(d.split, d.test_ratio, d.split_seed)
        index_dataset(
            Path(d.root),
            Path(d.lists),
            d.format,
            options,
            p.shards.ids,
            d.max_reject_share,
            out.index,
            out.dataset_rejects,
            out.shard_list,
            (out.frames, out.motion),
        )


@main.command()
@DATASET
@SHARD
def frames(name: str, shard_id: int) -> None:
    """Decode one shard's videos with ffmpeg into uint8 RGB frames."""
    from preprocess.frames import frames_stage

    with stage("frames", {"dataset": name, "shard": shard_id}) as p:
        out = paths.dataset(name)
        frames_stage(
            out.shard_list(shard_id),
            Path(p.datasets[name].root),
            out.frames_shard(shard_id),
            out.frames_manifest(shard_id),
            p.frames.materialize(),
            p.storage.materialize(),
            p.pool.materialize(),
        )


@main.command()
@DATASET
@SHARD
def motion(name: str, shard_id: int) -> None:
    """TV-L1 flow and residuals of one frames shard."""
    from preprocess.motion import compute_motion_shard

    with stage("motion", {"dataset": name, "shard": shard_id}) as p:
        out = paths.dataset(name)
        compute_motion_shard(
            out.frames_shard(shard_id),
            out.frames_manifest(shard_id),
            out.motion_shard(shard_id),
            out.motion_manifest(shard_id),
            p.motion.materialize(),
            p.storage.materialize(),
            p.pool.materialize(),
        )


@main.command()
@DATASET
def verify(name: str) -> None:
    """Check a dataset's shards against its index, count its rejects, list its usable videos."""
    from preprocess.verify import verify_dataset

    with stage("verify", {"dataset": name}) as p:
        out = paths.dataset(name)
        verify_dataset(
            out.index,
            out.dataset_rejects,
            out.frames,
            out.motion,
            p.shards.ids,
            p.datasets[name].max_reject_share,
            out.verified_videos,
            out.verified_rejects,
        )


@main.command()
@DATASET
@click.argument("video_id")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="PNG path (default artifacts/preview/<dataset>/<id>.png)",
)
@click.option("--frames", "n_frames", type=int, default=8, show_default=True, help="frames in the strip")
def preview(name: str, video_id: str, out: Path | None, n_frames: int) -> None:
    """Write a PNG of a video's RGB, residual and flow frames side by side."""
    from evaluate.preview import write_preview

    setup_logging()
    data = paths.dataset(name)
    out = out or paths.PREVIEW / name / f"{video_id.replace('/', '__')}.png"
    write_preview(data.verified_videos, data.frames, data.motion, video_id, out, n_frames)
    log.info("preview of %s -> %s", video_id, out)


def _feature_files(name: str, pretrained: list[str]) -> dict[str, Path]:
    """{model: features file} of dataset ``name`` for every evaluated model (the pretrained ones, random init)."""
    data = paths.dataset(name)
    return {m: data.features_file(m) for m in variants.evaluated(pretrained)}


def _pretraining_reader(datasets: list[str]) -> UnionReader:
    """The union of the listed datasets, each through its copy in artifacts/pretrain_data."""
    from preprocess.union import UnionReader
    from preprocess.verified import open_verified

    readers = {}
    for name in datasets:
        data, copy = paths.dataset(name), paths.pretrain_data(name)
        if not copy.is_file():  # open_verified would name verify@<name>, whose output is not this copy
            raise InputError(f"{copy}: missing; run `dvc repro pretrain_data@{name}`")
        readers[name] = open_verified(copy, data.frames, data.motion)
    return UnionReader(readers)


@main.command("pretrain_data")
@DATASET
def pretrain_data(name: str) -> None:
    """Copy one listed dataset's verified list to where pretraining reads it (pretrain.datasets)."""
    from preprocess.pretrain_data import stage_pretrain_data

    with stage("pretrain_data", {"dataset": name}) as p:
        stage_pretrain_data(name, list(p.pretrain.datasets), paths.dataset(name).verified_videos, paths.PRETRAIN_DATA)


MODEL = click.argument("model", type=click.Choice(["iic", "baseline"]))  # an entry of pretrain.models


@main.command()
@MODEL
@click.option("--stop-after-epoch", type=int, default=None, help="end after this epoch's checkpoint (resume tests)")
def pretrain(model: str, stop_after_epoch: int | None) -> None:
    """Pretrain one model of pretrain.models (iic, or its baseline) on the union of pretrain.datasets'
    train splits, resumably."""
    from evaluate.monitor import monitor_factory
    from train.pretrain import PretrainSetup, pretrain_stage

    with stage("pretrain", {"model": model}, distributed=True) as p:
        setup = PretrainSetup(
            model=p.model.materialize(),
            pretrain=variants.variant_params(p.pretrain.materialize(unread=("models",)), model),
            clip_length=p.clip.length,
            crop=p.clip.crop,
            sync_batchnorm=p.launch.sync_batchnorm,
        )
        monitor = p.monitor.materialize()
        reader = _pretraining_reader(setup.pretrain.datasets)
        pretrain_stage(
            setup,
            p.runtime.materialize(),
            reader,
            paths.pretrain_checkpoint(model),
            paths.pretrain_resume(model),
            paths.pretrain_live(model),
            stop_after_epoch=stop_after_epoch,
            make_monitor=monitor_factory(
                _verified_reader(monitor.dataset), monitor.dataset, monitor, p.knn.k, p.knn.temperature, setup
            )
            if monitor.every
            else None,
        )


@main.command()
@DATASET
def features(name: str) -> None:
    """Per-video features of every pretrained model and of a random-init one on one evaluation dataset."""
    from evaluate.features import features_stage

    with stage("features", {"dataset": name}, distributed=True) as p:
        pretrained = list(p.pretrain.models)
        features_stage(
            {m: paths.pretrain_checkpoint(m) for m in pretrained},
            _verified_reader(name),
            p.clip.materialize(),
            p.features.materialize(),
            p.runtime.materialize(),
            _feature_files(name, pretrained),
        )


@main.command()
@DATASET
def retrieve(name: str) -> None:
    """Top-k retrieval (test queries train) for every model and rgb / view 2 / merge features."""
    from evaluate.retrieve import retrieve_stage

    with stage("retrieve", {"dataset": name}) as p:
        data = paths.dataset(name)
        retrieve_stage(
            _feature_files(name, list(p.pretrain.models)),
            list(p.retrieve.topk),
            p.intervals.materialize(),
            data.retrieval_metrics,
            data.retrieval_plot,
        )


@main.command()
@DATASET
def knn(name: str) -> None:
    """Weighted kNN classification of the test videos on the frozen features of every model."""
    from evaluate.knn_stage import knn_stage

    with stage("knn", {"dataset": name}) as p:
        knn_stage(
            _feature_files(name, list(p.pretrain.models)),
            p.knn.materialize(),
            p.intervals.materialize(),
            paths.dataset(name).knn_metrics,
        )


@main.command()
@DATASET
def linear(name: str) -> None:
    """A linear probe on the frozen features of every model (weight decay chosen on validation groups)."""
    from evaluate.linear_stage import linear_stage

    with stage("linear", {"dataset": name}) as p:
        linear_stage(
            _feature_files(name, list(p.pretrain.models)),
            p.linear.materialize(),
            p.intervals.materialize(),
            paths.dataset(name).linear_metrics,
        )


@main.command()
@DATASET
def gallery(name: str) -> None:
    """A PNG of test queries beside their nearest train videos, every model side by side."""
    from evaluate.gallery import gallery_stage
    from train.data import class_names

    with stage("gallery", {"dataset": name}) as p:
        reader = _verified_reader(name)
        gallery_stage(
            _feature_files(name, list(p.pretrain.models)),
            reader,
            class_names(reader),
            p.gallery.materialize(),
            paths.dataset(name).retrieval_gallery,
        )


@main.command()
@DATASET
def temporal(name: str) -> None:
    """What intra-negatives are meant to change: each model's feature of a test clip against the clip
    with a frame repeated, shuffled or reversed, and an arrow-of-time probe."""
    from evaluate.temporal_stage import temporal_stage

    with stage("temporal", {"dataset": name}) as p:
        pretrained = list(p.pretrain.models)
        temporal_stage(
            {m: paths.pretrain_checkpoint(m) for m in pretrained},
            _verified_reader(name),
            p.clip.materialize(),
            p.features.random_init_seed,
            p.temporal.materialize(),
            p.runtime.materialize(),
            p.intervals.materialize(),
            paths.dataset(name).temporal_metrics,
        )


@main.command()
@DATASET
def finetune(name: str) -> None:
    """Fine-tune from every pretrained backbone and from random init; video-level test metrics."""
    from evaluate.recognition import finetune_stage

    with stage("finetune", {"dataset": name}, distributed=True) as p:
        data = paths.dataset(name)
        finetune_stage(
            {m: paths.pretrain_checkpoint(m) for m in p.pretrain.models},
            _verified_reader(name),
            p.finetune.materialize(),
            p.clip.materialize(),
            p.runtime.materialize(),
            p.intervals.materialize(),
            data.finetune_metrics,
            data.finetune_live,
            p.launch.sync_batchnorm,
        )


@main.command()
def report() -> None:
    """The experiment's results: every evaluation dataset, IIC beside random init and the paper."""
    from evaluate.report import report_from_params

    with stage("report") as p:
        report_from_params(p, paths.REPORT, paths.REPORT_DATA)


@main.command()
def summary() -> None:
    """Print the report's headline numbers per evaluation dataset (not a dvc stage: it only reads)."""
    from evaluate.summary import print_summary

    print_summary(paths.REPORT_DATA)


@main.command()
@click.option(
    "--exp-json",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="read this `dvc exp show --json` output instead of running it",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="also write the table to this file")
def seeds(exp_json: Path | None, out: Path | None) -> None:
    """Print the results over seeds (the DVC experiments) as a markdown table (not a dvc stage: it only reads)."""
    import json

    from evaluate.seeds import exp_show_json, seed_runs, seed_table

    setup_logging()
    if exp_json is not None:
        try:
            shown = json.loads(exp_json.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{exp_json}: not JSON ({exc.msg} at line {exc.lineno}); save `dvc exp show --json` again"
            ) from exc
    else:
        shown = exp_show_json(Path.cwd())
    table = seed_table(seed_runs(shown))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
    click.echo(table)


@main.command()
def export() -> None:
    """The pretrained backbone as safetensors and .pth with a model card (a DVC model artifact)."""
    from evaluate.export import export_stage

    with stage("export"):
        export_stage(paths.pretrain_checkpoint(variants.IIC), paths.REPORT_DATA, paths.EXPORT)
