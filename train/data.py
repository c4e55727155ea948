"""Clip sampling and the clip dataset over the shards.

Workers return uint8 clips (cheap to pass between processes); ``to_model_input`` turns them
into float on the device. Every random choice of a sample comes from a generator seeded by
(seed, epoch, sample index), so results do not depend on the number of loader workers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from preprocess.shards import ClipSource


@dataclasses.dataclass(frozen=True)
class ClipWindow:
    start: int  # first frame
    top: int
    left: int


def random_window(
    n_frames: int, height: int, width: int, length: int, crop: int, rng: np.random.Generator
) -> ClipWindow:
    """A random start and a random crop, for training."""
    return ClipWindow(
        int(rng.integers(0, n_frames - length + 1)),
        int(rng.integers(0, height - crop + 1)),
        int(rng.integers(0, width - crop + 1)),
    )


def eval_windows(n_frames: int, height: int, width: int, length: int, crop: int, n_clips: int) -> list[ClipWindow]:
    """``n_clips`` evenly spaced starts over the video, centre crop (the paper's protocol)."""
    starts = np.linspace(0, n_frames - length, n_clips).round().astype(int)
    top, left = (height - crop) // 2, (width - crop) // 2
    return [ClipWindow(int(s), top, left) for s in starts]


def to_model_input(clips: torch.Tensor) -> torch.Tensor:
    """(B,C,T,H,W) uint8 -> float in [0, 1] with 3 channels (u or v replicated)."""
    x = clips.float().div_(255.0)
    return x.expand(-1, 3, -1, -1, -1) if x.shape[1] == 1 else x


class ClipDataset(torch.utils.data.Dataset):
    """Clips of the given videos, one or more modalities cut at the same window.

    train: one random window per video per epoch; items are (epoch, video) pairs from ``EpochSampler``
    (call its ``set_epoch`` each epoch).
    eval: ``eval_clips`` windows per video; item i is clip i % eval_clips of video i // eval_clips.
    Items: {"index": video position, "label": int, <modality>: (C,T,crop,crop) uint8 ...}.
    """

    def __init__(
        self,
        reader: ClipSource,
        video_ids: list[str],
        modalities: tuple[str, ...],
        length: int,
        crop: int,
        train: bool,
        seed: int,
        eval_clips: int = 1,
        second_rgb: bool = False,
    ):
        self.reader, self.video_ids, self.modalities = reader, list(video_ids), modalities
        self.length, self.crop, self.train, self.seed, self.eval_clips = length, crop, train, seed, eval_clips
        self.second_rgb = second_rgb  # view 2 = rgb: an RGB clip from a second random window
        self.labels = [int(reader.videos[v]["label"]) for v in self.video_ids]

    def __len__(self) -> int:
        return len(self.video_ids) * (1 if self.train else self.eval_clips)

    def _read(self, vid: str, w: ClipWindow, modality: str) -> torch.Tensor:
        clip = self.reader.read_clip(vid, w.start, self.length, modality, crop=(w.top, w.left, self.crop, self.crop))
        return torch.from_numpy(clip)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        """item: a clip number (eval), or (epoch, video position) from EpochSampler (train)."""
        if isinstance(item, tuple):  # training: EpochSampler's (epoch, video position)
            epoch, video = item
            clip_number = 0
        else:
            epoch, (video, clip_number) = 0, divmod(item, self.eval_clips)
        vid = self.video_ids[video]
        n_frames, (height, width) = self.reader.num_frames(vid), self.reader.frame_size(vid)
        rng = None
        if self.train:
            rng = np.random.default_rng([self.seed, epoch, video])
            w = random_window(n_frames, height, width, self.length, self.crop, rng)
        else:
            w = eval_windows(n_frames, height, width, self.length, self.crop, self.eval_clips)[clip_number]
        out: dict[str, Any] = {"index": video, "label": self.labels[video]}
        for modality in self.modalities:
            out[modality] = self._read(vid, w, modality)
        if self.second_rgb:
            if rng is None:
                raise ValueError("a second RGB window is a training-time view")
            out["rgb_second"] = self._read(
                vid, random_window(n_frames, height, width, self.length, self.crop, rng), "rgb"
            )
        return out


class EpochSampler(torch.utils.data.Sampler[tuple[int, int]]):
    """(epoch, video) items in a permutation drawn from (seed, epoch).

    The order and each sample's augmentation depend only on the seed and the epoch, not on
    the worker count. Under DDP each rank takes every world-th item of the same permutation.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, 1]).permutation(self.n)
        usable = len(order) - len(order) % self.world  # equal shares, so ranks step together
        return iter((self.epoch, int(i)) for i in order[self.rank : usable : self.world])

    def __len__(self) -> int:
        return self.n // self.world


def view_modalities(view2: str) -> tuple[str, ...]:
    """The modalities of a pretrained encoder's two views: RGB, then ``view2`` unless that is RGB
    too (the second RGB view is another crop of the same frames, not another modality)."""
    return ("rgb",) if view2 == "rgb" else ("rgb", view2)


def split_ids(reader: ClipSource, split: str) -> list[str]:
    """Ids of one split (train|test) in a stable order."""
    return sorted(v for v, rec in reader.videos.items() if rec["split"] == split)


def class_names(reader: ClipSource) -> list[str]:
    """Name of each 0-based label; a class whose videos were all rejected keeps its number."""
    names = {v["label"]: v["class"] for v in reader.videos.values()}
    return [names.get(label, f"class {label + 1}") for label in range(max(names) + 1)]
