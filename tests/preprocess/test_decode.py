from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from preprocess.decode import DecodeError, decode_frames, ffmpeg_binary, uneven_timing
from preprocess.frames import _decode_task
from tests.conftest import REAL_CLIPS


def test_ffmpeg_binary_exists():
    assert shutil.which(ffmpeg_binary()) or __import__("os").path.isfile(ffmpeg_binary())


@pytest.mark.parametrize("clip", REAL_CLIPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_clip_decodes_at_the_stored_size(clip):
    frames = decode_frames(clip, 128, 171).frames
    assert frames.dtype == np.uint8 and frames.shape[1:] == (128, 171, 3)
    assert len(frames) >= 30  # the shortest real clip lasts 1.3 s
    assert frames.std() > 5  # real content, not a blank frame


def test_grayscale_kth_clip_decodes_to_three_equal_channels():
    kth = next(p for p in REAL_CLIPS if p.parent.name == "kth")
    frames = decode_frames(kth, 64, 85).frames
    assert np.abs(frames[..., 0].astype(int) - frames[..., 1]).mean() < 2


def test_zero_byte_file_is_a_decode_error(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.touch()
    with pytest.raises(DecodeError):
        decode_frames(empty, 32, 32)


def test_text_file_named_avi_is_a_decode_error(tmp_path):
    fake = tmp_path / "fake.avi"
    fake.write_text("this is not a video\n" * 100)
    with pytest.raises(DecodeError):
        decode_frames(fake, 32, 32)


def test_truncated_clip_keeps_what_decodes_or_is_rejected(tmp_path):
    clip = next(p for p in REAL_CLIPS if p.name == "v_Basketball_g01_c01.avi")
    data = clip.read_bytes()
    full = decode_frames(clip, 64, 85).frames
    half = tmp_path / "half.avi"
    half.write_bytes(data[: len(data) // 2])
    partial = decode_frames(half, 64, 85).frames
    assert 0 < len(partial) < len(full)  # the valid first half is not lost
    np.testing.assert_array_equal(partial[:10], full[:10])
    header_only = tmp_path / "header.avi"
    header_only.write_bytes(data[:2048])
    frames, reason = _decode_task(header_only, 64, 85, 16, 60.0)
    assert frames is None and reason.startswith(("cannot decode", "too short"))


def test_clip_shorter_than_one_clip_is_rejected(tmp_path):
    from preprocess.demo import write_video

    short = tmp_path / "short.avi"
    write_video(np.full((10, 32, 48, 3), 100, np.uint8), short, fps=25)
    frames, reason = _decode_task(short, 32, 48, 16, 60.0)
    assert frames is None and reason == "too short: 10 frames, one clip needs 16"
    frames, reason = _decode_task(short, 32, 48, 8, 60.0)
    assert frames is not None and len(frames) == 10


def test_a_decode_that_hangs_past_the_timeout_is_a_decode_error():
    """One hung file must not stall its shard forever: ffmpeg runs under a timeout."""
    with pytest.raises(DecodeError, match="did not finish within"):
        decode_frames(REAL_CLIPS[0], 128, 171, timeout=0.001)
    frames, reason = _decode_task(REAL_CLIPS[0], 64, 85, 16, 0.001)
    assert frames is None and reason.startswith("cannot decode: ffmpeg did not finish")


def _vfr_clip(path, container: str = "mp4"):
    """40 frames: 0-19 are 40 ms apart, 20-39 three times further (120 ms), as a real VFR capture."""
    import subprocess

    pts = "if(lt(N,20),N*0.04,0.8+(N-20)*0.12)/TB"
    out = path / f"vfr.{container}"
    subprocess.run(
        [ffmpeg_binary(), "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", "40",
         "-vf", f"setpts='{pts}'", "-fps_mode", "vfr", "-c:v", "mpeg4", str(out)],
        check=True,
    )  # fmt: skip
    return out


@pytest.mark.parametrize("container", ["mp4", "avi"])
def test_a_variable_frame_rate_is_told_and_every_frame_is_kept(tmp_path, container):
    decoded = decode_frames(_vfr_clip(tmp_path, container), 48, 64)
    assert len(decoded.frames) == 40 and decoded.warning == ""
    # The container's time base rounds the 120 ms intervals a little (to 80-160 ms in mp4).
    assert re.fullmatch(
        r"variable frame rate: frame intervals from 40 to 1[2-6]0 ms \(median (40|120) ms\); "
        r"frames are kept as decoded, one after the other",
        decoded.timing_warning,
    )
    frames, warnings = _decode_task(_vfr_clip(tmp_path, container), 48, 64, 16, 60)
    assert len(frames) == 40 and warnings == {"timing_warning": decoded.timing_warning}


@pytest.mark.parametrize("clip", REAL_CLIPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_clips_have_an_even_frame_rate(clip):
    assert decode_frames(clip, 32, 43).timing_warning == ""


def test_uneven_timing_tolerates_timestamp_rounding_and_tells_a_gap():
    assert uneven_timing("".join(f"{t} 1/12800\n" for t in np.cumsum([0] + [426, 427] * 20))) == ""
    gap = [0, 1, 2, 3, 4, 6, 7, 8]  # one dropped frame: an interval twice the others
    assert uneven_timing("".join(f"{t} 1/25\n" for t in gap)).startswith(
        "variable frame rate: frame intervals from 40 to 80 ms"
    )
    assert uneven_timing("") == "" and uneven_timing("0 1/25\n1 1/25\n") == ""
