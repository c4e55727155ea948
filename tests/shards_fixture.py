"""Tiny real HDF5 shards (frames + motion) of synthetic moving-bar videos, for training tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from preprocess.residual import residual_frames
from preprocess.shards import ShardWriter, write_manifest


def make_tiny_shards(folder: Path, n_videos: int = 12, frames: int = 20, size: int = 36, n_classes: int = 3) -> Path:
    """Videos whose class is the direction of a moving bar; half train, half test. Returns folder."""
    rng = np.random.default_rng(0)
    frames_dir, motion_dir = folder / "frames", folder / "motion"
    records = []
    with ShardWriter(frames_dir / "0.h5", "raw", 90) as fw, ShardWriter(motion_dir / "0.h5", "raw", 90, {"flow_bound": 20.0}) as mw:
        for i in range(n_videos):
            label = i % n_classes
            video = np.full((frames, size, size, 3), rng.integers(0, 120), np.uint8)
            for t in range(frames):
                x = (3 + t * (label + 1)) % size
                video[t, :, x : x + 3] = 230
            vid = f"C{label}/v{i}"
            fw.add(vid, "rgb", video)
            mw.add(vid, "res", residual_frames(video))
            flow = np.full((frames, size, size, 1), 128, np.uint8)
            mw.add(vid, "u", flow + np.uint8(label))
            mw.add(vid, "v", flow)
            records.append({"id": vid, "label": label, "class": f"C{label}", "frames": frames,
                            "split": "train" if i < n_videos * 2 // 3 else "test"})
    write_manifest(frames_dir / "0.h5", frames_dir / "0.json", records, [])
    write_manifest(motion_dir / "0.h5", motion_dir / "0.json", records, [])
    return folder
