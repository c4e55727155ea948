"""TV-L1 optical flow (OpenCV contrib) and its uint8 quantisation.

Flow is stored as (T,H,W,2) uint8 aligned with the frames: entry t is the flow from frame
t-1 to frame t, entry 0 is zero motion. Values are clipped to +-bound pixels and mapped
linearly onto 0..255, so the round-trip error is at most bound/255 per component.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.schema import TVL1Params


def make_tvl1(p: TVL1Params) -> cv2.optflow.DualTVL1OpticalFlow:
    """A configured DualTVL1OpticalFlow instance (create one per worker process)."""
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(  # type: ignore[attr-defined]  # opencv-contrib, not in cv2's stubs
        tau=p.tau,
        lambda_=p.lambda_,
        theta=p.theta,
        nscales=p.nscales,
        warps=p.warps,
        epsilon=p.epsilon,
        innnerIterations=p.inner_iterations,  # sic: OpenCV's keyword is misspelt
        outerIterations=p.outer_iterations,
        scaleStep=p.scale_step,
        gamma=p.gamma,
        medianFiltering=p.median_filtering,
        useInitialFlow=p.use_initial_flow,
    )
    return tvl1


def to_gray(frames: np.ndarray) -> np.ndarray:
    """(T,H,W,3) uint8 RGB -> (T,H,W) uint8 luma."""
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def video_flow(gray: np.ndarray, tvl1: cv2.optflow.DualTVL1OpticalFlow) -> np.ndarray:
    """Flow between consecutive frames of one video.

    gray: (T,H,W) uint8. Returns (T,H,W,2) float32 in pixels, entry 0 zero. When ``tvl1`` was
    made with use_initial_flow, each pair starts from the previous pair's flow (motion is
    smooth in time), which lets fewer warps and iterations reach the same accuracy.
    """
    t, h, w = gray.shape
    flow = np.zeros((t, h, w, 2), np.float32)
    for i in range(1, t):
        # calc() writes into its third argument; seeding it with the previous flow is the warm start.
        flow[i] = tvl1.calc(gray[i - 1], gray[i], flow[i - 1].copy())
    return flow


def quantise_flow(flow: np.ndarray, bound: float) -> np.ndarray:
    """Float flow in pixels -> uint8: clip to +-bound, map [-bound, bound] onto [0, 255]."""
    clipped = np.clip(flow, -bound, bound)
    return np.round((clipped + bound) * (255.0 / (2 * bound))).astype(np.uint8)


def dequantise_flow(q: np.ndarray, bound: float) -> np.ndarray:
    """uint8 -> float32 flow in pixels (inverse of quantise_flow up to bound/255)."""
    return q.astype(np.float32) * np.float32(2 * bound / 255.0) - np.float32(bound)


def endpoint_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance between two (...,2) flow fields, in pixels."""
    return float(np.linalg.norm(a - b, axis=-1).mean())


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """(H,W,2) flow -> (H,W,3) uint8 RGB colour wheel: hue = direction, value = magnitude."""
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    scale = max_magnitude if max_magnitude else max(float(magnitude.max()), 1e-6)
    hsv = np.zeros((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)  # OpenCV hue is 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
