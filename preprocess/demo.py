"""The procedural demo datasets: real video files whose classes differ by motion only.

Every video shows one object over a textured background, and the class is the motion of the
whole scene, as a moving camera makes it (drifting in one of four directions, rolling
either way, zooming in or out); the appearance (background colours and texture, object shape, colour and size) is drawn
per *group* and shared by all classes of that group, so no single frame tells the class. Train and test are split by group, as in UCF101, so
retrieval above chance needs temporal features. Each video is seeded by its own name: adding
videos never changes the existing ones.

The default experiment has two: ``demo`` (UCF101's lists, camera drifts and rolls) to pretrain
and evaluate on, and ``demo_transfer`` (HMDB51's per-class split files, another seed's
appearances, zooms and diagonal drifts) to evaluate the transfer on, as UCF101 -> HMDB51.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import cv2
import ffmpeg
import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from pipeline.atomic import atomic_path
from pipeline.errors import ConfigError
from pipeline.schema import DemoParams
from preprocess.decode import ffmpeg_binary

log = logging.getLogger(__name__)

# name -> (dx, dy, rotation, zoom): the sign of each motion component of the class.
MOTIONS: dict[str, tuple[float, float, float, float]] = {
    "DriftRight": (1, 0, 0, 0),
    "DriftLeft": (-1, 0, 0, 0),
    "DriftDown": (0, 1, 0, 0),
    "DriftUp": (0, -1, 0, 0),
    "RollClockwise": (0, 0, 1, 0),
    "RollCounterclockwise": (0, 0, -1, 0),
    "ZoomIn": (0, 0, 0, 1),
    "ZoomOut": (0, 0, 0, -1),
    "DriftUpRight": (1, -1, 0, 0),
    "DriftDownLeft": (-1, 1, 0, 0),
    "DriftDownRight": (1, 1, 0, 0),
    "DriftUpLeft": (-1, -1, 0, 0),
}
SHAPES = ("triangle", "square", "bar", "ell")


@dataclasses.dataclass(frozen=True)
class DemoVideo:
    class_name: str
    label: int
    group: int
    clip: int
    split: str
    layout: str = "ucf101"

    @property
    def rel_path(self) -> str:
        # Both keep the group in the name (_gNN_cNN), so fine-tuning holds out whole groups.
        if self.layout == "hmdb51":
            return f"{self.class_name}/{self.class_name.lower()}_g{self.group:02d}_c{self.clip:02d}.avi"
        return f"{self.class_name}/v_{self.class_name}_g{self.group:02d}_c{self.clip:02d}.avi"


def demo_videos(p: DemoParams) -> list[DemoVideo]:
    """The demo's videos: video i has class i % classes, so ``videos`` + 1 adds exactly one.

    Groups 1, 2, ... hold ``clips_per_group`` clips of every class; every ``test_every``-th is a
    test group. Then ``extra_test_groups`` more groups, all test: they grow the test split (and
    so narrow its intervals) without touching a train video or the cost of pretraining.
    """
    unknown = [m for m in p.motions if m not in MOTIONS]
    if unknown or len(set(p.motions)) != len(p.motions) or len(p.motions) < 2:
        raise ConfigError(f"demo motions: need 2 or more different names of {', '.join(MOTIONS)}; got {p.motions}")
    per_group = len(p.motions) * p.clips_per_group
    videos = []
    for i in range(p.videos):
        label, j = i % len(p.motions), i // len(p.motions)
        group, clip = j // p.clips_per_group + 1, j % p.clips_per_group + 1
        split = "test" if group % p.test_every == 0 else "train"
        videos.append(DemoVideo(p.motions[label], label, group, clip, split, p.layout))
    first_extra = -(-p.videos // per_group) + 1  # the group after the last (possibly partial) one
    for i in range(p.extra_test_groups * per_group):
        label, j = i % len(p.motions), i // len(p.motions)
        group, clip = first_extra + j // p.clips_per_group, j % p.clips_per_group + 1
        videos.append(DemoVideo(p.motions[label], label, group, clip, "test", p.layout))
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


def _texture(look: np.random.Generator) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A smooth procedural background f(x, y) -> (..., 3), defined on the whole plane."""
    c0, c1 = look.uniform(0, 255, 3), look.uniform(0, 255, 3)
    angle = look.uniform(0, np.pi)
    freq, phase = look.uniform(0.04, 0.1, 2), look.uniform(0, 2 * np.pi, 2)  # cycles per pixel
    blobs = look.uniform(-70, 70, (8, 2))
    blob_colour = look.uniform(-60, 60, (8, 3))
    blob_radius = look.uniform(8, 20, 8)

    def texture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ramp = 0.5 + (np.cos(angle) * x + np.sin(angle) * y) / 200
        out = c0 + (c1 - c0) * np.clip(ramp, 0, 1)[..., None]
        out = (
            out
            + (25 * np.sin(2 * np.pi * freq[0] * x + phase[0]) * np.sin(2 * np.pi * freq[1] * y + phase[1]))[..., None]
        )
        for (bx, by), colour, radius in zip(blobs, blob_colour, blob_radius, strict=True):
            out = out + colour * np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * radius**2))[..., None]
        return out

    return texture


DOT_FIELD = 200  # dots cover the scene square [-DOT_FIELD, DOT_FIELD]^2 (px): every frame of every motion


def _dot_layer(look: np.random.Generator, n_dots: int) -> tuple[np.ndarray, np.ndarray]:
    """(colour (S,S,3) float, alpha (S,S) float in [0, 1]) of ``n_dots`` small discs of the scene,
    on a raster of the square [-DOT_FIELD, DOT_FIELD]^2 at one pixel per scene unit."""
    size = 2 * DOT_FIELD + 1
    colour, alpha = np.zeros((size, size, 3), np.float32), np.zeros((size, size), np.float32)
    for _ in range(n_dots):
        x, y = look.uniform(0, size, 2)
        radius = look.uniform(1.5, 3.5)
        centre = (round(float(x) * 16), round(float(y) * 16))  # 4 fractional bits (shift=4)
        cv2.circle(
            colour,
            centre,
            round(float(radius) * 16),
            tuple(float(c) for c in look.uniform(0, 255, 3)),
            -1,
            cv2.LINE_AA,
            4,
        )
        cv2.circle(alpha, centre, round(float(radius) * 16), 1.0, -1, cv2.LINE_AA, 4)
    return colour, alpha


def render_video(video: DemoVideo, p: DemoParams) -> np.ndarray:
    """(frames, height, width, 3) uint8 RGB frames of one demo video.

    The class is a motion of the whole scene, as a camera would make it: a translation, a
    rotation or a zoom about the frame centre. The background texture and the object (shape,
    colour, size) come from the group, the placement from the (group, clip) shot, and the speed and
    sensor noise from the video.
    """
    look = _rng(p.seed, "group", video.group)  # appearance: per group, independent of class
    h, w = p.height, p.width
    texture = _texture(look)
    shape = SHAPES[look.integers(len(SHAPES))]
    colour = tuple(float(c) for c in look.uniform(0, 255, 3))
    size = look.uniform(0.15, 0.22) * min(h, w)  # half-extent of the object

    # The placement is the same for every class of a (group, clip) shot: one scene filmed with
    # different camera motions, so that no static cue (not even a layout) tells the classes apart.
    shot = _rng(p.seed, "shot", video.group, video.clip)
    origin = shot.uniform(-40, 40, 2)  # where in the texture the shot starts
    centre = shot.uniform([-0.15 * w, -0.15 * h], [0.15 * w, 0.15 * h])  # object, relative to the frame centre
    theta0 = shot.uniform(0, 2 * np.pi)

    clip_rng = _rng(p.seed, "clip", video.rel_path)  # per-video speed and sensor noise
    dx, dy, rot, zoom = MOTIONS[video.class_name]
    speed = p.speed * clip_rng.uniform(0.012, 0.018) * w  # pixels per frame for translations
    omega = p.speed * rot * clip_rng.uniform(0.025, 0.035)  # radians per frame
    zoom_rate = p.speed * zoom * clip_rng.uniform(0.015, 0.022)  # log-scale per frame

    dots = _dot_layer(_rng(p.seed, "dots", video.group), p.dots) if p.dots else None  # per group, like the texture
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    xs, ys = xs - (w - 1) / 2, ys - (h - 1) / 2  # frame coordinates about the centre
    points = _shape_points(shape, size)
    frames = np.empty((p.frames, h, w, 3), np.uint8)
    for t in range(p.frames):
        angle, scale = omega * t, np.exp(zoom_rate * (t - (p.frames - 1) / 2))
        shift = np.array([dx, dy]) * speed * t
        cos, sin = np.cos(angle), np.sin(angle)
        # Scene -> frame: x' = scale * R(angle) x + shift; sample the texture at the inverse.
        u, v = (xs - shift[0]) / scale, (ys - shift[1]) / scale
        scene_x, scene_y = cos * u + sin * v + origin[0], -sin * u + cos * v + origin[1]
        canvas = texture(scene_x, scene_y)
        if dots is not None:  # high-contrast texture that moves with the scene: motion any 3x3 filter sees
            map_x, map_y = (scene_x + DOT_FIELD).astype(np.float32), (scene_y + DOT_FIELD).astype(np.float32)
            dot_colour = cv2.remap(dots[0], map_x, map_y, cv2.INTER_LINEAR)
            dot_alpha = cv2.remap(dots[1], map_x, map_y, cv2.INTER_LINEAR)[..., None]
            canvas = canvas * (1 - dot_alpha) + dot_colour * dot_alpha
        rotation = np.array([[np.cos(theta0), -np.sin(theta0)], [np.sin(theta0), np.cos(theta0)]])
        scene = points @ rotation.T + centre
        frame_points = scale * scene @ np.array([[cos, -sin], [sin, cos]]).T + shift + [(w - 1) / 2, (h - 1) / 2]
        cv2.fillPoly(canvas, [np.round(frame_points * 16).astype(np.int32)], colour, cv2.LINE_AA, shift=4)
        canvas += clip_rng.normal(0, 3, canvas.shape)  # sensor noise, so frames are not too clean
        frames[t] = np.clip(canvas, 0, 255).astype(np.uint8)
    return frames


def write_video(frames: np.ndarray, path: Path, fps: int) -> None:
    """Encode (T,H,W,3) uint8 RGB as MPEG-4 Part 2 AVI (UCF101's codec), bit-exact and atomic."""
    _t, h, w, _ = frames.shape
    with atomic_path(path) as tmp:
        (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
            .output(str(tmp), format="avi", vcodec="mpeg4", pix_fmt="yuv420p", **{"q:v": 3})
            .global_args("-nostdin", "-v", "error", "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact")
            .overwrite_output()
            .run(cmd=ffmpeg_binary(), input=frames.tobytes(), capture_stdout=True, capture_stderr=True)
        )


def write_lists(videos: list[DemoVideo], motions: list[str], layout: str, lists_dir: Path) -> None:
    """Split 1 in the official format of ``layout``.

    ucf101: ``classInd.txt``, ``trainlist01.txt`` (path and 1-based label), ``testlist01.txt``.
    hmdb51: one ``<class>_test_split1.txt`` per class, ``<video> 1`` train and ``<video> 2`` test.
    """
    lists_dir.mkdir(parents=True, exist_ok=True)
    if layout == "hmdb51":
        for name in motions:
            lines = [
                f"{PurePosixPath(v.rel_path).name} {1 if v.split == 'train' else 2} \n"
                for v in videos
                if v.class_name == name
            ]
            (lists_dir / f"{name}_test_split1.txt").write_text("".join(lines))
        return
    (lists_dir / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(motions)))
    train = [v for v in videos if v.split == "train"]
    test = [v for v in videos if v.split == "test"]
    (lists_dir / "trainlist01.txt").write_text("".join(f"{v.rel_path} {v.label + 1}\n" for v in train))
    (lists_dir / "testlist01.txt").write_text("".join(f"{v.rel_path}\n" for v in test))


def _write_one(video: DemoVideo, p: DemoParams, videos_dir: Path) -> None:
    write_video(render_video(video, p), videos_dir / video.rel_path, p.fps)


def generate_demo(p: DemoParams, videos_dir: Path, lists_dir: Path) -> list[DemoVideo]:
    """Write one demo dataset's videos and its split-1 lists in the official format of ``p.layout``."""
    videos = demo_videos(p)
    # Each video is seeded by its own name, so the workers' order changes no byte.
    Parallel(n_jobs=p.n_jobs)(delayed(_write_one)(video, p, videos_dir) for video in tqdm(videos, desc="demo videos"))
    write_lists(videos, p.motions, p.layout, lists_dir)
    n_test = sum(v.split == "test" for v in videos)
    log.info(
        "demo: %d videos (%d train, %d test), %d classes, %s lists in %s",
        len(videos),
        len(videos) - n_test,
        n_test,
        len(p.motions),
        p.layout,
        videos_dir,
    )
    return videos
