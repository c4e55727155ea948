"""Tiny real HDF5 shards (frames + motion) of synthetic moving-bar videos, for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.atomic import write_json
from pipeline.schema import H264Params, StorageParams
from preprocess.dataset import shard_of
from preprocess.residual import residual_frames
from preprocess.shards import ShardWriter, write_manifest


def storage(encoding: str, jpeg_quality: int = 90) -> StorageParams:
    """Storage settings of one encoding (h264 at params.yaml's values)."""
    return StorageParams(encoding, jpeg_quality, H264Params(crf=18, gop=8, preset="medium"))


def bar_video(label: int, frames: int, size: int, background: int) -> np.ndarray:
    """(T,H,W,3) uint8: a bright bar moving right at ``label + 1`` pixels a frame."""
    video = np.full((frames, size, size, 3), background, np.uint8)
    for t in range(frames):
        x = (3 + t * (label + 1)) % size
        video[t, :, x : x + 3] = 230
    return video


def _write_shard(
    frames_dir: Path, motion_dir: Path, shard_id: int, records: list[dict], videos: dict, frames_rejects: list[dict]
) -> None:
    with (
        ShardWriter(frames_dir / f"{shard_id}.h5", storage("raw")) as fw,
        ShardWriter(motion_dir / f"{shard_id}.h5", storage("raw"), {"flow_bound": 20.0}) as mw,
    ):
        for record in records:
            video = videos[record["id"]]
            fw.add(record["id"], "rgb", video)
            mw.add(record["id"], "res", residual_frames(video))
            flow = np.full((*video.shape[:3], 1), 128, np.uint8)
            mw.add(record["id"], "u", flow + np.uint8(record["label"]))
            mw.add(record["id"], "v", flow)
    write_manifest(frames_dir / f"{shard_id}.h5", frames_dir / f"{shard_id}.json", records, frames_rejects)
    write_manifest(motion_dir / f"{shard_id}.h5", motion_dir / f"{shard_id}.json", records, [])


def make_tiny_shards(folder: Path, n_videos: int = 12, frames: int = 20, size: int = 36, n_classes: int = 3) -> Path:
    """Videos whose class is the direction of a moving bar; 2/3 train, 1/3 test, in shard 0. Returns folder."""
    rng = np.random.default_rng(0)
    records, videos = [], {}
    for i in range(n_videos):
        label = i % n_classes
        vid = f"C{label}/v{i}"
        videos[vid] = bar_video(label, frames, size, int(rng.integers(0, 120)))
        records.append(
            {
                "id": vid,
                "path": f"{vid}.avi",
                "label": label,
                "class": f"C{label}",
                "frames": frames,
                "split": "train" if i < n_videos * 2 // 3 else "test",
                "shard": 0,
            }
        )
    _write_shard(folder / "frames", folder / "motion", 0, records, videos, [])
    return folder


def make_sharded_dataset(
    folder: Path,
    n_videos: int,
    n_shards: int,
    rejected: frozenset[int] = frozenset(),
    seed: int = 0,
    frames: int = 20,
    size: int = 24,
) -> dict[str, Path]:
    """An indexed dataset as the dataset, frames and motion stages leave it.

    Videos in ``rejected`` (by number) are listed by the index but rejected by the frames stage.
    Returns the paths {"index", "rejects", "frames", "motion"}.
    """
    rng = np.random.default_rng(seed)
    out = {
        "index": folder / "dataset/index.json",
        "rejects": folder / "dataset/rejects.json",
        "frames": folder / "frames",
        "motion": folder / "motion",
    }
    index, videos = [], {}
    for i in range(n_videos):
        label = i % 3
        vid = f"C{label}/v{i:03d}"
        index.append(
            {
                "id": vid,
                "path": f"{vid}.avi",
                "class": f"C{label}",
                "label": label,
                "split": "test" if i % 4 == 3 else "train",
                "shard": shard_of(vid, n_shards),
            }
        )
        videos[vid] = bar_video(label, frames, size, int(rng.integers(0, 120)))
    write_json(out["index"], index)
    write_json(out["rejects"], [])
    for shard_id in range(n_shards):
        entries = [e for e in index if e["shard"] == shard_id]
        bad = {f"C{i % 3}/v{i:03d}" for i in rejected}
        kept = [{**e, "frames": frames} for e in entries if e["id"] not in bad]
        rejects = [
            {"id": e["id"], "path": e["path"], "reason": "cannot decode: test"} for e in entries if e["id"] in bad
        ]
        _write_shard(out["frames"], out["motion"], shard_id, kept, videos, rejects)
    return out
