"""A UCF101-size dry run of the preprocessing DAG: 13,320 tiny videos, 32 shards, real DVC.

Writes tiny videos (``--width`` x ``--height``, ``--frames`` frames: a few distinct ones, copied
under every name) at UCF101's real paths from the official split-1 lists in ``--splits`` (all
of them, or an even sample of ``--videos``), makes
a workspace with this repository's tracked files and a params.yaml whose one dataset is that
folder, then runs ``dvc repro verify@ucf101`` (the dataset stage, 32 frames and 32 motion
stages, verify) and prints what it measured: dataset-stage time, frames and motion time per
video, shard and manifest sizes, the reader's start-up time and memory, ``dvc status`` and
no-op ``dvc repro`` times, and the same projected to Kinetics-400 (240,000 videos, 256 shards).
Asserts nothing.

    python bench/scale_dry_run.py [--videos 13320] [--shards 32] [--work /tmp/iic-scale]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import click
import numpy as np
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline import checksums  # noqa: E402  (the repository is the import root)
from preprocess.demo import write_video  # noqa: E402
from preprocess.verified import open_verified  # noqa: E402

GOALS = "no-op dvc repro < 15 s at 32 shards; reader start-up < 2 s; per-video overhead < 50 ms"
KINETICS_VIDEOS, KINETICS_SHARDS = 240_000, 256


def write_lists(splits: Path, limit: int, lists: Path) -> list[str]:
    """UCF101's split-1 lists, every video or an even sample of ``limit`` of them, into ``lists``.

    Returns the listed paths (the file-name quirk fixed: the files are ``HandstandPushups``).
    """
    lists.mkdir(parents=True, exist_ok=True)
    shutil.copy(splits / "classInd.txt", lists / "classInd.txt")
    lines = {
        name: [line for line in (splits / name).read_text().splitlines() if line.strip()]
        for name in ("trainlist01.txt", "testlist01.txt")
    }
    total = sum(len(v) for v in lines.values())
    step = max(1, total // limit)
    paths = []
    for name, listed in lines.items():
        kept = listed[::step]
        (lists / name).write_text("".join(f"{line}\n" for line in kept))
        paths += [line.split()[0].replace("HandStandPushups", "HandstandPushups") for line in kept]
    return paths


def write_videos(paths: list[str], root: Path, frames: int, height: int, width: int, variants: int = 8) -> float:
    """A few distinct tiny videos (a square drifting over noise), each copied under many names."""
    start = time.perf_counter()
    sources = []
    rng = np.random.default_rng(0)
    for i in range(variants):
        clip = np.empty((frames, height, width, 3), np.uint8)
        background = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        for t in range(frames):
            clip[t] = np.roll(background, (i % 3 - 1) * t, axis=1)
            clip[t, 4:12, (2 + t + i) % (width - 8) : (2 + t + i) % (width - 8) + 8] = 255
        source = root.parent / f"variant{i}.avi"
        write_video(clip, source, 25)
        sources.append(source)
    for i, rel in enumerate(paths):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[i % variants], target)
    return time.perf_counter() - start


def make_workspace(
    work: Path,
    name: str,
    dataset: dict,
    shards: int,
    height: int,
    width: int,
    frames: int,
    overrides: dict | None = None,
) -> Path:
    """The repository's tracked files and a params.yaml whose one dataset is ``name`` (a
    ``datasets`` entry's format, root, lists, ...); ``overrides``: {section: {key: value}}."""
    workspace = work / "project"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, tracked.split("\0")):
        if (REPO / rel).is_file() and not rel.startswith("artifacts/"):
            (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, workspace / rel)
    (workspace / "dvc.lock").unlink(missing_ok=True)
    # Round-trip, so the workspace's params.yaml keeps its comments: DVC parses the whole file
    # once per stage, and its size is part of what a no-op repro costs.
    yaml = YAML()
    params = yaml.load((workspace / "params.yaml").read_text())
    source = next(iter(params["datasets"].values()))
    params["datasets"] = {name: {**source, **dataset}}
    params["evaluate"]["datasets"] = [name]
    params["pretrain"]["datasets"] = [name]
    params["monitor"]["dataset"] = name
    params["shards"]["ids"] = list(range(shards))
    params["frames"].update(height=height, width=width, min_frames=min(16, frames))
    params["clip"].update(length=min(16, frames), crop=min(height, width) // 2)
    for section, values in (overrides or {}).items():
        params[section].update(values)
    with open(workspace / "params.yaml", "w") as f:
        yaml.dump(params, f)
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "dry run"],
    ):
        subprocess.run(command, cwd=workspace, check=True, capture_output=True)
    return workspace


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return time.perf_counter() - start, proc.stdout + proc.stderr


def reader_start(data: Path) -> tuple[dict[str, float], float]:
    """Seconds to open the verified reader of ``data`` (artifacts/data/<name>), cold (no checksum
    remembered: every shard is read and hashed) and warm (as every stage after the first), and
    the peak memory of a warm open in MB (traced in a further open: tracing slows the parse).
    Run from the workspace (the checksum record is under it)."""

    def open_once() -> float:
        start = time.perf_counter()
        reader = open_verified(data / "verified/videos.json", data / "frames", data / "motion")
        seconds = time.perf_counter() - start
        reader.close()
        checksums.save_checksums()
        checksums._MEMORY.clear()  # the next open is a new process: it reads the record
        return seconds

    checksums._cache_file().unlink(missing_ok=True)
    checksums._MEMORY.clear()
    seconds = {"cold": open_once(), "warm": min(open_once() for _ in range(3))}
    tracemalloc.start()
    open_once()
    peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak_mb


def stage_seconds(output: str) -> dict[str, float]:
    """'stage frames@ucf101-3 done in 12.3s' lines of the stages' logs."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"stage (\S+) done in ([\d.]+)s", output)}


@click.command()
@click.option("--videos", type=int, default=13_320, show_default=True)
@click.option("--shards", type=int, default=32, show_default=True)
@click.option("--frames", type=int, default=20, show_default=True)
@click.option("--height", type=int, default=24, show_default=True)
@click.option("--width", type=int, default=32, show_default=True)
@click.option("--splits", type=click.Path(path_type=Path), default=REPO.parent / "shared/splits/ucf101")
@click.option("--work", type=click.Path(path_type=Path), default=Path("/tmp/iic-scale"))
def main(videos: int, shards: int, frames: int, height: int, width: int, splits: Path, work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    root, lists = work / "UCF-101", work / "ucfTrainTestlist"
    paths = write_lists(splits, videos, lists)
    seconds = write_videos(paths, root, frames, height, width)
    print(f"{len(paths)} videos of {frames} frames at {width}x{height} written in {seconds:.0f} s")
    ucf101 = {"format": "ucf101", "root": str(root), "lists": str(lists), "split": 1}
    workspace = make_workspace(work, "ucf101", ucf101, shards, height, width, frames)

    wall, output = timed(["dvc", "repro", "verify@ucf101"], workspace)
    stages = stage_seconds(output)
    frames_s = sum(v for k, v in stages.items() if k.startswith("frames@"))
    motion_s = sum(v for k, v in stages.items() if k.startswith("motion@"))
    n_stages = len(stages)
    data = workspace / "artifacts/data/ucf101"
    verified = json.loads((data / "verified/videos.json").read_text())
    n_usable = len(verified["videos"])

    def size(pattern: str) -> float:
        return sum(p.stat().st_size for p in data.glob(pattern)) / 1e6

    status_s, _ = timed(["dvc", "status"], workspace)
    noop_s, noop_output = timed(["dvc", "repro", "verify@ucf101"], workspace)
    assert "Running stage" not in noop_output, "the no-op repro ran a stage"

    os.chdir(workspace)
    reader_s, reader_mb = reader_start(data)
    shard_mb = size("frames/*.h5") + size("motion/*.h5")

    rows = [
        ("videos (usable after verify)", f"{len(paths):,} ({n_usable:,})", ""),
        ("dvc repro verify@ucf101, wall", f"{wall:.0f} s for {n_stages} stages", ""),
        ("dataset stage (index + sha256 of every file)", f"{stages.get('dataset@ucf101', float('nan')):.1f} s", ""),
        (
            "frames stages, per video (ffmpeg start-up, decode, HDF5 write)",
            f"{1000 * frames_s / len(paths):.1f} ms",
            f"Kinetics: {frames_s / len(paths) * KINETICS_VIDEOS / 3600:.1f} h of stage time",
        ),
        (
            "motion stages, per video (TV-L1 at this size, residuals, HDF5)",
            f"{1000 * motion_s / len(paths):.1f} ms",
            "",
        ),
        ("frames shards / manifests", f"{size('frames/*.h5'):.1f} MB / {size('frames/*.json'):.2f} MB", ""),
        ("motion shards / manifests", f"{size('motion/*.h5'):.1f} MB / {size('motion/*.json'):.2f} MB", ""),
        (
            "index / verified list",
            f"{size('dataset/index.json'):.2f} MB / {size('verified/videos.json'):.2f} MB",
            f"Kinetics: about {size('dataset/index.json') * KINETICS_VIDEOS / len(paths):.0f} MB index",
        ),
        (
            "reader start-up, checksums remembered (every stage after the first)",
            f"{reader_s['warm']:.2f} s, peak {reader_mb:.0f} MB",
            f"Kinetics: about {reader_s['warm'] * KINETICS_VIDEOS / len(paths):.1f} s (grows with the videos)",
        ),
        (
            "reader start-up, cold (every shard read and hashed)",
            f"{reader_s['cold']:.2f} s for {shard_mb:.0f} MB",
            f"{shard_mb / reader_s['cold']:.0f} MB/s: UCF101 as jpeg shards (about 29 GB) {29e3 * reader_s['cold'] / shard_mb:.0f} s once",
        ),
        ("dvc status", f"{status_s:.1f} s", ""),
        (
            "no-op dvc repro verify@ucf101",
            f"{noop_s:.1f} s",
            f"Kinetics ({2 * KINETICS_SHARDS + 2} stages): about {noop_s * (2 * KINETICS_SHARDS + 2) / (2 * shards + 2):.0f} s",
        ),
    ]
    print(f"\nUCF101-size dry run, {shards} shards (goals: {GOALS})")
    print("| measure | this run | projection |\n|---|---|---|")
    for measure, value, projection in rows:
        print(f"| {measure} | {value} | {projection} |")


if __name__ == "__main__":
    main()
