"""A cheap stand-in for TV-L1 in the benchmarks: Farneback flow, quantised like the real one.

Read speed and compressed size depend on the statistics of a uint8 flow stack, not on its
accuracy, and TV-L1 over every benchmark frame would take minutes on 2 cores.
"""

from __future__ import annotations

import cv2
import numpy as np

from preprocess.flow import quantise_flow, to_gray


def stand_in_flow(frames: np.ndarray, bound: float) -> np.ndarray:
    """(T,H,W,3) uint8 RGB -> (T,H,W,2) uint8 quantised flow, entry 0 zero motion."""
    gray = to_gray(frames)
    flow = np.zeros((*gray.shape, 2), np.float32)
    for t in range(1, len(gray)):
        flow[t] = cv2.calcOpticalFlowFarneback(gray[t - 1], gray[t], None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return quantise_flow(flow, bound)
