from __future__ import annotations

import numpy as np
import pytest

from preprocess.residual import residual_frames, residual_to_unit


def test_residual_analytic_values():
    frames = np.array([10, 10, 255, 0, 1], np.uint8).reshape(5, 1, 1, 1)
    stored = residual_frames(frames)[:, 0, 0, 0]
    # frame 0: no previous frame -> d = 0 -> 128; then d = 0, +245, -255, +1
    assert stored.tolist() == [128, 128, (245 + 256) // 2, 0, 128]


def test_residual_matches_the_unit_definition(rng):
    frames = rng.integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    unit = residual_to_unit(residual_frames(frames))
    x = frames.astype(np.float64) / 255
    expected = np.concatenate([np.full_like(x[:1], 0.5), (x[1:] - x[:-1] + 1) / 2])
    assert np.abs(unit - expected).max() <= 0.5 / 255 + 1e-6
    assert unit.min() >= 0 and unit.max() <= 1


def test_residual_is_computed_on_the_video_not_the_clip(rng):
    # A clip cut from the stored video keeps the true previous frame: no wrap-around at its start.
    frames = rng.integers(0, 256, (8, 2, 2, 3), dtype=np.uint8)
    video_residual = residual_frames(frames)
    assert not np.array_equal(video_residual[3:], residual_frames(frames[3:]))
    np.testing.assert_array_equal(video_residual[4:], residual_frames(frames[3:])[1:])


def test_residual_rejects_float_input():
    with pytest.raises(ValueError):
        residual_frames(np.zeros((2, 2, 2, 3), np.float32))
