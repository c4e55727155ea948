"""Decode a video with ffmpeg into uint8 RGB frames resized to the stored resolution."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

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


def decode_frames(path: str | Path, height: int, width: int, timeout: float | None = None) -> tuple[np.ndarray, str]:
    """All frames of ``path`` as uint8 RGB, shape (T, height, width, 3).

    Returns (frames, warnings): ``warnings`` is ffmpeg's error output when it decoded frames
    despite errors (a truncated file keeps what it has). Raises DecodeError when no frame
    decodes, or when ffmpeg runs longer than ``timeout`` seconds (a hung file must not stall
    its shard forever).
    """
    args = (
        ffmpeg.input(str(path))
        .video.filter("scale", width, height, flags="bilinear")
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
        .global_args("-nostdin", "-v", "error", "-threads", "1")
        .compile(cmd=ffmpeg_binary())
    )
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DecodeError(f"ffmpeg did not finish within {timeout:g}s") from None
    out, err = proc.stdout, proc.stderr
    frame_bytes = height * width * 3
    n_frames = len(out) // frame_bytes
    if n_frames == 0:
        raise DecodeError(_tail(err) or ("ffmpeg failed" if proc.returncode else "no video frames"))
    frames = np.frombuffer(out, np.uint8, count=n_frames * frame_bytes).reshape(n_frames, height, width, 3)
    return frames, _tail(err)


def _tail(stderr: bytes, lines: int = 3) -> str:
    text = stderr.decode("utf-8", "replace").strip().splitlines()
    return " | ".join(text[-lines:])
