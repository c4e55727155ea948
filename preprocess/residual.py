"""The residual frame, defined once for pretraining, fine-tuning and features.

residual_t = frame_t - frame_{t-1} for frames in [0, 1], mapped to [0, 1] as (d + 1) / 2.
It is computed on the whole video, so frame 0 has residual 0.5 (d = 0): upstream BestJuly/IIC computed it
on the clip with a wrap-around at the first frame, an artefact this removes.
Stored as uint8 ``round((d255 + 255) / 2)`` where d255 is the difference in uint8 units, so
that ``stored / 255`` is the [0, 1] residual up to 0.5/255.
"""

from __future__ import annotations

import numpy as np


def residual_frames(frames: np.ndarray) -> np.ndarray:
    """(T,H,W,C) uint8 frames of one video -> (T,H,W,C) uint8 residuals, frame 0 -> 128."""
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise ValueError(f"expected (T,H,W,C) uint8, got {frames.shape} {frames.dtype}")
    as_int = frames.astype(np.int16)
    diff = np.zeros_like(as_int)
    diff[1:] = as_int[1:] - as_int[:-1]  # in [-255, 255]
    # (d + 255) is even or odd; rounding half up keeps 0 -> 128 and maps [-255, 255] onto [0, 255].
    return ((diff + 256) // 2).astype(np.uint8)


def residual_to_unit(stored: np.ndarray) -> np.ndarray:
    """Stored uint8 residual -> float32 in [0, 1], approximately (d + 1) / 2."""
    return stored.astype(np.float32) / 255.0
