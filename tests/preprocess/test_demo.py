from __future__ import annotations

from collections import defaultdict

import numpy as np

from preprocess.dataset import build_index
from preprocess.decode import decode_frames
from preprocess.demo import demo_videos, generate_demo, render_video
from tests.conftest import replace


def test_demo_layout_splits_by_group_and_adds_one_video_at_a_time(params):
    p = replace(params.demo, classes=6, videos=36, clips_per_group=2, test_every=3)
    videos = demo_videos(p)
    assert len({v.rel_path for v in videos}) == 36
    groups = defaultdict(set)
    for v in videos:
        groups[v.group].add(v.split)
    assert all(len(s) == 1 for s in groups.values())  # a group never straddles train and test
    assert {v.split for v in videos} == {"train", "test"}
    assert demo_videos(replace(p, videos=37))[:36] == videos


def test_appearance_is_per_group_and_motion_is_per_class(params):
    p = replace(params.demo, classes=6, videos=24, clips_per_group=2, frames=16, height=48, width=64)
    videos = demo_videos(p)
    same_group = [v for v in videos if v.group == 1 and v.clip == 1]
    assert len({v.class_name for v in same_group}) == 6
    first = [render_video(v, p)[0].astype(float) for v in same_group]
    # One background for all classes of a group: first frames differ only around the object.
    for other in first[1:]:
        assert np.median(np.abs(first[0] - other)) < 8
    other_group = next(v for v in videos if v.group == 2)
    assert np.median(np.abs(first[0] - render_video(other_group, p)[0])) > 8


def test_demo_is_deterministic_real_video_that_indexes_cleanly(params, tmp_path):
    p = replace(params.demo, videos=8, frames=18, height=48, width=64)
    generate_demo(p, tmp_path / "a" / "videos", tmp_path / "a" / "lists")
    generate_demo(p, tmp_path / "b" / "videos", tmp_path / "b" / "lists")
    for v in demo_videos(p):
        assert (tmp_path / "a/videos" / v.rel_path).read_bytes() == (tmp_path / "b/videos" / v.rel_path).read_bytes()
    entries, rejects = build_index(tmp_path / "a/videos", tmp_path / "a/lists", 1, n_shards=4)
    assert rejects == [] and len(entries) == 8
    frames, warning = decode_frames(tmp_path / "a/videos" / entries[0]["path"], 48, 64)
    assert frames.shape == (18, 48, 64, 3) and warning == ""
