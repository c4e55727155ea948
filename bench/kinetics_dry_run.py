"""A Kinetics-400-size run of the preprocessing DAG: 240,000 tiny videos, 32 shards, real DVC.

Writes a ``kinetics_csv`` list with the official columns (``label,youtube_id,time_start,
time_end,split``; 400 labels with spaces, 220,000 train and 20,000 val rows) and a tiny H.264
MP4 (``--width`` x ``--height``, ``--frames`` frames; a few distinct ones copied under every
name) at each row's ``<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``, and a workspace with
this repository's files and a params.yaml with that one dataset, the README's Kinetics
settings (``storage.encoding: h264``, ``motion.flow: none``) and ``--shards`` shards. Then,
with real DVC:

- ``dvc repro dataset@kinetics``: the index of every video (full size);
- ``dvc repro frames@kinetics-<i> motion@kinetics-<i>`` for ``--sample-shards`` shards: the
  per-video cost of the shard stages, measured on that sample;
- every other shard: a frames shard of raw tiny stand-in frames written with ``ShardWriter``
  and its manifest (the index's entries, as the frames stage writes them), then the real
  motion stage code on it; ``dvc commit`` records them as the stages' outputs;
- ``dvc repro verify@kinetics`` (full size: every manifest against the index), ``dvc status``
  and a no-op ``dvc repro verify@kinetics`` over all 2 x shards + 2 stages, and the verified
  reader's cold and warm start.

Prints a table whose every line says whether it is a full-size or a sample figure. Asserts
nothing.

    python bench/kinetics_dry_run.py [--videos 240000] [--shards 32] [--work /tmp/iic-kinetics]
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

import av
import click
import numpy as np
from scale_dry_run import make_workspace, reader_start, stage_seconds, timed

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline import checksums  # noqa: E402  (the repository is the import root)
from pipeline.params import load_params  # noqa: E402
from preprocess.motion import compute_motion_shard  # noqa: E402
from preprocess.shards import ShardWriter, write_manifest  # noqa: E402

GOALS = (
    "no-op dvc repro <= 15 s; warm reader start <= 2 s; dataset stage <= 2 min; <= 30 ms per video in frames + motion"
)
KINETICS_SETTINGS = {"storage": {"encoding": "h264"}, "motion": {"flow": "none"}}


def write_csv(path: Path, videos: int, classes: int, val_every: int, seed: int = 0) -> list[tuple[str, str]]:
    """The official columns, a header and one row per video; returns (label, file name) per row."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    labels = [f"action number {c:03d}" for c in range(classes)]
    files = []
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        for i in range(videos):
            label = labels[i % classes]
            youtube_id = "".join(rng.choice(alphabet, 11))
            start = int(rng.integers(0, 600))
            out.writerow([label, youtube_id, start, start + 10, "val" if i % val_every == 0 else "train"])
            files.append((label, f"{youtube_id}_{start:06d}_{start + 10:06d}.mp4"))
    return files


def write_h264_mp4(frames: np.ndarray, path: Path, fps: int = 25) -> None:
    """(T,H,W,3) uint8 RGB as an H.264 MP4, as Kinetics' files are."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_videos(files: list[tuple[str, str]], root: Path, frames: int, height: int, width: int) -> float:
    """A few distinct tiny videos (a square drifting over noise), each copied under many names."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    sources = []
    for i in range(8):
        background = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        clip = np.stack([np.roll(background, (i % 3 - 1) * t, axis=1) for t in range(frames)])
        for t in range(frames):
            left = (2 + t + i) % (width - 8)
            clip[t, 4:12, left : left + 8] = 255
        sources.append(root.parent / f"variant{i}.mp4")
        write_h264_mp4(clip, sources[-1])
    for label in sorted({label for label, _ in files}):
        (root / label).mkdir(parents=True)
    for i, (label, name) in enumerate(files):
        shutil.copyfile(sources[i % len(sources)], root / label / name)
    return time.perf_counter() - start


def fill_shard(data: Path, shard_id: int, stand_in: np.ndarray, params) -> None:
    """A frames shard of ``stand_in`` frames (raw) for every video of the shard's list, its
    manifest as the frames stage writes it, then the real motion stage code on it."""
    entries = json.loads((data / f"dataset/shards/{shard_id}.json").read_text())
    frames_shard = data / f"frames/{shard_id}.h5"
    raw = dataclasses.replace(params.storage, encoding="raw")
    with ShardWriter(frames_shard, raw) as writer:
        for entry in entries:
            writer.add(entry["id"], "rgb", stand_in)
    videos = [{**entry, "frames": len(stand_in)} for entry in entries]
    write_manifest(frames_shard, data / f"frames/{shard_id}.json", videos, [])
    compute_motion_shard(
        frames_shard,
        data / f"frames/{shard_id}.json",
        data / f"motion/{shard_id}.h5",
        data / f"motion/{shard_id}.json",
        params.motion,
        params.storage,
        params.pool,
    )


def megabytes(paths) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


@click.command()
@click.option("--videos", type=int, default=240_000, show_default=True)
@click.option("--classes", type=int, default=400, show_default=True)
@click.option("--val-every", type=int, default=12, show_default=True, help="every n-th row is val (20,000 of 240,000)")
@click.option("--shards", type=int, default=32, show_default=True, help="the README's Kinetics-400 shard count")
@click.option("--sample-shards", type=int, default=2, show_default=True, help="shards the real frames stage builds")
@click.option("--frames", type=int, default=20, show_default=True)
@click.option("--height", type=int, default=24, show_default=True)
@click.option("--width", type=int, default=32, show_default=True)
@click.option("--work", type=click.Path(path_type=Path), default=Path("/tmp/iic-kinetics"))
def main(
    videos: int,
    classes: int,
    val_every: int,
    shards: int,
    sample_shards: int,
    frames: int,
    height: int,
    width: int,
    work: Path,
) -> None:
    if work.exists():
        shutil.rmtree(work)
    root, csv_path = work / "kinetics400", work / "kinetics400.csv"
    root.mkdir(parents=True)
    files = write_csv(csv_path, videos, classes, val_every)
    seconds = write_videos(files, root, frames, height, width)
    print(f"{len(files):,} videos of {frames} frames at {width}x{height} written in {seconds:.0f} s", flush=True)
    kinetics = {"format": "kinetics_csv", "root": str(root), "lists": str(csv_path)}
    workspace = make_workspace(work, "kinetics", kinetics, shards, height, width, frames, KINETICS_SETTINGS)
    data = workspace / "artifacts/data/kinetics"

    dataset_wall, output = timed(["dvc", "repro", "dataset@kinetics"], workspace)
    dataset_s = stage_seconds(output)["dataset@kinetics"]
    print(f"dataset stage {dataset_s:.1f} s (dvc repro {dataset_wall:.0f} s)", flush=True)

    sample = list(range(sample_shards))
    targets = [f"{kind}@kinetics-{i}" for i in sample for kind in ("frames", "motion")]
    _, output = timed(["dvc", "repro", *targets], workspace)
    stages = stage_seconds(output)
    sampled = sum(len(json.loads((data / f"dataset/shards/{i}.json").read_text())) for i in sample)
    frames_ms = 1000 * sum(stages[f"frames@kinetics-{i}"] for i in sample) / sampled
    motion_ms = 1000 * sum(stages[f"motion@kinetics-{i}"] for i in sample) / sampled
    sample_frames_mb = megabytes(data / f"frames/{i}.h5" for i in sample)
    print(f"sample: {sampled:,} videos, frames {frames_ms:.1f} ms + motion {motion_ms:.1f} ms per video", flush=True)

    os.chdir(workspace)
    params = load_params(workspace / "params.yaml")
    stand_in = np.zeros((min(16, frames), 8, 8, 3), np.uint8)
    start = time.perf_counter()
    for shard_id in range(sample_shards, shards):
        fill_shard(data, shard_id, stand_in, params)
    checksums.save_checksums()
    rest = [f"{kind}@kinetics-{i}" for i in range(sample_shards, shards) for kind in ("frames", "motion")]
    timed(["dvc", "commit", "-f", *rest], workspace)
    print(f"{len(rest)} stand-in shard stages written and committed in {time.perf_counter() - start:.0f} s", flush=True)

    _, output = timed(["dvc", "repro", "verify@kinetics"], workspace)
    verify_s = stage_seconds(output)["verify@kinetics"]
    status_s, _ = timed(["dvc", "status"], workspace)
    noop_s, noop_output = timed(["dvc", "repro", "verify@kinetics"], workspace)
    assert "Running stage" not in noop_output, "the no-op repro ran a stage"
    reader_s, reader_mb = reader_start(data)
    n_usable = len(json.loads((data / "verified/videos.json").read_text())["videos"])

    n_stages = 2 * shards + 2
    rows = [
        ("videos (usable after verify)", f"{len(files):,} ({n_usable:,})", "full size"),
        ("dataset stage: CSV, index, sha256 of every file", f"{dataset_s:.1f} s", "full size"),
        (
            "index / shard lists",
            f"{megabytes([data / 'dataset/index.json']):.0f} MB / {megabytes((data / 'dataset/shards').glob('*.json')):.0f} MB",
            "full size",
        ),
        (
            "frames stage per video (ffmpeg decode, H.264 encode, HDF5)",
            f"{frames_ms:.1f} ms",
            f"sample: {sample_shards} shards, {sampled:,} videos",
        ),
        ("motion stage per video (flow none: nothing to compute)", f"{motion_ms:.1f} ms", "sample, as above"),
        (
            "frames shard bytes per video (tiny videos)",
            f"{1e6 * sample_frames_mb / sampled:,.0f} B",
            "sample, as above",
        ),
        (
            "frames / motion manifests",
            f"{megabytes((data / 'frames').glob('*.json')):.0f} MB / {megabytes((data / 'motion').glob('*.json')):.0f} MB",
            "full size",
        ),
        ("verify stage", f"{verify_s:.1f} s", "full size"),
        ("verified list", f"{megabytes([data / 'verified/videos.json']):.0f} MB", "full size"),
        (
            "reader start, warm (checksums remembered)",
            f"{reader_s['warm']:.2f} s, peak {reader_mb:.0f} MB",
            "full size",
        ),
        ("reader start, cold (every shard hashed)", f"{reader_s['cold']:.2f} s", "full size, stand-in shard sizes"),
        (f"dvc status ({n_stages} stages)", f"{status_s:.1f} s", "full size"),
        (f"no-op dvc repro verify@kinetics ({n_stages} stages)", f"{noop_s:.1f} s", "full size"),
    ]
    print(f"\nKinetics-400-size run, {shards} shards (goals: {GOALS})")
    print("| measure | this run | scale |\n|---|---|---|")
    for measure, value, scale in rows:
        print(f"| {measure} | {value} | {scale} |")


if __name__ == "__main__":
    main()
