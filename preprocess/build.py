"""The CPU pool work of the frames and motion stages, one shard at a time.

Each video is an independent joblib task; results stream back in order and the parent
process alone writes the shard, so a worker crash cannot leave a half-written file.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from pipeline.atomic import read_json
from pipeline.params import FramesParams, MotionParams, StorageParams
from preprocess.decode import DecodeError, decode_frames
from preprocess.flow import make_tvl1, quantise_flow, to_gray, video_flow
from preprocess.residual import residual_frames
from preprocess.shards import ShardWriter, read_frames, write_manifest

log = logging.getLogger(__name__)


def _decode_task(path: Path, height: int, width: int, min_frames: int) -> tuple[np.ndarray | None, str]:
    """(frames, message): frames None with the reason when the video is rejected."""
    cv2.setNumThreads(1)
    try:
        frames, warning = decode_frames(path, height, width)
    except DecodeError as exc:
        return None, f"cannot decode: {exc}"
    if len(frames) < min_frames:
        return None, f"too short: {len(frames)} frames, one clip needs {min_frames}"
    return frames, warning


def extract_frames_shard(
    entries: list[dict], root: Path, shard_path: Path, manifest_path: Path,
    frames: FramesParams, storage: StorageParams,
) -> dict:
    """Decode every video of one shard into ``shard_path``; returns the manifest."""
    start = time.perf_counter()
    tasks = (delayed(_decode_task)(root / e["path"], frames.height, frames.width, frames.min_frames) for e in entries)
    results = Parallel(n_jobs=frames.n_jobs, return_as="generator")(tasks)
    videos, rejects = [], []
    with ShardWriter(shard_path, storage.encoding, storage.jpeg_quality) as writer:
        for entry, (video, message) in tqdm(zip(entries, results), total=len(entries), desc=f"frames {shard_path.name}"):
            if video is None:
                rejects.append({"id": entry["id"], "path": entry["path"], "reason": message})
                continue
            writer.add(entry["id"], "rgb", video)
            record = {**entry, "frames": len(video)}
            if message:
                record["decode_warning"] = message
                log.warning("%s decoded with errors, kept %d frames: %s", entry["path"], len(video), message)
            videos.append(record)
    manifest = write_manifest(shard_path, manifest_path, videos, rejects)
    log.info("frames %s: %d videos, %d frames, %d rejected, %.1fs",
             shard_path, len(videos), sum(v["frames"] for v in videos), len(rejects), time.perf_counter() - start)
    return manifest


def read_rgb(shard_path: Path, video_id: str) -> np.ndarray:
    """All (T,H,W,3) uint8 RGB frames of one video from a frames shard."""
    with h5py.File(shard_path, "r") as f:
        ds = f[f"videos/{video_id}/rgb"]
        return read_frames(ds, f.attrs["encoding"], 3, 0, ds.shape[0])


def video_motion(rgb: np.ndarray, motion: MotionParams) -> dict[str, np.ndarray]:
    """Residual and quantised TV-L1 flow of one video at its stored resolution.

    rgb: (T,H,W,3) uint8. Returns {"res": (T,H,W,3), "u": (T,H,W,1), "v": (T,H,W,1)} uint8.
    """
    flow = video_flow(to_gray(rgb), make_tvl1(motion.tvl1))
    q = quantise_flow(flow, motion.bound)
    return {"res": residual_frames(rgb), "u": q[..., 0:1], "v": q[..., 1:2]}


def _motion_task(shard_path: Path, video_id: str, motion: MotionParams) -> tuple[dict | None, str]:
    # One OpenCV thread per worker: the pool already fills the cores.
    cv2.setNumThreads(1)
    try:
        return video_motion(read_rgb(shard_path, video_id), motion), ""
    except (cv2.error, ValueError) as exc:
        return None, f"motion failed: {exc}"


def compute_motion_shard(
    frames_shard: Path, frames_manifest: Path, shard_path: Path, manifest_path: Path,
    motion: MotionParams, storage: StorageParams,
) -> dict:
    """Residuals and flow of every video of one frames shard into ``shard_path``."""
    start = time.perf_counter()
    entries = read_json(frames_manifest)["videos"]
    tasks = (delayed(_motion_task)(frames_shard, e["id"], motion) for e in entries)
    results = Parallel(n_jobs=motion.n_jobs, return_as="generator")(tasks)
    videos, rejects = [], []
    with ShardWriter(shard_path, storage.encoding, storage.jpeg_quality, {"flow_bound": motion.bound}) as writer:
        for entry, (modalities, message) in tqdm(zip(entries, results), total=len(entries), desc=f"motion {shard_path.name}"):
            if modalities is None:
                rejects.append({"id": entry["id"], "path": entry["path"], "reason": message})
                continue
            for name, stack in modalities.items():
                writer.add(entry["id"], name, stack)
            videos.append(entry)
    manifest = write_manifest(shard_path, manifest_path, videos, rejects)
    pairs = sum(max(v["frames"] - 1, 0) for v in videos)
    log.info("motion %s: %d videos, %d flow pairs, %d rejected, %.1fs",
             shard_path, len(videos), pairs, len(rejects), time.perf_counter() - start)
    return manifest

