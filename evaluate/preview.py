"""A PNG strip of what preprocessing made: RGB, residual and flow (colour wheel) per frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.atomic import atomic_path
from pipeline.errors import InputError
from preprocess.flow import dequantise_flow, flow_to_color
from preprocess.shards import ShardReader


def preview_strip(reader: ShardReader, video_id: str, n_frames: int, flow_bound: float | None) -> np.ndarray:
    """(R*H, n_frames*W, 3) uint8: rows RGB, residual and (unless ``flow_bound`` is None: no
    flow computed) flow; frames evenly spaced over the video."""
    total = reader.num_frames(video_id)
    picks = np.linspace(1, total - 1, n_frames).round().astype(int)  # frame 0 has no motion
    rows: dict[str, list[np.ndarray]] = {"rgb": [], "res": []}
    flows = []
    for t in picks:
        rows["rgb"].append(reader.read_clip(video_id, t, 1, "rgb")[:, 0].transpose(1, 2, 0))
        rows["res"].append(reader.read_clip(video_id, t, 1, "res")[:, 0].transpose(1, 2, 0))
        if flow_bound is None:
            continue
        u = reader.read_clip(video_id, t, 1, "u")[0, 0]
        v = reader.read_clip(video_id, t, 1, "v")[0, 0]
        flows.append(dequantise_flow(np.stack([u, v], -1), flow_bound))
    if flow_bound is None:
        return np.concatenate([np.concatenate(r, axis=1) for r in rows.values()], axis=0)
    # One brightness scale for the whole strip, robust to a few outliers, so frames compare.
    scale = max(float(np.percentile(np.linalg.norm(np.stack(flows), axis=-1), 99)), 0.5)
    rows["flow"] = [flow_to_color(f, max_magnitude=scale) for f in flows]
    return np.concatenate([np.concatenate(r, axis=1) for r in rows.values()], axis=0)


def write_preview(verified: Path, frames_dir: Path, motion_dir: Path, video_id: str, out: Path, n_frames: int) -> None:
    """PNG strip of one verified video (``verified``: the verify stage's video list)."""
    from preprocess.verified import open_verified

    reader = open_verified(verified, frames_dir, motion_dir)
    if video_id not in reader.videos:
        raise InputError(f"{video_id} is not a usable video (see {verified} for ids)")
    strip = preview_strip(reader, video_id, n_frames, reader.flow_bound(video_id))
    with atomic_path(out) as tmp:
        _ok, buf = cv2.imencode(".png", cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
        tmp.write_bytes(buf.tobytes())
