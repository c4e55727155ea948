"""The frames stage: decode one shard's videos with ffmpeg into a frames shard (CPU pool).

Each video is an independent joblib task; results stream back in order and the parent
process alone writes the shard, so a worker crash cannot leave a half-written file.
Undecodable and too-short videos are recorded in the manifest's rejects; the share of
rejects is judged over the whole dataset by the verify stage.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from pipeline.atomic import read_json
from pipeline.schema import FramesParams, PoolParams, StorageParams
from preprocess.decode import DecodeError, decode_frames
from preprocess.pool import cpu_pool
from preprocess.shards import ShardWriter, write_manifest

log = logging.getLogger(__name__)


def _decode_task(
    path: Path, height: int, width: int, min_frames: int, timeout: float
) -> tuple[np.ndarray | None, dict[str, str] | str]:
    """(frames, warnings by manifest key) for a kept video; (None, the reason) for a rejected one."""
    cv2.setNumThreads(1)
    try:
        decoded = decode_frames(path, height, width, timeout)
    except DecodeError as exc:
        return None, f"cannot decode: {exc}"
    if len(decoded.frames) < min_frames:
        return None, f"too short: {len(decoded.frames)} frames, one clip needs {min_frames}"
    warnings = {"decode_warning": decoded.warning, "timing_warning": decoded.timing_warning}
    return decoded.frames, {key: text for key, text in warnings.items() if text}


def extract_frames_shard(
    entries: list[dict],
    root: Path,
    shard_path: Path,
    manifest_path: Path,
    frames: FramesParams,
    storage: StorageParams,
    pool: PoolParams,
) -> dict:
    """Decode every video of one shard into ``shard_path``; returns the manifest.

    entries: index records of this shard's videos (``id``, ``path`` relative to ``root``, ...).
    """
    start = time.perf_counter()
    root = root.resolve()  # pool workers (on other machines with Dask) need absolute paths
    tasks = (
        delayed(_decode_task)(root / e["path"], frames.height, frames.width, frames.min_frames, frames.decode_timeout)
        for e in entries
    )
    videos, rejects = [], []
    with cpu_pool(pool), ShardWriter(shard_path, storage) as writer:
        results = Parallel(n_jobs=frames.n_jobs, return_as="generator")(tasks)
        for entry, (video, message) in tqdm(
            zip(entries, results, strict=True), total=len(entries), desc=f"frames {shard_path.name}"
        ):
            if video is None:
                rejects.append({"id": entry["id"], "path": entry["path"], "reason": message})
                continue
            writer.add(entry["id"], "rgb", video)
            videos.append({**entry, "frames": len(video), **message})
            for key, text in message.items():
                log.warning("%s (%s, %d frames kept): %s", entry["path"], key, len(video), text)
    manifest = write_manifest(shard_path, manifest_path, videos, rejects)
    log.info(
        "frames %s: %d videos, %d frames, %d with a variable frame rate, %d rejected (%s), %.1fs -> %s",
        shard_path.name,
        len(videos),
        sum(v["frames"] for v in videos),
        sum("timing_warning" in v for v in videos),
        len(rejects),
        "; ".join(f"{r['path']}: {r['reason']}" for r in rejects[:3]) or "none",
        time.perf_counter() - start,
        shard_path,
    )
    return manifest


def frames_stage(
    shard_list: Path,
    root: Path,
    shard_path: Path,
    manifest_path: Path,
    frames: FramesParams,
    storage: StorageParams,
    pool: PoolParams,
) -> dict:
    """The dvc stage ``frames@k``: the shard's video list (from the dataset stage) into a shard."""
    return extract_frames_shard(read_json(shard_list), root, shard_path, manifest_path, frames, storage, pool)
