"""The motion stage: residual frames and TV-L1 flow of one frames shard.

``motion.backend: opencv``: each video is an independent joblib task (CPU pool, or Dask)
reading its frames from the (checksum-verified) frames shard. ``motion.backend: torch``: the
stage process reads ``motion.torch.batch`` videos at a time and runs the PyTorch TV-L1 on
their frame pairs in batches, on the GPU when there is one. Either way the parent process
alone writes the motion shard, in the same format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from pipeline.paths import stage_of
from pipeline.schema import MotionParams, PoolParams, StorageParams
from preprocess.flow import make_tvl1, quantise_flow, to_gray, video_flow
from preprocess.pool import cpu_pool
from preprocess.residual import residual_frames
from preprocess.shards import RESIDUALS_FROM_RGB, ShardWriter, checked_manifest, read_rgb, write_manifest

log = logging.getLogger(__name__)


def video_motion(rgb: np.ndarray, motion: MotionParams, residuals: bool) -> dict[str, np.ndarray]:
    """What the motion shard stores of one video at its stored resolution: the residuals (when
    ``residuals``: storage encodings whose readers do not derive them from the frames) and, with
    ``motion.flow: tvl1``, the quantised TV-L1 flow.

    rgb: (T,H,W,3) uint8. Returns {"res": (T,H,W,3), "u": (T,H,W,1), "v": (T,H,W,1)} uint8,
    without "u" and "v" when ``motion.flow`` is none and without "res" when not ``residuals``.
    """
    if motion.flow == "none":
        return {"res": residual_frames(rgb)} if residuals else {}
    return motion_modalities(rgb, video_flow(to_gray(rgb), make_tvl1(motion.tvl1)), motion.bound, residuals)


def motion_modalities(rgb: np.ndarray, flow: np.ndarray, bound: float, residuals: bool) -> dict[str, np.ndarray]:
    """rgb (T,H,W,3) uint8 and its flow (T,H,W,2) float32 px -> {"res": (T,H,W,3) when
    ``residuals``, "u": (T,H,W,1), "v": (T,H,W,1)} uint8."""
    q = quantise_flow(flow, bound)
    return {**({"res": residual_frames(rgb)} if residuals else {}), "u": q[..., 0:1], "v": q[..., 1:2]}


def _motion_task(shard_path: Path, video_id: str, motion: MotionParams, residuals: bool) -> tuple[dict | None, str]:
    # One OpenCV thread per worker: the pool already fills the cores.
    cv2.setNumThreads(1)
    try:
        return video_motion(read_rgb(shard_path, video_id), motion, residuals), ""
    except (cv2.error, ValueError) as exc:
        return None, f"motion failed: {exc}"


def _opencv_results(
    frames_shard: Path, entries: list[dict], motion: MotionParams, residuals: bool
) -> Iterator[tuple[dict | None, str]]:
    """(modalities or None, rejection reason) per entry, in order, from the joblib pool."""
    tasks = (delayed(_motion_task)(frames_shard, e["id"], motion, residuals) for e in entries)
    yield from Parallel(n_jobs=motion.n_jobs, return_as="generator")(tasks)


def _torch_results(
    frames_shard: Path, entries: list[dict], motion: MotionParams, residuals: bool
) -> Iterator[tuple[dict | None, str]]:
    """(modalities or None, rejection reason) per entry, in order, from the batched PyTorch TV-L1."""
    # Imported here so that the OpenCV pool's workers, which import this module, never load torch.
    import torch

    from pipeline.runtime import resolve_device
    from preprocess.tvl1_torch import videos_flow

    device = resolve_device(motion.torch.device, "motion.torch.device")
    if device.type == "cpu" and motion.n_jobs > 0:
        torch.set_num_threads(motion.n_jobs)  # motion.n_jobs is the stage's CPU budget whichever the backend
    log.info(
        "motion: PyTorch TV-L1 on %s, %d pairs per call, compile=%s", device, motion.torch.batch, motion.torch.compile
    )
    for start in range(0, len(entries), motion.torch.batch):
        chunk = entries[start : start + motion.torch.batch]
        videos: dict[str, np.ndarray] = {}
        reasons: dict[str, str] = {}
        for entry in chunk:
            try:
                videos[entry["id"]] = read_rgb(frames_shard, entry["id"])
            except ValueError as exc:
                reasons[entry["id"]] = f"motion failed: {exc}"
        grays = [to_gray(rgb) for rgb in videos.values()]
        flows = dict(
            zip(videos, videos_flow(grays, motion.tvl1, device, motion.torch.batch, motion.torch.compile), strict=True)
        )
        for entry in chunk:
            video_id = entry["id"]
            if video_id in reasons:
                yield None, reasons[video_id]
            else:
                yield motion_modalities(videos.pop(video_id), flows.pop(video_id), motion.bound, residuals), ""


def compute_motion_shard(
    frames_shard: Path,
    frames_manifest: Path,
    shard_path: Path,
    manifest_path: Path,
    motion: MotionParams,
    storage: StorageParams,
    pool: PoolParams,
) -> dict:
    """Residuals and flow of every video of one frames shard into ``shard_path``.

    The frames shard is checked against its manifest first (size and sha256): a corrupt or
    replaced input fails here, naming the file, instead of turning into wrong pixels.
    """
    entries = checked_manifest(frames_manifest, stage_of(frames_manifest, "frames", frames_manifest.stem))["videos"]
    start = time.perf_counter()
    frames_shard = frames_shard.resolve()  # pool workers (on other machines with Dask) need absolute paths
    batched = motion.backend == "torch" and motion.flow != "none"
    videos, rejects = [], []
    attrs: dict[str, str | float] = {"flow": motion.flow, "flow_bound": motion.bound, "flow_backend": motion.backend}
    derived = storage.encoding in RESIDUALS_FROM_RGB
    if derived:
        attrs["residuals"] = "rgb"  # readers compute them from the frames shard
    with cpu_pool(pool), ShardWriter(shard_path, storage, attrs) as writer:
        # Readers derive residuals from JPEG frames: computing them here would be thrown away.
        if derived and motion.flow == "none":
            # Nothing to store but the videos' names: decoding their frames would be all the cost.
            results: Iterator[tuple[dict | None, str]] = iter([({}, "")] * len(entries))
        else:
            run = _torch_results if batched else _opencv_results
            results = run(frames_shard, entries, motion, residuals=not derived)
        for entry, (modalities, message) in tqdm(
            zip(entries, results, strict=True), total=len(entries), desc=f"motion {shard_path.name}"
        ):
            if modalities is None:
                rejects.append({"id": entry["id"], "path": entry["path"], "reason": message})
                continue
            for name, stack in modalities.items():
                writer.add(entry["id"], name, stack)
            videos.append(entry)
    manifest = write_manifest(shard_path, manifest_path, videos, rejects)
    pairs = sum(max(v["frames"] - 1, 0) for v in videos) if motion.flow != "none" else 0
    log.info(
        "motion %s: %d videos, %d %s flow pairs (%s), %d rejected, %.1fs -> %s",
        shard_path.name,
        len(videos),
        pairs,
        motion.flow,
        motion.backend,
        len(rejects),
        time.perf_counter() - start,
        shard_path,
    )
    return manifest
