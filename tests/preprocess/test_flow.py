from __future__ import annotations

import cv2
import numpy as np
import pytest

from preprocess.decode import decode_frames
from preprocess.flow import dequantise_flow, endpoint_error, flow_to_color, make_tvl1, quantise_flow, video_flow
from tests.conftest import REAL_CLIPS


@pytest.mark.parametrize("bound", [20.0, 7.5])
def test_quantisation_round_trip_error_is_at_most_bound_over_255(bound, rng):
    flow = rng.uniform(-bound, bound, (1000, 2)).astype(np.float32)
    back = dequantise_flow(quantise_flow(flow, bound), bound)
    assert np.abs(back - flow).max() <= bound / 255 + 1e-5


def test_quantisation_clips_and_maps_the_ends():
    q = quantise_flow(np.array([-100.0, -20.0, 0.0, 20.0, 100.0]), 20.0)
    assert q.tolist() == [0, 0, 128, 255, 255]  # 0 -> 127.5 rounds to even 128
    assert q.dtype == np.uint8


def _translated_pair(dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    clip = next(p for p in REAL_CLIPS if p.name == "v_Shotput_g05_c02.avi")
    frame = cv2.cvtColor(decode_frames(clip, 128, 171).frames[20], cv2.COLOR_RGB2GRAY)
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(
        frame, shift, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    return frame, moved


@pytest.mark.parametrize("dx, dy", [(1.5, -0.75), (-3.0, 2.0)])
def test_tvl1_recovers_a_known_shift_of_a_real_frame(params, dx, dy):
    first, second = _translated_pair(dx, dy)
    flow = video_flow(np.stack([first, second]), make_tvl1(params.motion.tvl1))[1]
    interior = flow[12:-12, 12:-12]  # borders see reflected content that did not move
    error = endpoint_error(interior, np.array([dx, dy], np.float32))
    assert error < 0.5, f"mean endpoint error {error:.3f} px"


def test_flow_of_a_static_pair_is_near_zero(params):
    first, _ = _translated_pair(0, 0)
    flow = video_flow(np.stack([first, first]), make_tvl1(params.motion.tvl1))
    assert np.abs(flow[0]).max() == 0  # entry 0 is defined as zero motion
    assert np.linalg.norm(flow[1], axis=-1).mean() < 0.05


def test_flow_colour_wheel_encodes_direction():
    right = flow_to_color(np.tile(np.float32([3, 0]), (4, 4, 1)))
    left = flow_to_color(np.tile(np.float32([-3, 0]), (4, 4, 1)))
    still = flow_to_color(np.zeros((4, 4, 2), np.float32), max_magnitude=1)
    assert not np.array_equal(right, left)
    assert still.max() == 0  # no motion is black
