"""How far each way of storing residuals is from the exact residual, and what it costs.

For every real clip at 128x171 (up to ``--frames`` frames each), against two references:

- the exact residual, (f_t - f_{t-1} + 1) / 2 in float of the decoded video frames;
- upstream BestJuly/IIC's residual, the same of the JPEG-decoded RGB frames it trains on.

Each row is one way to keep them: the one residual definition (``preprocess/residual.py``) of
the frames as stored (raw, or JPEG q90 as ``storage.encoding: jpeg`` stores them), itself
stored raw, lzf or JPEG q90, or computed from the stored frames when a clip is read. Prints the maximum and mean absolute error in 1/255 units and the
stored bytes per residual frame; asserts nothing.

    python bench/bench_residuals.py [--frames 60]
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import click
import h5py
import numpy as np
from bench_preprocess import real_clips
from storage_settings import storage

from preprocess.decode import decode_frames
from preprocess.residual import residual_frames, residual_to_unit
from preprocess.shards import ShardWriter, read_frames

H, W, QUALITY = 128, 171, 90
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def exact_residual(frames: np.ndarray) -> np.ndarray:
    """(T,H,W,3) uint8 -> float64 (d + 1) / 2 with frame 0 at 0.5 (no rounding)."""
    as_float = frames.astype(np.float64) / 255
    diff = np.zeros_like(as_float)
    diff[1:] = as_float[1:] - as_float[:-1]
    return (diff + 1) / 2


def stored(stack: np.ndarray, encoding: str, folder: Path) -> tuple[np.ndarray, int]:
    """A (T,H,W,3) uint8 stack written as ``encoding`` and read back, and its size on disk in bytes."""
    path = folder / f"{encoding}.h5"
    with ShardWriter(path, dataclasses.replace(storage(encoding), jpeg_quality=QUALITY)) as writer:
        writer.add("v", "res", stack)
    with h5py.File(path) as f:
        ds = f["videos/v/res"]
        back = read_frames(ds, encoding, 3, 0, len(stack))
    return back, path.stat().st_size


def jpeg_frames(frames: np.ndarray, folder: Path) -> np.ndarray:
    """The RGB frames as ``storage.encoding: jpeg`` stores them (q90), decoded."""
    return stored(frames, "jpeg", folder)[0]


@click.command()
@click.option("--frames", "n_frames", default=60, show_default=True, help="frames per clip")
def main(n_frames: int) -> None:
    clips = real_clips(REALDATA)
    rows = {
        "raw frames, residuals raw (storage.encoding raw)": ("raw", "raw"),
        "raw frames, residuals lzf (storage.encoding lzf)": ("raw", "lzf"),
        "JPEG frames, residuals stored JPEG q90": ("jpeg", "jpeg"),
        "JPEG frames, residuals stored lzf": ("jpeg", "lzf"),
        "JPEG frames, residuals from them at read time (storage.encoding jpeg)": ("jpeg", None),
    }
    errors = {name: {"exact": [], "upstream": [], "bytes": 0, "frames": 0} for name in rows}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for clip in clips:
            frames = decode_frames(clip, H, W).frames[:n_frames]
            exact = exact_residual(frames)
            as_jpeg = jpeg_frames(frames, folder)
            upstream = exact_residual(as_jpeg)
            for name, (frame_storage, residual_storage) in rows.items():
                source = as_jpeg if frame_storage == "jpeg" else frames
                residuals = residual_frames(source)
                back, size = (residuals, 0) if residual_storage is None else stored(residuals, residual_storage, folder)
                ours = residual_to_unit(back).astype(np.float64)
                errors[name]["exact"].append(np.abs(ours - exact)[1:] * 255)  # frame 0 is 0.5 in both
                errors[name]["upstream"].append(np.abs(ours - upstream)[1:] * 255)
                errors[name]["bytes"] += size
                errors[name]["frames"] += len(frames)
    total = sum(len(e) for e in errors[next(iter(rows))]["exact"])
    print(f"{len(clips)} real clips at {H}x{W}, up to {n_frames} frames each ({total} residual frames checked)\n")
    print(
        "| storage | vs exact: max / mean (1/255) | vs upstream's (JPEG RGB): max / mean | bytes per residual frame |"
    )
    print("|---|---|---|---|")
    for name, e in errors.items():
        exact_all, upstream_all = (
            np.concatenate([x.ravel() for x in e["exact"]]),
            np.concatenate([x.ravel() for x in e["upstream"]]),
        )
        print(
            f"| {name} | {exact_all.max():.2f} / {exact_all.mean():.3f} | {upstream_all.max():.2f} / "
            f"{upstream_all.mean():.3f} | {e['bytes'] / e['frames']:,.0f} |"
        )


if __name__ == "__main__":
    main()
