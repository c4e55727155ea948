from __future__ import annotations

import numpy as np
import pytest
import torch

from preprocess.shards import ShardReader, ShardWriter, verify_manifest, write_manifest
from tests.shards_fixture import storage


def _write(folder, encoding, videos, modality="rgb", name="0"):
    shard = folder / f"{name}.h5"
    with ShardWriter(shard, storage(encoding, 95)) as writer:
        for vid, frames in videos.items():
            writer.add(vid, modality, frames)
    records = [{"id": vid, "frames": len(f)} for vid, f in videos.items()]
    write_manifest(shard, folder / f"{name}.json", records, [])
    return shard


@pytest.mark.parametrize("encoding", ["raw", "lzf"])
def test_lossless_round_trip_with_crop(tmp_path, rng, encoding):
    video = rng.integers(0, 256, (20, 24, 32, 3), dtype=np.uint8)
    _write(tmp_path, encoding, {"A/v1": video})
    reader = ShardReader(tmp_path, None, [0])
    clip = reader.read_clip("A/v1", 3, 16, "rgb")
    assert clip.shape == (3, 16, 24, 32) and clip.dtype == np.uint8
    np.testing.assert_array_equal(clip, video[3:19].transpose(3, 0, 1, 2))
    cropped = reader.read_clip("A/v1", 0, 4, "rgb", crop=(5, 7, 10, 12))
    np.testing.assert_array_equal(cropped, video[0:4, 5:15, 7:19].transpose(3, 0, 1, 2))


def test_jpeg_round_trip_is_close(tmp_path):
    yy, xx = np.mgrid[0:48, 0:64]
    video = np.stack([np.stack([xx * 4, yy * 5, (xx + yy + t) * 2], -1) for t in range(5)]).astype(np.uint8)
    _write(tmp_path, "jpeg", {"A/v1": video})
    clip = ShardReader(tmp_path, None, [0]).read_clip("A/v1", 0, 5, "rgb", crop=(8, 8, 32, 32))
    assert np.abs(clip.astype(int) - video[:, 8:40, 8:40].transpose(3, 0, 1, 2)).mean() < 2.0


def test_one_channel_modality(tmp_path, rng):
    u = rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    _write(tmp_path, "raw", {"A/v1": u}, modality="u")
    reader = ShardReader(tmp_path, None, [0])
    reader.folders["u"] = tmp_path
    assert reader.read_clip("A/v1", 1, 4, "u").shape == (1, 4, 8, 8)


def test_clip_outside_the_video_raises(tmp_path, rng):
    _write(tmp_path, "raw", {"A/v1": rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)})
    with pytest.raises(IndexError):
        ShardReader(tmp_path, None, [0]).read_clip("A/v1", 0, 16, "rgb")


def test_manifest_detects_a_changed_or_truncated_shard(tmp_path, rng):
    shard = _write(tmp_path, "raw", {"A/v1": rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)})
    manifest = tmp_path / "0.json"
    assert verify_manifest(manifest) == []
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert "checksum" in verify_manifest(manifest)[0]
    shard.write_bytes(bytes(data[:-10]))
    assert "size" in verify_manifest(manifest)[0]
    shard.unlink()
    assert "missing" in verify_manifest(manifest)[0]


def test_a_failed_write_leaves_no_shard(tmp_path, rng):
    with pytest.raises(RuntimeError), ShardWriter(tmp_path / "0.h5", storage("raw")) as writer:
        writer.add("A/v1", "rgb", rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8))
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


class _Clips(torch.utils.data.Dataset):
    def __init__(self, reader):
        self.reader = reader

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.from_numpy(self.reader.read_clip(f"A/v{i % 2}", i, 2, "rgb"))


def test_reader_opens_files_lazily_in_loader_workers(tmp_path, rng):
    videos = {f"A/v{i}": rng.integers(0, 256, (12, 4, 4, 3), dtype=np.uint8) for i in range(2)}
    _write(tmp_path, "raw", videos)
    reader = ShardReader(tmp_path, None, [0])
    reader.read_clip("A/v0", 0, 1, "rgb")  # opens a handle in this process
    loader = torch.utils.data.DataLoader(_Clips(reader), batch_size=4, num_workers=2)
    batches = torch.cat(list(loader))
    expected = torch.stack([torch.from_numpy(videos[f"A/v{i % 2}"][i : i + 2].transpose(3, 0, 1, 2)) for i in range(8)])
    assert torch.equal(batches, expected)
