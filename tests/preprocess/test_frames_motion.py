"""The frames and motion stages' shard work on every real clip, with broken inputs mixed in."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from evaluate.preview import preview_strip
from pipeline.errors import InputError
from preprocess.dataset import build_index
from preprocess.decode import decode_frames
from preprocess.formats import FormatOptions
from preprocess.frames import extract_frames_shard
from preprocess.motion import compute_motion_shard, video_motion
from preprocess.residual import residual_frames
from preprocess.shards import ShardReader, ShardWriter, verify_manifest, write_manifest
from tests.conftest import REAL_CLIPS, replace
from tests.shards_fixture import storage

OPTIONS = FormatOptions(split=1, test_ratio=0.3, split_seed=0)  # split 1; folder: a 30% test draw, seed 0


def test_frames_stage_keeps_every_real_clip_and_rejects_each_broken_one(real_dataset, params, tmp_path):
    root, lists = real_dataset
    entries, rejects = build_index(root, lists, 1, "ucf101", OPTIONS)
    assert [r.reason for r in rejects] == ["empty file"]
    frames = replace(params.frames, height=128, width=171)
    manifest = extract_frames_shard(
        entries, root, tmp_path / "0.h5", tmp_path / "0.json", frames, params.storage, params.pool
    )
    kept = {v["path"] for v in manifest["videos"]}
    assert kept == {f"{p.parent.name}/{p.name}" for p in REAL_CLIPS}
    reasons = {r["path"]: r["reason"] for r in manifest["rejects"]}
    assert set(reasons) == {"ucf101/text.avi", "ucf101/header_only.avi", "ucf101/short.avi"}
    assert reasons["ucf101/text.avi"].startswith("cannot decode")
    assert reasons["ucf101/short.avi"].startswith("too short")
    assert verify_manifest(tmp_path / "0.json") == []
    reader = ShardReader(tmp_path, None, [0])
    for video in manifest["videos"]:
        clip = reader.read_clip(video["id"], video["frames"] - 16, 16, "rgb", crop=(8, 29, 112, 112))
        assert clip.shape == (3, 16, 112, 112)


def test_motion_stage_on_every_real_clip(params, tmp_path):
    """Residual and flow for the first frames of every real clip (all codecs and sizes)."""
    frames_dir, motion_dir = tmp_path / "frames", tmp_path / "motion"
    records = []
    with ShardWriter(frames_dir / "0.h5", storage("raw")) as writer:
        for i, clip in enumerate(REAL_CLIPS):
            frames = decode_frames(clip, 128, 171).frames[:5]
            writer.add(f"c/{i}", "rgb", frames)
            records.append({"id": f"c/{i}", "path": clip.name, "frames": len(frames)})
    write_manifest(frames_dir / "0.h5", frames_dir / "0.json", records, [])
    manifest = compute_motion_shard(
        frames_dir / "0.h5",
        frames_dir / "0.json",
        motion_dir / "0.h5",
        motion_dir / "0.json",
        params.motion,
        params.storage,
        params.pool,
    )
    assert manifest["rejects"] == [] and len(manifest["videos"]) == len(REAL_CLIPS)
    reader = ShardReader(frames_dir, motion_dir, [0])
    for record in records:
        res = reader.read_clip(record["id"], 0, 5, "res")
        u = reader.read_clip(record["id"], 0, 5, "u")
        assert res.shape == (3, 5, 128, 171) and u.shape == (1, 5, 128, 171)
        assert (res[:, 0] == 128).all() and (u[:, 0] == 128).all()  # frame 0: no motion


def test_motion_refuses_a_corrupt_frames_shard(params, tmp_path, rng):
    """Flipped bytes in a frames shard used to become wrong pixels in every later stage."""
    frames_dir = tmp_path / "frames"
    with ShardWriter(frames_dir / "0.h5", storage("raw")) as writer:
        writer.add("c/0", "rgb", rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8))
    write_manifest(frames_dir / "0.h5", frames_dir / "0.json", [{"id": "c/0", "path": "c/0.avi", "frames": 4}], [])
    data = bytearray((frames_dir / "0.h5").read_bytes())
    data[-200] ^= 0xFF
    (frames_dir / "0.h5").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"frames/0\.h5: checksum differs"):
        compute_motion_shard(
            frames_dir / "0.h5",
            frames_dir / "0.json",
            tmp_path / "m/0.h5",
            tmp_path / "m/0.json",
            params.motion,
            params.storage,
            params.pool,
        )
    assert not (tmp_path / "m").exists()


def test_flow_none_writes_residuals_only_and_the_same_residuals(params, tmp_path):
    """motion.flow: none skips TV-L1 (the default configuration never reads u/v)."""
    frames_dir = tmp_path / "frames"
    clip = decode_frames(REAL_CLIPS[0], 48, 64).frames[:6]
    with ShardWriter(frames_dir / "0.h5", storage("raw")) as writer:
        writer.add("c/0", "rgb", clip)
    write_manifest(frames_dir / "0.h5", frames_dir / "0.json", [{"id": "c/0", "path": "c/0.avi", "frames": 6}], [])
    for flow in ("tvl1", "none"):
        motion = replace(params.motion, flow=flow)
        compute_motion_shard(
            frames_dir / "0.h5",
            frames_dir / "0.json",
            tmp_path / flow / "0.h5",
            tmp_path / flow / "0.json",
            motion,
            params.storage,
            params.pool,
        )
    with h5py.File(tmp_path / "none/0.h5") as none, h5py.File(tmp_path / "tvl1/0.h5") as tvl1:
        assert set(none["videos/c/0"]) == {"res"} and set(tvl1["videos/c/0"]) == {"res", "u", "v"}
        np.testing.assert_array_equal(none["videos/c/0/res"][:], tvl1["videos/c/0/res"][:])
        assert none.attrs["flow"] == "none"
    reader = ShardReader(frames_dir, tmp_path / "none", [0])
    strip = preview_strip(reader, "c/0", 3, None)
    assert strip.shape == (2 * 48, 3 * 64, 3)  # rgb and residual rows, no flow row


@pytest.mark.parametrize("encoding", ["jpeg", "h264"])
def test_with_encoded_frames_residuals_come_from_the_stored_rgb_exactly(params, tmp_path, encoding):
    """storage.encoding jpeg (the paper settings) or h264: residuals are computed from the decoded
    RGB when a clip is read, upstream's residual to uint8 rounding, and equal to the same frames
    of the whole video's residual at any start (stored as JPEG they moved by up to 55/255);
    with H.264 also at starts that are not keyframes (gop 4 here)."""
    frames_dir, motion_dir = tmp_path / "frames", tmp_path / "motion"
    clip = decode_frames(REAL_CLIPS[0], 48, 64).frames[:12]
    jpeg = replace(params.storage, encoding=encoding, h264=replace(params.storage.h264, gop=4))
    with ShardWriter(frames_dir / "0.h5", jpeg) as writer:
        writer.add("c/0", "rgb", clip)
    write_manifest(frames_dir / "0.h5", frames_dir / "0.json", [{"id": "c/0", "path": "c/0.avi", "frames": 12}], [])
    compute_motion_shard(
        frames_dir / "0.h5", frames_dir / "0.json", motion_dir / "0.h5", motion_dir / "0.json",
        replace(params.motion, flow="none"), jpeg, params.pool,
    )  # fmt: skip
    with h5py.File(motion_dir / "0.h5") as f:
        assert f.attrs["residuals"] == "rgb" and "videos/c/0/res" not in f  # nothing stored twice
    reader = ShardReader(frames_dir, motion_dir, [0])
    stored_rgb = reader.read_clip("c/0", 0, 12, "rgb").transpose(1, 2, 3, 0)  # the decoded frames
    assert not np.array_equal(stored_rgb, clip)  # RGB is lossy
    whole = residual_frames(stored_rgb)
    for start, crop in ((0, None), (1, None), (4, None), (5, (3, 7, 20, 24))):
        res = reader.read_clip("c/0", start, 6, "res", crop=crop).transpose(1, 2, 3, 0)
        top, left, h, w = crop or (0, 0, 48, 64)
        np.testing.assert_array_equal(res, whole[start : start + 6, top : top + h, left : left + w])


def test_residuals_a_reader_derives_are_never_computed(params, monkeypatch):
    """With JPEG frames the reader computes residuals at read time; the motion stage used to
    compute them anyway and drop them unstored (with ``motion.flow: none``, its whole work)."""
    clip = decode_frames(REAL_CLIPS[0], 48, 64).frames[:6]
    tvl1, none = params.motion, replace(params.motion, flow="none")
    full = video_motion(clip, tvl1, residuals=True)

    def refuse(_rgb):
        raise AssertionError("residuals computed although the reader derives them")

    monkeypatch.setattr("preprocess.motion.residual_frames", refuse)
    assert video_motion(clip, none, residuals=False) == {}
    flow_only = video_motion(clip, tvl1, residuals=False)
    assert set(flow_only) == {"u", "v"} and all(np.array_equal(flow_only[k], full[k]) for k in ("u", "v"))


@pytest.mark.parametrize("encoding", ["jpeg", "h264"])
def test_with_derived_residuals_and_no_flow_the_motion_stage_reads_no_frames(params, tmp_path, monkeypatch, encoding):
    """Encoded frames and ``motion.flow: none``: the motion shard lists the videos and holds nothing
    else, so decoding each video's frames (what the stage used to do) would be its whole cost."""
    frames_dir, motion_dir = tmp_path / "frames", tmp_path / "motion"
    storage_params = replace(params.storage, encoding=encoding)
    with ShardWriter(frames_dir / "0.h5", storage_params) as writer:
        writer.add("c/0", "rgb", decode_frames(REAL_CLIPS[0], 48, 64).frames[:8])
    write_manifest(frames_dir / "0.h5", frames_dir / "0.json", [{"id": "c/0", "path": "c/0.avi", "frames": 8}], [])

    def refuse(*_args):
        raise AssertionError("frames decoded although nothing is computed from them")

    monkeypatch.setattr("preprocess.motion.read_rgb", refuse)
    manifest = compute_motion_shard(
        frames_dir / "0.h5", frames_dir / "0.json", motion_dir / "0.h5", motion_dir / "0.json",
        replace(params.motion, flow="none", n_jobs=1), storage_params, params.pool,  # in this process
    )  # fmt: skip
    assert [v["id"] for v in manifest["videos"]] == ["c/0"] and manifest["rejects"] == []
    reader = ShardReader(frames_dir, motion_dir, [0])
    assert reader.read_clip("c/0", 2, 4, "res").shape == (3, 4, 48, 64)
