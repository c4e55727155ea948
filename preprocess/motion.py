"""The motion stage: residual frames and TV-L1 flow of one frames shard (CPU pool).

Each video is an independent joblib task reading its frames from the (checksum-verified)
frames shard; the parent process alone writes the motion shard.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from pipeline.params import MotionParams, PoolParams, StorageParams
from pipeline.paths import stage_of
from preprocess.flow import make_tvl1, quantise_flow, to_gray, video_flow
from preprocess.pool import cpu_pool
from preprocess.residual import residual_frames
from preprocess.shards import ShardWriter, checked_manifest, read_rgb, write_manifest

log = logging.getLogger(__name__)


def video_motion(rgb: np.ndarray, motion: MotionParams) -> dict[str, np.ndarray]:
    """Residual and (with ``motion.flow: tvl1``) quantised TV-L1 flow of one video at its stored resolution.

    rgb: (T,H,W,3) uint8. Returns {"res": (T,H,W,3), "u": (T,H,W,1), "v": (T,H,W,1)} uint8,
    without "u" and "v" when ``motion.flow`` is none.
    """
    if motion.flow == "none":
        return {"res": residual_frames(rgb)}
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
    motion: MotionParams, storage: StorageParams, pool: PoolParams,
) -> dict:
    """Residuals and flow of every video of one frames shard into ``shard_path``.

    The frames shard is checked against its manifest first (size and sha256): a corrupt or
    replaced input fails here, naming the file, instead of turning into wrong pixels.
    """
    entries = checked_manifest(frames_manifest, stage_of(frames_manifest, "frames", frames_manifest.stem))["videos"]
    start = time.perf_counter()
    frames_shard = frames_shard.resolve()  # pool workers (on other machines with Dask) need absolute paths
    tasks = (delayed(_motion_task)(frames_shard, e["id"], motion) for e in entries)
    videos, rejects = [], []
    attrs = {"flow": motion.flow, "flow_bound": motion.bound}
    with cpu_pool(pool), ShardWriter(shard_path, storage.encoding, storage.jpeg_quality, attrs) as writer:
        results = Parallel(n_jobs=motion.n_jobs, return_as="generator")(tasks)
        for entry, (modalities, message) in tqdm(zip(entries, results), total=len(entries), desc=f"motion {shard_path.name}"):
            if modalities is None:
                rejects.append({"id": entry["id"], "path": entry["path"], "reason": message})
                continue
            for name, stack in modalities.items():
                writer.add(entry["id"], name, stack)
            videos.append(entry)
    manifest = write_manifest(shard_path, manifest_path, videos, rejects)
    pairs = sum(max(v["frames"] - 1, 0) for v in videos) if motion.flow != "none" else 0
    log.info("motion %s: %d videos, %d %s flow pairs, %d rejected, %.1fs -> %s", shard_path.name, len(videos), pairs,
             motion.flow, len(rejects), time.perf_counter() - start, shard_path)
    return manifest
