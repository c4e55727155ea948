"""Training-clip read speed: the sharded HDF5 reader against upstream's per-frame JPEG path.

Both read the same real videos: random 16-frame clips of RGB plus one view-2 modality (u),
one random 112x112 crop, through a DataLoader with the same number of workers. The JPEG path
is the original code's: one JPEG file per frame and modality, each opened with PIL, resized
to 128x171 and cropped frame by frame. Prints, per ``storage.encoding``, clips/s, the stored
bytes per RGB frame and the decoded RGB's PSNR against the raw frames; asserts nothing.

    python bench/bench_loader.py [--workers 2] [--batches 30]

The u channel's content does not change read speed, so both copies store a cheap Farneback
flow instead of TV-L1 (which would take minutes to compute here).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import cv2
import h5py
import numpy as np
import torch
from PIL import Image
from stand_in_flow import stand_in_flow
from storage_settings import storage

from preprocess.decode import decode_frames
from preprocess.residual import residual_frames
from preprocess.shards import RESIDUALS_FROM_RGB, ShardReader, ShardWriter, read_frames, write_manifest
from train.data import ClipDataset, EpochSampler

H, W, LENGTH, CROP = 128, 171, 16, 112
ENCODINGS = ("raw", "jpeg", "h264")


class JpegClips(torch.utils.data.Dataset):
    """Upstream BestJuly/IIC's loader: PIL per frame file, resize to 128x171, crop, to float tensors."""

    def __init__(self, root: Path, videos: dict[str, int], seed: int):
        self.root, self.ids, self.frames, self.seed = root, list(videos), list(videos.values()), seed

    def __len__(self):
        return len(self.ids)

    def _load(self, folder: Path, start: int, top: int, left: int, mode: str) -> torch.Tensor:
        frames = []
        for t in range(start, start + LENGTH):
            image = Image.open(folder / f"{t:05d}.jpg").convert(mode).resize((W, H), Image.BILINEAR)
            image = image.crop((left, top, left + CROP, top + CROP))
            frames.append(torch.from_numpy(np.asarray(image, np.float32) / 255.0))
        clip = torch.stack(frames)  # (T,H,W[,C])
        return clip.permute(3, 0, 1, 2) if clip.ndim == 4 else clip.unsqueeze(0)

    def __getitem__(self, item):
        epoch, i = item
        rng = np.random.default_rng([self.seed, epoch, i])
        start = int(rng.integers(0, self.frames[i] - LENGTH + 1))
        top, left = int(rng.integers(0, H - CROP + 1)), int(rng.integers(0, W - CROP + 1))
        folder = self.root / self.ids[i]
        return {
            "index": i,
            "rgb": self._load(folder / "rgb", start, top, left, "RGB"),
            "u": self._load(folder / "u", start, top, left, "L"),
        }


def clips_per_second(dataset, n_videos: int, workers: int, batches: int, batch_size: int) -> float:
    sampler = EpochSampler(n_videos, seed=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, persistent_workers=workers > 0
    )
    seen, epoch = 0, 0
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    start = time.perf_counter()
    while seen < batches * batch_size:
        try:
            batch = next(iterator)
        except StopIteration:
            epoch += 1
            sampler.set_epoch(epoch)
            iterator = iter(loader)
            continue
        seen += len(batch["index"])
    return seen / (time.perf_counter() - start)


@click.command()
@click.option("--realdata", type=click.Path(path_type=Path), default=Path("../shared/realdata"))
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--batches", type=int, default=30, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--max-frames", type=int, default=96, show_default=True, help="frames kept per video")
def main(realdata: Path, workers: int, batches: int, batch_size: int, max_frames: int) -> None:
    clips = sorted(q for q in realdata.rglob("*") if q.suffix in (".avi", ".mp4"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        videos = {}
        records = []
        writers = {
            e: (
                ShardWriter(tmp / e / "frames/0.h5", storage(e)),
                ShardWriter(
                    tmp / e / "motion/0.h5",
                    storage(e),
                    {"flow_bound": 20.0} | ({"residuals": "rgb"} if e in RESIDUALS_FROM_RGB else {}),
                ),
            )
            for e in ENCODINGS
        }
        for w in writers.values():
            w[0].__enter__(), w[1].__enter__()
        for n, clip in enumerate(clips):
            vid = f"v{n:02d}"
            native = decode_frames(clip, *_native_size(clip)).frames  # the JPEG copy keeps the original size
            native = native[:max_frames]
            stored = np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_LINEAR) for f in native])
            u = stand_in_flow(stored, 20.0)[..., 0:1]
            for e, (frames_writer, motion_writer) in writers.items():
                frames_writer.add(vid, "rgb", stored)
                if e not in RESIDUALS_FROM_RGB:
                    motion_writer.add(vid, "res", residual_frames(stored))
                motion_writer.add(vid, "u", u)
            for t, frame in enumerate(native):
                (tmp / "jpg" / vid / "rgb").mkdir(parents=True, exist_ok=True)
                (tmp / "jpg" / vid / "u").mkdir(parents=True, exist_ok=True)
                Image.fromarray(frame).save(tmp / "jpg" / vid / "rgb" / f"{t:05d}.jpg", quality=90)
                u_native = cv2.resize(u[t, ..., 0], (frame.shape[1], frame.shape[0]))
                Image.fromarray(u_native).save(tmp / "jpg" / vid / "u" / f"{t:05d}.jpg", quality=90)
            videos[vid] = len(native)
            records.append({"id": vid, "frames": len(native), "label": 0, "split": "train"})
        for e, (fw, mw) in writers.items():
            fw.__exit__(None, None, None), mw.__exit__(None, None, None)
            for kind in ("frames", "motion"):
                write_manifest(tmp / e / kind / "0.h5", tmp / e / kind / "0.json", records, [])
        print(
            f"{len(videos)} real videos, {sum(videos.values())} frames; clips of {LENGTH}x{CROP}x{CROP}, rgb + u, "
            f"batch {batch_size}, {workers} workers, {batches} batches"
        )
        jpeg = clips_per_second(JpegClips(tmp / "jpg", videos, 0), len(videos), workers, batches, batch_size)
        print(f"per-frame JPEG files + PIL (upstream's path): {jpeg:7.1f} clips/s")
        raw = {vid: read_stored(tmp / "raw" / "frames/0.h5", vid) for vid in videos}
        for e in ENCODINGS:
            reader = ShardReader(tmp / e / "frames", tmp / e / "motion", [0])
            dataset = ClipDataset(reader, sorted(videos), ("rgb", "u"), LENGTH, CROP, train=True, seed=0)
            rate = clips_per_second(dataset, len(videos), workers, batches, batch_size)
            size = rgb_bytes_per_frame(tmp / e / "frames/0.h5")
            decoded = np.concatenate([read_stored(tmp / e / "frames/0.h5", vid) for vid in videos])
            quality = psnr(decoded, np.concatenate(list(raw.values())))
            print(
                f"sharded HDF5, storage.encoding={e:4s}:       {rate:7.1f} clips/s ({rate / jpeg:.1f}x), "
                f"{size / 1000:5.2f} KB per RGB frame, PSNR {quality:5.1f} dB against raw"
            )


def read_stored(shard: Path, video_id: str) -> np.ndarray:
    """Every decoded (T,H,W,3) RGB frame of one video of a frames shard."""
    with h5py.File(shard, "r") as f:
        ds = f[f"videos/{video_id}/rgb"]
        return read_frames(ds, f.attrs["encoding"], 3, 0, ds.shape[0])


def rgb_bytes_per_frame(shard: Path) -> float:
    """Stored bytes per RGB frame: the encoded sizes (jpeg, h264) or the array's (raw)."""
    with h5py.File(shard, "r") as f:
        stacks = [f["videos"][vid]["rgb"] for vid in f["videos"]]
        if f.attrs["encoding"] in ("jpeg", "h264"):
            total = sum(len(buf) for ds in stacks for buf in ds[:])
        else:
            total = sum(ds.id.get_storage_size() for ds in stacks)
        return total / sum(ds.shape[0] for ds in stacks)


def psnr(decoded: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of uint8 frames; inf when they are equal."""
    mse = float(np.mean((decoded.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _native_size(clip: Path) -> tuple[int, int]:
    cap = cv2.VideoCapture(str(clip))
    size = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    cap.release()
    return size


if __name__ == "__main__":
    main()
