"""``python -m pipeline <stage>``: one click command per dvc stage.

Each command only loads its params, logs, and calls the stage's library function.
"""
from __future__ import annotations

import logging
from pathlib import Path

import click

from pipeline import paths
from pipeline.atomic import read_json, write_json
from pipeline.stage import setup_logging, stage

log = logging.getLogger("pipeline")


@click.group()
def main() -> None:
    """IIC self-supervised video representation pipeline."""


@main.command()
def demo() -> None:
    """Generate the procedural demo videos and their split lists."""
    from preprocess.demo import generate_demo

    with stage("demo") as p:
        generate_demo(p.demo, paths.DEMO_VIDEOS, paths.DEMO_LISTS)


@main.command()
def dataset() -> None:
    """Index the dataset: classes, split membership, size and hash; write rejects."""
    from preprocess.dataset import build_index, check_reject_share

    with stage("dataset") as p:
        shard_ids = p.shards.ids
        entries, rejects = build_index(Path(p.dataset.root), Path(p.dataset.lists), p.dataset.split, len(shard_ids))
        write_json(paths.DATASET_REJECTS, [r.__dict__ for r in rejects])
        for shard_id in shard_ids:
            write_json(paths.shard_list(shard_id), [e for e in entries if e["shard"] == shard_id])
        write_json(paths.INDEX, entries)
        n_train = sum(e["split"] == "train" for e in entries)
        log.info("dataset: %d videos indexed (%d train, %d test), %d rejected -> %s",
                 len(entries), n_train, len(entries) - n_train, len(rejects), paths.INDEX)
        check_reject_share(len(rejects), len(entries) + len(rejects), p.dataset.max_reject_share, "dataset")


@main.command()
@click.argument("shard_id", type=int)
def frames(shard_id: int) -> None:
    """Decode one shard's videos with ffmpeg into uint8 RGB frames."""
    from preprocess.build import extract_frames_shard
    from preprocess.dataset import check_reject_share

    with stage("frames") as p:
        entries = read_json(paths.shard_list(shard_id))
        manifest = extract_frames_shard(
            entries, Path(p.dataset.root), paths.frames_shard(shard_id), paths.frames_manifest(shard_id),
            p.frames, p.storage,
        )
        check_reject_share(len(manifest["rejects"]), len(entries), p.dataset.max_reject_share, f"frames shard {shard_id}")


@main.command()
@click.argument("shard_id", type=int)
def motion(shard_id: int) -> None:
    """TV-L1 flow and residuals of one frames shard."""
    from preprocess.build import compute_motion_shard
    from preprocess.dataset import check_reject_share

    with stage("motion") as p:
        manifest = compute_motion_shard(
            paths.frames_shard(shard_id), paths.frames_manifest(shard_id),
            paths.motion_shard(shard_id), paths.motion_manifest(shard_id), p.motion, p.storage,
        )
        n_total = len(manifest["videos"]) + len(manifest["rejects"])
        check_reject_share(len(manifest["rejects"]), n_total, p.dataset.max_reject_share, f"motion shard {shard_id}")


@main.command()
@click.argument("video_id")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="PNG path (default artifacts/preview/<id>.png)")
@click.option("--frames", "n_frames", type=int, default=8, show_default=True, help="frames in the strip")
def preview(video_id: str, out: Path | None, n_frames: int) -> None:
    """Write a PNG of a video's RGB, residual and flow frames side by side."""
    from evaluate.preview import write_preview

    setup_logging()
    out = out or paths.PREVIEW / f"{video_id.replace('/', '__')}.png"
    write_preview(paths.FRAMES, paths.MOTION, video_id, out, n_frames)
    log.info("preview of %s -> %s", video_id, out)


@main.command()
@click.option("--stop-after-epoch", type=int, default=None, help="end after this epoch's checkpoint (resume tests)")
def pretrain(stop_after_epoch: int | None) -> None:
    """IIC pretraining on the train split, resumable from its last checkpoint."""
    import torch

    from pipeline.runtime import make_runtime
    from preprocess.shards import ShardReader
    from train.pretrain import init_distributed, pretrain as run_pretrain, setup_from_params

    with stage("pretrain") as p:
        init_distributed(use_cuda=p.runtime.device != "cpu" and torch.cuda.is_available())
        runtime = make_runtime(p.runtime)
        run_pretrain(
            ShardReader(paths.FRAMES, paths.MOTION), setup_from_params(p), runtime,
            paths.PRETRAIN_CHECKPOINT, paths.PRETRAIN_RESUME / "last.pt", paths.PRETRAIN_CURVES,
            workers=p.runtime.workers, stop_after_epoch=stop_after_epoch,
        )


@main.command()
def features() -> None:
    """Per-video features of the pretrained and of a random-init model (train and test splits)."""
    import torch

    from evaluate.features import extract_all
    from pipeline.runtime import make_runtime
    from preprocess.shards import ShardReader
    from train.checkpoint import build_encoder, load_encoder

    with stage("features") as p:
        runtime = make_runtime(p.runtime)
        reader = ShardReader(paths.FRAMES, paths.MOTION)
        config, pretrained = load_encoder(paths.PRETRAIN_CHECKPOINT)
        torch.manual_seed(p.features.random_init_seed)
        random_init = build_encoder(config)
        for name, encoder in (("iic", pretrained), ("random", random_init)):
            extract_all(encoder, config["view2"], reader, p.clip.length, p.clip.crop, p.clip.eval_clips,
                        p.features.batch_size, p.runtime.workers, runtime, paths.features_file(name))


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
    from evaluate.report import finetune_report
    from pipeline.runtime import make_runtime
    from preprocess.shards import ShardReader
    from train.checkpoint import load_checkpoint
    from train.finetune import finetune as run_finetune

    with stage("finetune") as p:
        runtime = make_runtime(p.runtime)
        reader = ShardReader(paths.FRAMES, paths.MOTION)
        checkpoint = load_checkpoint(paths.PRETRAIN_CHECKPOINT)
        setup, clip = p.finetune.materialize(), p.clip.materialize()
        # Labels come from classInd.txt; a class whose videos were all rejected keeps its number.
        names = {v["label"]: v["class"] for v in reader.videos.values()}
        class_names = [names.get(label, f"class {label + 1}") for label in range(max(names) + 1)]
        results = {
            name: run_finetune(reader, setup, clip, checkpoint["config"], state, runtime, p.runtime.workers,
                               len(class_names), name)
            for name, state in (("iic", checkpoint["encoder"]), ("random", None))
        }
        finetune_report(results, class_names, paths.FINETUNE_METRICS, paths.PLOTS)
