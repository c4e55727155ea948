"""Decode a video with ffmpeg into uint8 RGB frames resized to the stored resolution, and tell
when its frames are not evenly spaced in time."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

import ffmpeg
import numpy as np


class DecodeError(RuntimeError):
    """The video could not be decoded into any frame."""


@functools.cache
def ffmpeg_binary() -> str:
    """The ffmpeg on PATH if there is one, else the binary that imageio-ffmpeg ships."""
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class Decoded(NamedTuple):
    frames: np.ndarray  # (T, height, width, 3) uint8 RGB, one per decoded frame
    warning: str  # ffmpeg's errors when it decoded frames despite them ("" when clean)
    timing_warning: str  # "" for a constant frame rate, else what varies (frames stay as decoded)


def decode_frames(path: str | Path, height: int, width: int, timeout: float | None = None) -> Decoded:
    """All frames of ``path`` as uint8 RGB, shape (T, height, width, 3), and what to warn about.

    ``warning`` is ffmpeg's error output when it decoded frames despite errors (a truncated file
    keeps what it has). ``timing_warning`` says when the frames are not evenly spaced in time
    (variable frame rate): every decoded frame is kept, one after the other, so a clip of such a
    video spans uneven time; the frames stage records the warning per video. Raises DecodeError
    when no frame decodes, or when ffmpeg runs longer than ``timeout`` seconds (a hung file must
    not stall its shard forever).
    """
    binary = ffmpeg_binary()
    with tempfile.TemporaryDirectory(prefix="iic-decode-") as scratch:
        times_file = Path(scratch) / "pts.txt"
        timing = (
            {"stats_enc_pre": str(times_file), "stats_enc_pre_fmt": "{pts} {tb}"} if reports_frame_times(binary) else {}
        )
        args = (
            ffmpeg.input(str(path))
            .video.filter("scale", width, height, flags="bilinear")
            .output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough", **timing)
            .global_args("-nostdin", "-v", "error", "-threads", "1")
            .compile(cmd=binary)
        )
        try:
            proc = subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DecodeError(f"ffmpeg did not finish within {timeout:g}s") from None
        times = times_file.read_text() if times_file.is_file() else ""
    out, err = proc.stdout, proc.stderr
    frame_bytes = height * width * 3
    n_frames = len(out) // frame_bytes
    if n_frames == 0:
        raise DecodeError(_tail(err) or ("ffmpeg failed" if proc.returncode else "no video frames"))
    frames = np.frombuffer(out, np.uint8, count=n_frames * frame_bytes).reshape(n_frames, height, width, 3)
    return Decoded(frames, _tail(err), uneven_timing(times))


# A frame interval outside [1 - t, 1 + t] x the median interval marks a variable frame rate. Half
# an interval: timestamp rounding (a 1/12800 time base at 30 fps alternates 426 and 427 ticks)
# stays far inside it, and a dropped frame (twice the interval) is outside.
TIMING_TOLERANCE = 0.5


def uneven_timing(stats: str) -> str:
    """ffmpeg's per-frame ``{pts} {tb}`` lines -> "" when evenly spaced, else a one-line warning."""
    ticks, seconds_per_tick = [], 0.0
    for line in stats.splitlines():
        pts, _, tb = line.partition(" ")
        if pts.lstrip("-").isdigit() and "/" in tb:
            numerator, denominator = tb.split("/")
            ticks.append(int(pts))
            seconds_per_tick = int(numerator) / int(denominator)
    if len(ticks) < 3:
        return ""
    intervals = np.diff(np.asarray(ticks, dtype=np.float64)) * seconds_per_tick
    median = float(np.median(intervals))
    if median <= 0 or np.all(np.abs(intervals / median - 1) <= TIMING_TOLERANCE):
        return ""
    return (
        f"variable frame rate: frame intervals from {1000 * intervals.min():.0f} to {1000 * intervals.max():.0f} ms "
        f"(median {1000 * median:.0f} ms); frames are kept as decoded, one after the other"
    )


@functools.cache
def reports_frame_times(binary: str) -> bool:
    """Whether this ffmpeg writes per-frame timestamps (``-stats_enc_pre``, FFmpeg 6.1 and newer).

    An older ffmpeg on PATH still decodes; it only cannot tell a variable frame rate.
    """
    try:
        help_text = subprocess.run([binary, "-hide_banner", "-h", "full"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "stats_enc_pre" in help_text.stdout


def _tail(stderr: bytes, lines: int = 3) -> str:
    text = stderr.decode("utf-8", "replace").strip().splitlines()
    return " | ".join(text[-lines:])
