"""Cheaper TV-L1 at the same accuracy: every setting tried, against OpenCV's defaults.

Computes OpenCV's default TV-L1 once on consecutive frame pairs from the middle of every real
clip (at the paper's 128x171), then runs each candidate setting on the same pairs and prints
its CPU-seconds per pair, the UCF101 projection, and its mean endpoint error against the
defaults, overall and on the largest-motion clip (``hmdb51/jump_01``). Asserts nothing.

    python bench/tvl1_sweep.py [--realdata ../shared/realdata] [--pairs 6]

TV-L1 runs single-threaded, as in the motion stage's pool workers, so seconds are CPU-seconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import cv2
import numpy as np
from bench_preprocess import (
    OPENCV_DEFAULTS,
    UCF101_FRAMES_PER_VIDEO,
    UCF101_VIDEOS,
    middle_pairs,
    real_clips,
    timed_flow,
)

from pipeline.params import load_params
from pipeline.schema import TVL1Params
from preprocess.decode import decode_frames
from preprocess.flow import endpoint_error

LARGEST_MOTION = "hmdb51/jump_01"
# The flow goals: UCF101 CPU-hours, mean endpoint error vs OpenCV's defaults, and on the largest motion (px).
GOALS = {"cpu_hours": 70.0, "mean_epe": 0.1, "largest_motion_epe": 0.5}


def candidates(configured: TVL1Params) -> dict[str, TVL1Params]:
    """The settings tried: one lever at a time from the configured one, then combinations."""
    c = configured
    r = dataclasses.replace
    return {
        "configured": c,
        "nscales 4": r(c, nscales=4),
        "nscales 3": r(c, nscales=3),
        "scale_step 0.7": r(c, scale_step=0.7),
        "scale_step 0.5": r(c, scale_step=0.5),
        "outer 2": r(c, outer_iterations=2),
        "inner 6": r(c, inner_iterations=6),
        "inner 5": r(c, inner_iterations=5),
        "epsilon 0.01": r(c, epsilon=0.01),
        "epsilon 0.015": r(c, epsilon=0.015),
        "epsilon 0.02": r(c, epsilon=0.02),
        "epsilon 0.03": r(c, epsilon=0.03),
        "epsilon 0.05": r(c, epsilon=0.05),
        "median 3": r(c, median_filtering=3),
        "warps 1, outer 4": r(c, warps=1, outer_iterations=4),
        "scale_step 0.7, inner 6": r(c, scale_step=0.7, inner_iterations=6),
        "scale_step 0.7, outer 2": r(c, scale_step=0.7, outer_iterations=2),
        "scale_step 0.5, inner 6": r(c, scale_step=0.5, inner_iterations=6),
        "epsilon 0.02, scale_step 0.7": r(c, epsilon=0.02, scale_step=0.7),
        "epsilon 0.02, inner 10": r(c, epsilon=0.02, inner_iterations=10),
    }


@click.command()
@click.option("--realdata", type=click.Path(path_type=Path), default=Path("../shared/realdata"))
@click.option("--pairs", type=int, default=6, show_default=True, help="consecutive frame pairs per clip")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
def main(realdata: Path, pairs: int, params_file: str) -> None:
    cv2.setNumThreads(1)
    configured = load_params(params_file).motion.tvl1
    h, w = 128, 171
    grays = {
        f"{clip.parent.name}/{clip.stem}": middle_pairs(decode_frames(clip, h, w).frames, pairs)
        for clip in real_clips(realdata)
    }
    print(f"{len(grays)} clips, {pairs} pairs each, at {h}x{w}; reference: OpenCV's default TV-L1")
    reference, ref_seconds = {}, 0.0
    for name, gray in grays.items():
        reference[name], seconds = timed_flow(gray, OPENCV_DEFAULTS)
        ref_seconds += seconds
    pairs_ucf = UCF101_VIDEOS * (UCF101_FRAMES_PER_VIDEO - 1)
    n_pairs = pairs * len(grays)
    print(
        f"defaults: {ref_seconds / n_pairs:.3f} CPU-s/pair, UCF101 {ref_seconds / n_pairs * pairs_ucf / 3600:.0f} CPU-h\n"
    )
    header = f"{'setting':32s} {'CPU-s/pair':>10s} {'UCF101 CPU-h':>12s} {'mean EPE':>8s} {'worst clip':>10s} {LARGEST_MOTION:>15s}  goals"
    print(header)
    for label, setting in candidates(configured).items():
        seconds, errors = 0.0, {}
        for name, gray in grays.items():
            flow, s = timed_flow(gray, setting)
            seconds += s
            errors[name] = endpoint_error(flow[1:], reference[name][1:])
        per_pair = seconds / n_pairs
        hours = per_pair * pairs_ucf / 3600
        mean_epe = float(np.mean(list(errors.values())))
        largest = errors.get(LARGEST_MOTION, float("nan"))
        met = hours <= GOALS["cpu_hours"] and mean_epe <= GOALS["mean_epe"] and largest <= GOALS["largest_motion_epe"]
        print(
            f"{label:32s} {per_pair:10.3f} {hours:12.0f} {mean_epe:8.3f} {max(errors.values()):10.3f} {largest:15.3f}"
            f"  {'met' if met else '-'}",
            flush=True,
        )


if __name__ == "__main__":
    main()
