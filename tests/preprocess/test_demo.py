from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from preprocess.dataset import build_index
from preprocess.decode import decode_frames
from preprocess.demo import MOTIONS, demo_videos, generate_demo, render_video
from preprocess.formats import FormatOptions
from tests.conftest import replace

MOTION_NAMES = list(MOTIONS)

OPTIONS = FormatOptions(split=1, test_ratio=0.3, split_seed=0)  # split 1; folder: a 30% test draw, seed 0


def test_demo_layout_splits_by_group_and_adds_one_video_at_a_time(params):
    p = replace(
        params.demo["demo"], motions=MOTION_NAMES[:6], videos=36, clips_per_group=2, test_every=3, extra_test_groups=0
    )
    videos = demo_videos(p)
    assert len({v.rel_path for v in videos}) == 36
    groups = defaultdict(set)
    for v in videos:
        groups[v.group].add(v.split)
    assert all(len(s) == 1 for s in groups.values())  # a group never straddles train and test
    assert {v.split for v in videos} == {"train", "test"}
    assert demo_videos(replace(p, videos=37))[:36] == videos


def test_extra_test_groups_grow_the_test_split_only(params):
    p = replace(
        params.demo["demo"], motions=MOTION_NAMES[:6], videos=40, clips_per_group=2, test_every=3, extra_test_groups=0
    )
    base = demo_videos(p)
    grown = demo_videos(replace(p, extra_test_groups=5))
    assert grown[: len(base)] == base  # every video of the base demo, unchanged
    extra = grown[len(base) :]
    assert len(extra) == 5 * 6 * 2 and {v.split for v in extra} == {"test"}
    # Video 40 sits in the partial group 4; the extra groups start after it, 2 clips of each class.
    assert sorted({v.group for v in extra}) == [5, 6, 7, 8, 9]
    assert {(v.class_name, v.clip) for v in extra if v.group == 5} == {(m, c) for m in MOTION_NAMES[:6] for c in (1, 2)}
    assert len({v.rel_path for v in grown}) == len(grown)


def test_appearance_is_per_group_and_motion_is_per_class(params):
    p = replace(
        params.demo["demo"], motions=MOTION_NAMES[:6], videos=24, clips_per_group=2, frames=16, height=48, width=64
    )
    videos = demo_videos(p)
    group1 = [v for v in videos if v.group == 1 and v.clip == 1]
    group2 = [v for v in videos if v.group == 2 and v.clip == 1]
    assert len({v.class_name for v in group1}) == 6

    def colour(v):  # mean colour of the first frame: appearance, not motion
        return render_video(v, p)[0].reshape(-1, 3).mean(0)

    within = max(np.abs(colour(a) - colour(group1[0])).max() for a in group1[1:])
    across = np.abs(colour(group2[0]) - colour(group1[0])).max()
    assert within < across


def test_classes_of_one_shot_share_the_first_frame(params):
    """Drift and roll start from the same frame in every class of a (group, clip) shot, so
    only the motion tells them apart; another shot starts elsewhere."""
    p = replace(
        params.demo["demo"], motions=MOTION_NAMES[:6], videos=24, clips_per_group=2, frames=4, height=48, width=64
    )
    videos = demo_videos(p)
    shot = [v for v in videos if v.group == 1 and v.clip == 1]
    other = next(v for v in videos if v.group == 1 and v.clip == 2)
    first = [render_video(v, p)[0].astype(float) for v in shot]
    same = max(np.abs(f - first[0]).mean() for f in first[1:])
    elsewhere = np.abs(render_video(other, p)[0].astype(float) - first[0]).mean()
    assert same < 5 < elsewhere  # sensor noise only (sigma 3) against a different placement


@pytest.mark.parametrize(
    "class_name, axis, sign", [("DriftRight", 1, 1), ("DriftLeft", 1, -1), ("DriftDown", 0, 1), ("DriftUp", 0, -1)]
)
def test_drift_classes_move_the_scene_their_way(params, class_name, axis, sign):
    p = replace(params.demo["demo"], motions=MOTION_NAMES[:4], videos=4, frames=8, height=48, width=64)
    video = next(v for v in demo_videos(p) if v.class_name == class_name)
    frames = render_video(video, p).astype(float).mean(-1)
    # The shift that best aligns frame 7 to frame 0 has the class's direction.
    errors = {
        s: np.abs(np.roll(frames[0], s, axis=axis)[8:-8, 8:-8] - frames[7][8:-8, 8:-8]).mean() for s in range(-8, 9)
    }
    best = min(errors, key=errors.get)
    assert np.sign(best) == sign and abs(best) >= 3


def _drift_shift(frames: np.ndarray) -> int:
    """The horizontal shift (px) that best aligns frame 7 to frame 0."""
    grey = frames.astype(float).mean(-1)
    errors = {
        s: np.abs(np.roll(grey[0], s, axis=1)[8:-8, 12:-12] - grey[7][8:-8, 12:-12]).mean() for s in range(-12, 13)
    }
    return min(errors, key=errors.get)


def test_speed_scales_the_motion_and_dots_move_with_the_scene(params):
    p = replace(params.demo["demo"], motions=MOTION_NAMES[:2], videos=2, frames=8, height=48, width=64, dots=400)
    video = demo_videos(p)[0]  # DriftRight
    slow, fast = _drift_shift(render_video(video, p)), _drift_shift(render_video(video, replace(p, speed=2.0)))
    assert slow >= 3 and abs(fast - 2 * slow) <= 1
    # The dots are texture of the scene: the first frame of every class of a shot holds them alike,
    # and they add contrast the smooth texture lacks.
    first = [render_video(v, p)[0].astype(float) for v in demo_videos(p)]
    assert np.abs(first[1] - first[0]).mean() < 5
    plain = render_video(video, replace(p, dots=0))[0]
    assert render_video(video, p)[0].std() > plain.std()
    assert not np.array_equal(render_video(video, p)[0], plain)


def test_demo_is_deterministic_real_video_that_indexes_cleanly(params, tmp_path):
    p = replace(params.demo["demo"], videos=8, extra_test_groups=0, frames=18, height=48, width=64, n_jobs=1)
    generate_demo(p, tmp_path / "a" / "videos", tmp_path / "a" / "lists")
    generate_demo(replace(p, n_jobs=2), tmp_path / "b" / "videos", tmp_path / "b" / "lists")  # the same bytes
    for v in demo_videos(p):
        assert (tmp_path / "a/videos" / v.rel_path).read_bytes() == (tmp_path / "b/videos" / v.rel_path).read_bytes()
    entries, rejects = build_index(tmp_path / "a/videos", tmp_path / "a/lists", 4, "ucf101", OPTIONS)
    assert rejects == [] and len(entries) == 8
    decoded = decode_frames(tmp_path / "a/videos" / entries[0]["path"], 48, 64)
    assert decoded.frames.shape == (18, 48, 64, 3) and decoded.warning == "" and decoded.timing_warning == ""


def test_transfer_demo_writes_official_hmdb51_split_files_that_index_cleanly(params, tmp_path):
    """demo_transfer: other motions, another seed, HMDB51's <class>_test_split1.txt (1 train, 2 test)."""
    p = replace(params.demo["demo_transfer"], videos=8, extra_test_groups=0, frames=4, height=24, width=32)
    assert p.layout == "hmdb51" and not set(p.motions) & set(params.demo["demo"].motions)
    videos = generate_demo(p, tmp_path / "videos", tmp_path / "lists")
    files = sorted(f.name for f in (tmp_path / "lists").iterdir())
    assert files == sorted(f"{m}_test_split1.txt" for m in p.motions)
    first = (tmp_path / "lists" / files[0]).read_text().splitlines()[0]
    assert first.rsplit(" ", 2)[1] in ("1", "2") and "/" not in first  # "<video>.avi 1 ", as the official files
    entries, rejects = build_index(tmp_path / "videos", tmp_path / "lists", 2, "hmdb51", OPTIONS)
    assert rejects == [] and len(entries) == len(videos)
    by_path = {v.rel_path: v for v in videos}
    assert all(e["split"] == by_path[e["path"]].split and e["class"] == by_path[e["path"]].class_name for e in entries)
    # HMDB51 labels classes in the order of their split files (sorted names), not in params order.
    assert sorted({(e["label"], e["class"]) for e in entries}) == list(enumerate(sorted(p.motions)))[: len(entries)]


def test_diagonal_drifts_move_along_both_axes(params):
    p = replace(params.demo["demo_transfer"], videos=6, frames=8, height=48, width=64)
    video = next(v for v in demo_videos(p) if v.class_name == "DriftDownRight")
    frames = render_video(video, p).astype(float).mean(-1)
    shifts = [(dy, dx) for dy in range(-6, 7) for dx in range(-6, 7)]
    errors = {s: np.abs(np.roll(frames[0], s, axis=(0, 1))[8:-8, 8:-8] - frames[7][8:-8, 8:-8]).mean() for s in shifts}
    dy, dx = min(errors, key=errors.get)
    assert dy >= 2 and dx >= 2
