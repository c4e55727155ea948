"""Sharded HDF5 storage of per-video frame stacks, its manifests and a lazy clip reader.

A shard file holds ``/videos/<video id>/<modality>``: (T,H,W,C) uint8 for ``raw``/``lzf``
(one HDF5 chunk per frame, so a clip read touches only its frames), (T,) variable-length
JPEG bytes for ``jpeg``, or (T,) H.264 packets for ``h264`` (``preprocess/h264.py``: a clip
decodes from the keyframe before it). The frames stage writes ``rgb``; the motion stage writes ``res``,
``u`` and ``v`` into a shard of the same id, except where residuals come from the stored RGB
at read time (``RESIDUALS_FROM_RGB``; the motion shard's ``residuals`` attribute says so). Each
shard file has a manifest (JSON beside it) with its size, sha256, the videos it holds and the
videos it rejected.

Readers open exactly the shards they are given (never a glob of a folder, which would pick up
the leftovers of removed shards), check each shard file against its manifest's size and
sha256 when they open it, and fail naming the file when one is missing, stale or corrupt.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import h5py
import numpy as np

from pipeline.atomic import atomic_path, read_json, write_json
from pipeline.checksums import file_sha256
from pipeline.errors import InputError
from pipeline.paths import shard_file, shard_manifest, stage_of
from pipeline.schema import StorageParams
from preprocess.h264 import decode_h264, encode_h264, keyframe_before
from preprocess.residual import residual_frames

MODALITY_CHANNELS = {"rgb": 3, "res": 3, "u": 1, "v": 1}
MOTION_MODALITIES = ("res", "u", "v")
# Encodings whose residuals are not stored but computed from the stored RGB when a clip is read.
# A JPEG residual was up to 55/255 from the exact one (bench/bench_residuals.py); a lossless one
# costs 9x a JPEG frame. From the JPEG-decoded RGB, through the one residual definition, it is
# upstream's residual (the difference of its JPEG frames) to the 0.5/255 of uint8 rounding, for
# the cost of decoding one more frame per clip. H.264 frames likewise: a stored residual would
# be a second lossy stream of a signal the frames already hold.
RESIDUALS_FROM_RGB = frozenset({"jpeg", "h264"})
ENCODED_PER_FRAME = frozenset({"jpeg", "h264"})  # stored as (T,) variable-length bytes


def encode_jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """(H,W,C) uint8 RGB or gray -> 1-D uint8 JPEG bytes."""
    image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if frame.shape[-1] == 3 else frame[..., 0]
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.reshape(-1)


def decode_jpeg(buf: np.ndarray, channels: int) -> np.ndarray:
    """1-D uint8 JPEG bytes -> (H,W,C) uint8."""
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"a stored JPEG frame of {len(buf)} bytes does not decode: the shard is damaged")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if channels == 3 else image[..., None]


class ShardWriter:
    """Writes one shard file atomically: a temporary file renamed into place on close."""

    def __init__(self, path: Path, storage: StorageParams, attrs: dict | None = None):
        self.path = Path(path)
        self.attrs = attrs or {}
        self.storage = storage
        self.encoding = storage.encoding
        self._atomic = atomic_path(self.path)

    def __enter__(self) -> ShardWriter:
        tmp = self._atomic.__enter__()
        self._file = h5py.File(tmp, "w")
        self._file.attrs["encoding"] = self.encoding
        self._file.attrs.update(self.attrs)
        return self

    def add(self, video_id: str, modality: str, frames: np.ndarray) -> None:
        """Store (T,H,W,C) uint8 frames of one modality of one video."""
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise ValueError(f"{video_id}/{modality}: expected (T,H,W,C) uint8, got {frames.shape} {frames.dtype}")
        name = f"videos/{video_id}/{modality}"
        if self.encoding == "jpeg":
            ds = self._file.create_dataset(name, (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
            for i, frame in enumerate(frames):
                ds[i] = encode_jpeg(frame, self.storage.jpeg_quality)
        elif self.encoding == "h264":
            h264 = self.storage.h264
            ds = self._file.create_dataset(name, (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
            for i, packet in enumerate(encode_h264(frames, h264.crf, h264.gop, h264.preset)):
                ds[i] = packet
            ds.attrs["gop"] = h264.gop
        else:
            ds = self._file.create_dataset(
                name,
                data=frames,
                chunks=(1, *frames.shape[1:]),
                compression="lzf" if self.encoding == "lzf" else None,
            )
        ds.attrs["shape"] = frames.shape

    def __exit__(self, *exc) -> None:
        self._file.close()
        self._atomic.__exit__(*exc)


def read_frames(
    ds: h5py.Dataset,
    encoding: str,
    channels: int,
    start: int,
    stop: int,
    crop: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Frames [start, stop) of one stored stack as (T,H,W,C) uint8, optionally cropped.

    crop: (top, left, height, width). Raw and lzf stacks crop in the HDF5 selection; JPEG
    and H.264 frames are decoded whole and cropped after.
    """
    top, left, h, w = crop if crop else (0, 0, 0, 0)
    if encoding in ENCODED_PER_FRAME:
        if encoding == "jpeg":
            frames = np.stack([decode_jpeg(buf, channels) for buf in ds[start:stop]])
        else:
            key = keyframe_before(start, int(ds.attrs["gop"]))
            _, height, width, _ = ds.attrs["shape"]
            return decode_h264(list(ds[key:stop]), channels, int(height), int(width), start - key, crop)
        return frames[:, top : top + h, left : left + w] if crop else frames
    return np.asarray(ds[start:stop, top : top + h, left : left + w] if crop else ds[start:stop])


def write_manifest(shard_path: Path, manifest_path: Path, videos: list[dict], rejects: list[dict]) -> dict:
    """Manifest of a finished shard: size and checksum of the file, its videos and rejects."""
    manifest = {
        "file": shard_path.name,
        "size": shard_path.stat().st_size,
        "sha256": file_sha256(shard_path),
        "videos": videos,
        "rejects": rejects,
    }
    write_json(manifest_path, manifest)
    return manifest


def verify_manifest(manifest_path: Path) -> list[str]:
    """Problems found when checking a shard against its manifest (empty when it matches)."""
    manifest = read_json(manifest_path)
    shard = manifest_path.parent / manifest["file"]
    if not shard.is_file():
        return [f"{shard}: missing"]
    problems = []
    if shard.stat().st_size != manifest["size"]:
        problems.append(f"{shard}: size {shard.stat().st_size} != manifest {manifest['size']}")
    elif file_sha256(shard) != manifest["sha256"]:
        problems.append(f"{shard}: checksum differs from the manifest")
    return problems


def read_rgb(shard_path: Path, video_id: str) -> np.ndarray:
    """All (T,H,W,3) uint8 RGB frames of one video from a frames shard."""
    with h5py.File(shard_path, "r") as f:
        ds = f[f"videos/{video_id}/rgb"]
        return read_frames(ds, f.attrs["encoding"], 3, 0, ds.shape[0])


def checked_manifest(manifest_path: Path, stage: str) -> dict:
    """The manifest of a shard whose file matches it (size and sha256); InputError naming the file else.

    stage: the dvc stage that builds it (``frames@3``), named in the message.
    """
    if not manifest_path.is_file():
        raise InputError(f"{manifest_path}: missing; run `dvc repro {stage}`")
    problems = verify_manifest(manifest_path)
    if problems:
        raise InputError("; ".join(problems) + f"; rerun `dvc repro -f {stage}`")
    return read_json(manifest_path)


def _check_verified(folder: Path, kind: str, recorded: dict[int, str]) -> dict[int, str]:
    """``recorded`` ({shard id: sha256}) when every shard file in ``folder`` still has it; else
    InputError naming the file: rebuilt since it was verified (its manifest agrees with it:
    verify again), or damaged (it matches neither: rebuild it)."""
    for shard_id, sha256 in recorded.items():
        manifest_path, stage = shard_manifest(folder, shard_id), stage_of(folder, kind, shard_id)
        if not manifest_path.is_file():
            raise InputError(f"{manifest_path}: missing; run `dvc repro {stage}`")
        shard = shard_file(folder, shard_id)
        if not shard.is_file():
            raise InputError(f"{shard}: missing; run `dvc repro -f {stage}`")
        if file_sha256(shard) != sha256:
            if not verify_manifest(manifest_path):  # a consistent shard, just not the verified one
                verify = stage_of(folder, "verify")
                raise InputError(f"{shard} changed after the verify stage listed it; run `dvc repro {verify}`")
            raise InputError(
                f"{shard}: checksum differs from the manifest and the verified list; rerun `dvc repro -f {stage}`"
            )
    return dict(recorded)


class ClipSource(Protocol):
    """What training reads videos through: ``ShardReader`` (one dataset) or
    ``preprocess.union.UnionReader`` (several, for pretraining)."""

    videos: dict[str, dict]  # id -> record with "split", "label", "frames"

    @property
    def fingerprint(self) -> str: ...

    def num_frames(self, video_id: str) -> int: ...

    def frame_size(self, video_id: str) -> tuple[int, int]: ...

    def read_clip(
        self, video_id: str, start: int, length: int, modality: str, crop: tuple[int, int, int, int] | None = None
    ) -> np.ndarray: ...


class ShardReader:
    """Clip reads over the frame and motion shards; HDF5 files open lazily in each process.

    Opens exactly ``shard_ids`` (each checked against its manifest on construction) and, when
    ``videos`` is given, exactly those videos: each must be held by its shard, else the shard
    is stale and the reader fails naming it. Opening on first use (and again after a fork,
    detected by pid) keeps h5py handles out of the pickled state that DataLoader sends to
    its workers.
    """

    def __init__(
        self,
        frames_dir: Path,
        motion_dir: Path | None,
        shard_ids: Sequence[int],
        videos: Sequence[dict] | None = None,
        verified_sha256: dict[str, dict[int, str]] | None = None,
    ):
        """verified_sha256: {"frames"|"motion": {shard id: sha256}} as the verify stage recorded
        them beside ``videos`` (which are then its entries, each with its ``frames`` count). Given,
        each shard file is checked against them and no manifest is parsed: the verify stage
        already matched the manifests to the index, and at Kinetics size (240,000 videos)
        parsing them again would be most of every stage's start-up."""
        self.folders = {"rgb": Path(frames_dir)}
        if motion_dir is not None:
            self.folders.update({m: Path(motion_dir) for m in MOTION_MODALITIES})
        folders = {"frames": Path(frames_dir)} | ({"motion": Path(motion_dir)} if motion_dir is not None else {})
        self._handles: dict[Path, h5py.File] = {}
        self._pid: int | None = None
        self.shard_sha256: dict[str, dict[int, str]] = {}
        self.videos: dict[str, dict] = {}
        self._shard_of: dict[str, int] = {}
        if verified_sha256 is not None and videos is not None:
            self.shard_sha256 = {kind: _check_verified(folders[kind], kind, verified_sha256[kind]) for kind in folders}
            self.videos = {v["id"]: v for v in videos}
            self._shard_of = {v["id"]: int(v["shard"]) for v in videos}
            return
        held: dict[str, dict[int, dict[str, dict]]] = {}
        for kind, folder in folders.items():
            held[kind], self.shard_sha256[kind] = {}, {}
            for shard_id in shard_ids:
                manifest = checked_manifest(shard_manifest(folder, shard_id), stage_of(folder, kind, shard_id))
                held[kind][shard_id] = {v["id"]: v for v in manifest["videos"]}
                self.shard_sha256[kind][shard_id] = manifest["sha256"]
        if videos is None:
            # Every video of the given shards that has every modality (motion may reject too).
            wanted = [
                (sid, v)
                for sid in shard_ids
                for v in held["frames"][sid].values()
                if all(v["id"] in held[k][sid] for k in held)
            ]
        else:
            wanted = [(int(v["shard"]), v) for v in videos]
        for shard_id, video in wanted:
            for kind in held:
                if video["id"] not in held[kind].get(shard_id, {}):
                    raise InputError(
                        f"{shard_manifest(folders[kind], shard_id)} does not hold {video['id']}, which the "
                        f"index lists: the shard is stale; run `dvc repro`"
                    )
            self.videos[video["id"]] = {**held["frames"][shard_id][video["id"]], **video}
            self._shard_of[video["id"]] = shard_id

    @property
    def fingerprint(self) -> str:
        """sha256 of what the reader serves: the video ids and the checksums of the shard files."""
        content = json.dumps({"videos": sorted(self.videos), "shards": self.shard_sha256}, sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = {}, None
        return state

    def _file(self, path: Path) -> h5py.File:
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = h5py.File(path, "r")
        return self._handles[path]

    def num_frames(self, video_id: str) -> int:
        return int(self.videos[video_id]["frames"])

    def frame_size(self, video_id: str) -> tuple[int, int]:
        """(height, width) of the stored frames."""
        shape = self._file(shard_file(self.folders["rgb"], self._shard_of[video_id]))[f"videos/{video_id}/rgb"].attrs[
            "shape"
        ]
        return int(shape[1]), int(shape[2])

    def flow_bound(self, video_id: str) -> float | None:
        """The bound (px) the video's stored flow was quantised to, or None when its motion shard
        holds no flow (``motion.flow: none``, or a reader without motion)."""
        if "u" not in self.folders:
            return None
        shard = self._file(shard_file(self.folders["u"], self._shard_of[video_id]))
        return float(shard.attrs["flow_bound"]) if shard.attrs.get("flow", "tvl1") != "none" else None

    def read_clip(
        self,
        video_id: str,
        start: int,
        length: int,
        modality: str,
        crop: tuple[int, int, int, int] | None = None,
    ) -> np.ndarray:
        """Frames [start, start+length) of one modality as (C,T,H,W) uint8.

        crop: (top, left, height, width), applied to every frame; None keeps whole frames.
        """
        shard = self._file(shard_file(self.folders[modality], self._shard_of[video_id]))
        if modality == "res" and shard.attrs.get("residuals") == "rgb":
            return self._residual_from_rgb(video_id, start, length, crop)
        ds = shard[f"videos/{video_id}/{modality}"]
        if start < 0 or start + length > ds.shape[0]:
            raise IndexError(f"{video_id}: frames {start}..{start + length} outside 0..{ds.shape[0]}")
        frames = read_frames(ds, shard.attrs["encoding"], MODALITY_CHANNELS[modality], start, start + length, crop)
        return np.ascontiguousarray(frames.transpose(3, 0, 1, 2))  # (T,H,W,C) -> (C,T,H,W)

    def _residual_from_rgb(
        self, video_id: str, start: int, length: int, crop: tuple[int, int, int, int] | None
    ) -> np.ndarray:
        """Residuals [start, start+length) of the stored RGB as (C,T,H,W) uint8: the clip and the frame
        before it through ``residual_frames``, so a clip equals the same frames of the whole video's."""
        first = max(start - 1, 0)
        rgb = self.read_clip(video_id, first, start + length - first, "rgb", crop).transpose(1, 2, 3, 0)  # (T,H,W,C)
        residuals = residual_frames(np.ascontiguousarray(rgb))  # the first one is 128: no earlier frame
        return np.ascontiguousarray(residuals[start - first :].transpose(3, 0, 1, 2))

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}
