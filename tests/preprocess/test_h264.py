"""H.264 shards: one packet per frame, keyframes every gop, clips decoded from the keyframe before them."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.decode import decode_frames
from preprocess.h264 import decode_h264, encode_h264, keyframe_before
from preprocess.shards import ShardReader, ShardWriter, write_manifest
from tests.conftest import REAL_CLIPS
from tests.shards_fixture import storage


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def real_video() -> np.ndarray:
    """(40,128,171,3): the paper's stored size, an odd width that 4:2:0 must pad."""
    return decode_frames(REAL_CLIPS[0], 128, 171).frames[:40]


def test_keyframe_before():
    assert [keyframe_before(i, 8) for i in (0, 1, 7, 8, 15, 16)] == [0, 0, 0, 8, 8, 16]
    assert keyframe_before(5, 1) == 5


def test_one_packet_per_frame_keyframes_every_gop_and_close_to_the_frames(real_video):
    packets = encode_h264(real_video, crf=18, gop=8, preset="medium")
    assert len(packets) == len(real_video) and all(p.dtype == np.uint8 and p.ndim == 1 for p in packets)
    decoded = decode_h264(packets, 3, 128, 171)
    assert decoded.shape == real_video.shape and decoded.dtype == np.uint8
    assert psnr(decoded, real_video) > 33.0
    # Lower crf: larger and closer.
    fine = encode_h264(real_video, crf=10, gop=8, preset="medium")
    assert sum(map(len, fine)) > sum(map(len, packets))
    assert psnr(decode_h264(fine, 3, 128, 171), real_video) > psnr(decoded, real_video)


def test_encoding_is_byte_identical_from_run_to_run(real_video):
    first = encode_h264(real_video[:12], 18, 4, "medium")
    second = encode_h264(real_video[:12], 18, 4, "medium")
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_decoding_from_any_keyframe_gives_the_frames_of_the_whole_decode(real_video):
    gop = 8
    packets = encode_h264(real_video, 18, gop, "medium")
    whole = decode_h264(packets, 3, 128, 171)
    for key in range(0, len(packets), gop):
        np.testing.assert_array_equal(decode_h264(packets[key : key + 11], 3, 128, 171), whole[key : key + 11])


def test_starting_at_a_frame_that_is_not_a_keyframe_is_an_error(real_video):
    packets = encode_h264(real_video[:10], 18, 8, "medium")
    with pytest.raises(ValueError, match="frames decoded"):
        decode_h264(packets[3:9], 3, 128, 171)


def test_one_channel_stream(rng):
    flow = np.clip(128 + rng.normal(0, 20, (10, 33, 45, 1)), 0, 255).astype(np.uint8)  # odd sizes both ways
    packets = encode_h264(flow, 10, 4, "medium")
    decoded = decode_h264(packets, 1, 33, 45)
    assert decoded.shape == flow.shape and psnr(decoded, flow) > 30.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        encode_h264(np.zeros((4, 8, 8, 3), np.float32), 18, 4, "medium")
    with pytest.raises(ValueError, match="uint8"):
        encode_h264(np.zeros((4, 8, 8, 2), np.uint8), 18, 4, "medium")


def test_reader_clips_at_any_start_and_crop_equal_the_whole_decode(tmp_path, real_video):
    """A training clip starts anywhere; the reader decodes from the keyframe before it."""
    h264 = storage("h264")
    with ShardWriter(tmp_path / "0.h5", h264) as writer:
        writer.add("c/0", "rgb", real_video)
    write_manifest(tmp_path / "0.h5", tmp_path / "0.json", [{"id": "c/0", "frames": len(real_video)}], [])
    whole = decode_h264(encode_h264(real_video, h264.h264.crf, h264.h264.gop, h264.h264.preset), 3, 128, 171)
    reader = ShardReader(tmp_path, None, [0])
    assert reader.frame_size("c/0") == (128, 171)
    for start in (0, 1, 7, 8, 13, 24):
        clip = reader.read_clip("c/0", start, 16, "rgb", crop=(8, 29, 112, 112))
        np.testing.assert_array_equal(clip, whole[start : start + 16, 8:120, 29:141].transpose(3, 0, 1, 2))
    with pytest.raises(IndexError):
        reader.read_clip("c/0", 30, 16, "rgb")
