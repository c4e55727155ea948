"""The procedural demo dataset: real video files whose classes differ by motion only.

Every video shows one object over a static background. The class decides how the object
moves (direction, rotation, scale change); the appearance (background colours and texture,
object shape, colour and size) is drawn per *group* and shared by all classes of that group,
so no single frame tells the class. Train and test are split by group, as in UCF101, so
retrieval above chance needs temporal features. Each video is seeded by its own name: adding
videos never changes the existing ones.
"""
from __future__ import annotations

import dataclasses
import logging
import zlib
from pathlib import Path

import cv2
import ffmpeg
import numpy as np
from tqdm import tqdm

from pipeline.atomic import atomic_path
from pipeline.params import DemoParams
from preprocess.decode import ffmpeg_binary

log = logging.getLogger(__name__)

# name -> (dx, dy, rotation, scale rate) per frame, in units of the clip's speed.
MOTIONS: dict[str, tuple[float, float, float, float]] = {
    "MoveRight": (1, 0, 0, 0),
    "MoveLeft": (-1, 0, 0, 0),
    "MoveDown": (0, 1, 0, 0),
    "MoveUp": (0, -1, 0, 0),
    "RotateClockwise": (0, 0, 1, 0),
    "RotateCounterclockwise": (0, 0, -1, 0),
    "Grow": (0, 0, 0, 1),
    "Shrink": (0, 0, 0, -1),
}
SHAPES = ("triangle", "square", "bar", "ell")


@dataclasses.dataclass(frozen=True)
class DemoVideo:
    class_name: str
    label: int
    group: int
    clip: int
    split: str

    @property
    def rel_path(self) -> str:
        return f"{self.class_name}/v_{self.class_name}_g{self.group:02d}_c{self.clip:02d}.avi"


def demo_videos(p: DemoParams) -> list[DemoVideo]:
    """The demo's videos: video i has class i % classes, so ``videos`` + 1 adds exactly one."""
    if not 2 <= p.classes <= len(MOTIONS):
        raise ValueError(f"demo.classes must be 2..{len(MOTIONS)}, got {p.classes}")
    names = list(MOTIONS)[: p.classes]
    videos = []
    for i in range(p.videos):
        label, j = i % p.classes, i // p.classes
        group, clip = j // p.clips_per_group + 1, j % p.clips_per_group + 1
        split = "test" if group % p.test_every == 0 else "train"
        videos.append(DemoVideo(names[label], label, group, clip, split))
    return videos


def _rng(seed: int, *keys: object) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in keys)])


def _shape_points(shape: str, size: float) -> np.ndarray:
    """Polygon of a shape centred at 0 with no rotational symmetry below 90 degrees."""
    s = size
    polygons = {
        "triangle": [(-s, s * 0.8), (s, s * 0.8), (0, -s)],
        "square": [(-s, -s), (s, -s), (s, s), (-s, s)],
        "bar": [(-s, -s * 0.35), (s, -s * 0.35), (s, s * 0.35), (-s, s * 0.35)],
        "ell": [(-s, -s), (-s * 0.2, -s), (-s * 0.2, s * 0.3), (s, s * 0.3), (s, s), (-s, s)],
    }
    return np.array(polygons[shape], np.float64)


def render_video(video: DemoVideo, p: DemoParams) -> np.ndarray:
    """(frames, height, width, 3) uint8 RGB frames of one demo video."""
    look = _rng(p.seed, "group", video.group)  # appearance: per group, independent of class
    h, w = p.height, p.width
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    c0, c1 = look.uniform(0, 255, 3), look.uniform(0, 255, 3)
    angle = look.uniform(0, np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    freq, phase = look.uniform(4, 12, 2), look.uniform(0, 2 * np.pi, 2)
    texture = 20 * np.sin(freq[0] * 2 * np.pi * xx + phase[0]) * np.sin(freq[1] * 2 * np.pi * yy + phase[1])
    background = np.clip(c0 + (c1 - c0) * ramp + texture[..., None], 0, 255)
    shape = SHAPES[look.integers(len(SHAPES))]
    colour = tuple(float(c) for c in look.uniform(0, 255, 3))
    size = look.uniform(0.12, 0.18) * min(h, w)

    clip_rng = _rng(p.seed, "clip", video.rel_path)  # per-video placement, speed and noise
    dx, dy, rot, grow = MOTIONS[video.class_name]
    speed = clip_rng.uniform(0.8, 1.2) * min(h, w) / (2.0 * p.frames)  # pixels per frame
    travel_x, travel_y = dx * speed * p.frames, dy * speed * p.frames
    margin = 1.2 * size * (1 + 0.6 * abs(grow))
    x0 = clip_rng.uniform(margin + max(0, -travel_x), w - margin - max(0, travel_x))
    y0 = clip_rng.uniform(margin + max(0, -travel_y), h - margin - max(0, travel_y))
    theta0 = clip_rng.uniform(0, 2 * np.pi)
    omega = rot * clip_rng.uniform(0.06, 0.1)  # radians per frame
    scale_rate = grow * 0.5 / p.frames

    frames = np.empty((p.frames, h, w, 3), np.uint8)
    points = _shape_points(shape, size)
    for t in range(p.frames):
        theta = theta0 + omega * t
        scale = 1 + scale_rate * (t - (p.frames - 1) / 2)
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        polygon = points * scale @ rotation.T + (x0 + dx * speed * t, y0 + dy * speed * t)
        canvas = background.copy()
        cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], colour, cv2.LINE_AA, shift=4)
        canvas += clip_rng.normal(0, 3, canvas.shape)  # sensor noise, so frames are not too clean
        frames[t] = np.clip(canvas, 0, 255).astype(np.uint8)
    return frames


def write_video(frames: np.ndarray, path: Path, fps: int) -> None:
    """Encode (T,H,W,3) uint8 RGB as MPEG-4 Part 2 AVI (UCF101's codec), bit-exact and atomic."""
    t, h, w, _ = frames.shape
    with atomic_path(path) as tmp:
        (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
            .output(str(tmp), format="avi", vcodec="mpeg4", pix_fmt="yuv420p", **{"q:v": 3})
            .global_args("-nostdin", "-v", "error", "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact")
            .overwrite_output()
            .run(cmd=ffmpeg_binary(), input=frames.tobytes(), capture_stdout=True, capture_stderr=True)
        )


def generate_demo(p: DemoParams, videos_dir: Path, lists_dir: Path) -> list[DemoVideo]:
    """Write the demo videos and their UCF101-style lists (split 1)."""
    videos = demo_videos(p)
    for video in tqdm(videos, desc="demo videos"):
        write_video(render_video(video, p), videos_dir / video.rel_path, p.fps)
    names = list(MOTIONS)[: p.classes]
    lists_dir.mkdir(parents=True, exist_ok=True)
    (lists_dir / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
    train = [v for v in videos if v.split == "train"]
    test = [v for v in videos if v.split == "test"]
    (lists_dir / "trainlist01.txt").write_text("".join(f"{v.rel_path} {v.label + 1}\n" for v in train))
    (lists_dir / "testlist01.txt").write_text("".join(f"{v.rel_path}\n" for v in test))
    log.info("demo: %d videos (%d train, %d test), %d classes in %s", len(videos), len(train), len(test), len(names), videos_dir)
    return videos
