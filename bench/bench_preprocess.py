"""Preprocessing benchmark on the real clips: decode speed, TV-L1 cost and accuracy, storage.

Prints what it measures; asserts nothing. Usage:
    python bench/bench_preprocess.py [--realdata ../shared/realdata] [--pairs 6]
TV-L1 runs single-threaded (cv2.setNumThreads(1)), as in the motion stage's worker processes,
so seconds per pair are CPU-seconds per pair.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
import cv2
import numpy as np
import torch
from stand_in_flow import stand_in_flow

from pipeline.params import load_params
from pipeline.schema import TVL1Params
from preprocess.decode import decode_frames
from preprocess.flow import endpoint_error, make_tvl1, to_gray, video_flow
from preprocess.residual import residual_frames
from preprocess.shards import ShardReader, ShardWriter, write_manifest
from preprocess.tvl1_torch import videos_flow

UCF101_VIDEOS, UCF101_FRAMES_PER_VIDEO = 13_320, 186
OPENCV_DEFAULTS = TVL1Params(
    tau=0.25,
    lambda_=0.15,
    theta=0.3,
    nscales=5,
    warps=5,
    epsilon=0.01,
    inner_iterations=30,
    outer_iterations=10,
    scale_step=0.8,
    gamma=0.0,
    median_filtering=5,
    use_initial_flow=False,
)


def real_clips(realdata: Path) -> list[Path]:
    """Every real clip (.avi, .mp4) under ``realdata``, in a stable order."""
    return sorted(q for q in realdata.rglob("*") if q.suffix in (".avi", ".mp4"))


def middle_pairs(frames: np.ndarray, pairs: int) -> np.ndarray:
    """Grey levels of ``pairs`` consecutive frame pairs from the middle of a video: (T,H,W,3) -> (pairs+1,H,W) uint8."""
    mid = len(frames) // 2
    return to_gray(frames[mid : mid + pairs + 1])


def timed_flow(gray: np.ndarray, p: TVL1Params) -> tuple[np.ndarray, float]:
    start = time.process_time()
    flow = video_flow(gray, make_tvl1(p))
    return flow, time.process_time() - start


def torch_tvl1_rate(
    grays: list[np.ndarray], p: TVL1Params, device: torch.device, batch: int, compiled: bool = False
) -> tuple[float, list[np.ndarray]]:
    """Wall-clock pairs per second of the batched PyTorch TV-L1 over these videos, and their flows.

    One small call first, so that CUDA start-up, compilation and the allocator's first growth are not timed.
    """
    videos_flow([g[:2] for g in grays[:batch]], p, device, batch, compiled)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    flows = videos_flow(grays, p, device, batch, compiled)  # returns CPU arrays: the transfer back is timed too
    seconds = time.perf_counter() - start
    return sum(len(g) - 1 for g in grays) / seconds, flows


@click.command()
@click.option("--realdata", type=click.Path(path_type=Path), default=Path("../shared/realdata"))
@click.option("--pairs", type=int, default=6, show_default=True, help="consecutive frame pairs per clip for TV-L1")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
def main(realdata: Path, pairs: int, params_file: str) -> None:
    cv2.setNumThreads(1)
    p = load_params(params_file)
    h, w = 128, 171  # the paper's stored resolution, whatever the demo uses
    clips = real_clips(realdata)
    print(f"{len(clips)} real clips under {realdata}; stored resolution {h}x{w}")

    n_frames, decode_s, videos = 0, 0.0, {}
    for clip in clips:
        start = time.perf_counter()
        frames = decode_frames(clip, h, w).frames
        decode_s += time.perf_counter() - start
        n_frames += len(frames)
        videos[clip] = frames
    print(
        f"decode: {n_frames} frames in {decode_s:.1f}s wall = {n_frames / decode_s:.0f} frames/s (one ffmpeg at a time)"
    )

    configured = p.motion.tvl1
    rows, grays, opencv = [], [], []  # the pairs and the configured OpenCV flow, kept for the torch backend below
    for clip, frames in videos.items():
        gray = middle_pairs(frames, pairs)
        ref, ref_s = timed_flow(gray, OPENCV_DEFAULTS)
        ours, ours_s = timed_flow(gray, configured)
        grays.append(gray)
        opencv.append(ours)
        epe = endpoint_error(ours[1:], ref[1:])
        magnitude = float(np.linalg.norm(ref[1:], axis=-1).mean())
        rows.append((clip, ref_s / pairs, ours_s / pairs, epe, magnitude))
    print(f"\nTV-L1 at {h}x{w}, {pairs} consecutive pairs from the middle of each clip")
    print(f"{'clip':40s} {'default s/pair':>14s} {'configured s/pair':>17s} {'EPE px':>7s} {'|flow| px':>9s}")
    for clip, ref_s, ours_s, epe, magnitude in rows:
        print(f"{clip.parent.name + '/' + clip.name:40s} {ref_s:14.3f} {ours_s:17.3f} {epe:7.3f} {magnitude:9.2f}")
    ref_mean = np.mean([r[1] for r in rows])
    ours_mean = np.mean([r[2] for r in rows])
    epe_mean = np.mean([r[3] for r in rows])
    pairs_ucf = UCF101_VIDEOS * (UCF101_FRAMES_PER_VIDEO - 1)
    print(
        f"mean CPU-s per pair: default {ref_mean:.3f}, configured {ours_mean:.3f} ({ref_mean / ours_mean:.1f}x faster)"
    )
    print(f"mean endpoint error of configured vs default parameters: {epe_mean:.3f} px")
    print(
        f"projected UCF101 TV-L1 ({pairs_ucf:,} pairs): default {ref_mean * pairs_ucf / 3600:.0f} CPU-hours, "
        f"configured {ours_mean * pairs_ucf / 3600:.0f} CPU-hours"
    )

    # motion.backend: torch, the same configured parameters, the same pairs.
    opencv_s = sum(r[2] for r in rows) * pairs  # CPU-seconds of the configured OpenCV run above
    n_pairs = pairs * len(grays)
    print(
        f"\nPyTorch TV-L1 (motion.backend: torch), configured parameters, {n_pairs} pairs in batches of "
        f"{p.motion.torch.batch}; OpenCV single-threaded: {n_pairs / opencv_s:.1f} pairs/s"
    )
    cores = torch.get_num_threads()
    devices = [("cpu", 1, False), ("cpu", 1, True), ("cpu", cores, False), ("cpu", cores, True)]
    devices += [("cuda", 0, False), ("cuda", 0, True)] if torch.cuda.is_available() else []
    for name, threads, compiled in devices:
        if threads:
            torch.set_num_threads(threads)
        rate, flows = torch_tvl1_rate(grays, configured, torch.device(name), p.motion.torch.batch, compiled)
        epe = np.mean([endpoint_error(f[1:], r[1:]) for f, r in zip(flows, opencv, strict=True)])
        label = f"{name}, {threads} thread{'s' if threads > 1 else ''}" if threads else name
        label += ", compiled" if compiled else ""
        print(
            f"  {label:28s} {rate:8.1f} pairs/s  mean EPE vs OpenCV (same parameters) {epe:.4f} px  "
            f"UCF101 {pairs_ucf / rate / 3600:.1f} h"
        )

    print("\nstorage per frame at 128x171 (over the first 64 frames of every clip)")
    sample = {f"c/{i}": f[:64] for i, f in enumerate(videos.values())}
    frames_total = sum(len(f) for f in sample.values())
    tmp = Path("/tmp/iic_bench_storage")
    tmp.mkdir(exist_ok=True)
    # Each modality once per video, whatever the encoding.
    stacks = {"rgb": sample, "res": {vid: residual_frames(f) for vid, f in sample.items()}}
    flows = {vid: stand_in_flow(f, p.motion.bound) for vid, f in sample.items()}
    stacks["u"] = {vid: q[..., 0:1] for vid, q in flows.items()}
    stacks["v"] = {vid: q[..., 1:2] for vid, q in flows.items()}
    for encoding in ("raw", "lzf", "jpeg", "h264"):
        sizes = {}
        for modality, videos_of_modality in stacks.items():
            path = tmp / f"{encoding}-{modality}.h5"
            with ShardWriter(path, dataclasses.replace(p.storage, encoding=encoding)) as writer:
                for vid, data in videos_of_modality.items():
                    writer.add(vid, modality, data)
            sizes[modality] = path.stat().st_size / frames_total
        total = sum(sizes.values())
        ucf_gb = total * UCF101_VIDEOS * UCF101_FRAMES_PER_VIDEO / 1e9
        print(
            f"{encoding:5s}: "
            + ", ".join(f"{m} {b / 1000:.1f} KB" for m, b in sizes.items())
            + f"; all {total / 1000:.1f} KB/frame -> UCF101 about {ucf_gb:.0f} GB"
        )
        shard = tmp / encoding
        shard.mkdir()
        (tmp / f"{encoding}-rgb.h5").rename(shard / "0.h5")
        write_manifest(shard / "0.h5", shard / "0.json", [{"id": k, "frames": len(v)} for k, v in sample.items()], [])
        reader = ShardReader(shard, None, [0])
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        n = 200
        for _ in range(n):
            vid = list(sample)[rng.integers(len(sample))]
            t0 = int(rng.integers(0, len(sample[vid]) - 16))
            reader.read_clip(vid, t0, 16, "rgb", crop=(8, 29, 112, 112))
        print(f"       read 16x112x112 rgb clips: {n / (time.perf_counter() - start):.0f} clips/s (one process)")
        reader.close()


if __name__ == "__main__":
    main()
