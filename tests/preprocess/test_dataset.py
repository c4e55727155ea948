from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipeline.errors import InputError
from preprocess.dataset import (
    build_index,
    index_dataset,
    safe_relative,
    shard_of,
)
from preprocess.formats import FORMATS, FormatOptions
from preprocess.rejects import check_reject_share
from tests.conftest import REAL_CLIPS, SPLITS

OPTIONS = FormatOptions(split=1, test_ratio=0.3, split_seed=0)  # split 1; folder: a 30% test draw, seed 0


def read_split(lists: Path, split: int):
    """The official lists' entries (train, then test) as the ucf101 format reads them."""
    return FORMATS["ucf101"](Path("."), lists, FormatOptions(split, 0.3, 0)).listed


def read_class_index(path: Path) -> dict[str, int]:
    layout = FORMATS["ucf101"](Path("."), path.parent, FormatOptions(1, 0.3, 0))
    return {name: label for label, name in enumerate(layout.classes)}


@pytest.mark.parametrize(
    "dataset, split, n_train, n_test, n_classes",
    [
        ("ucf101", 1, 9537, 3783, 101),
        ("ucf101", 2, 9586, 3734, 101),
        ("ucf101", 3, 9624, 3696, 101),
        # HMDB51: 70 train and 30 test videos per class. The files lack a final newline, so
        # `wc -l` says 3,569 / 1,529; the lists hold 3,570 / 1,530 entries.
        ("hmdb51", 1, 3570, 1530, 51),
        ("hmdb51", 2, 3570, 1530, 51),
    ],
)
def test_official_split_counts_and_labels(dataset, split, n_train, n_test, n_classes):
    entries = read_split(SPLITS / dataset, split)
    counts = Counter(e.split for e in entries)
    assert (counts["train"], counts["test"]) == (n_train, n_test)
    classes = read_class_index(SPLITS / dataset / "classInd.txt")
    assert sorted(classes.values()) == list(range(n_classes))  # 0-based, contiguous
    # No CR survives the CRLF endings, and every listed label (1-based in the file) matches its folder.
    assert not any("\r" in e.rel_path for e in entries)
    assert len({e.rel_path for e in entries}) == len(entries)
    for e in entries:
        if e.listed_label is not None:
            assert classes[e.rel_path.split("/")[0]] == e.listed_label


def _ucf_like_tree(root: Path, lists: Path, stand_in: Path) -> None:
    """Every UCF101 split-1 video as a link to one small file, named as on disk (HandstandPushups)."""
    for e in read_split(lists, 1):
        target = root / e.rel_path.replace("HandStandPushups", "HandstandPushups")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(stand_in, target)  # hard links: a symlink out of the root is a reject


def test_index_of_the_official_ucf101_split_with_the_file_name_quirk(tmp_path):
    stand_in = tmp_path / "clip.avi"
    stand_in.write_bytes(b"x" * 64)  # the index hashes content; decoding is the frames stage's job
    _ucf_like_tree(tmp_path / "UCF-101", SPLITS / "ucf101", stand_in)
    entries, rejects = build_index(tmp_path / "UCF-101", SPLITS / "ucf101", 8, "ucf101", OPTIONS)
    assert rejects == []
    counts = Counter(e["split"] for e in entries)
    assert (counts["train"], counts["test"]) == (9537, 3783)
    quirk = [e for e in entries if e["class"] == "HandstandPushups"]
    assert quirk and all("HandstandPushups_g" in e["path"] for e in quirk)
    assert {e["label"] for e in entries} == set(range(101))
    assert all(0 <= e["shard"] < 8 for e in entries)


def _tiny_dataset(tmp_path: Path, lines_train: list[str], lines_test: list[str]) -> tuple[Path, Path]:
    root, lists = tmp_path / "videos", tmp_path / "lists"
    for cls in ("Walk", "Run"):
        (root / cls).mkdir(parents=True)
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 Walk\r\n2 Run\r\n")
    (lists / "trainlist01.txt").write_text("\r\n".join(lines_train) + "\r\n")
    (lists / "testlist01.txt").write_text("\r\n".join(lines_test) + "\r\n")
    return root, lists


def test_bad_list_entries_are_rejected_with_reasons_and_valid_ones_kept(tmp_path):
    root, lists = _tiny_dataset(
        tmp_path,
        [
            "Walk/a.avi 1",
            "Walk/../../etc/passwd 1",
            "/abs/Walk/x.avi 1",
            "Jump/j.avi 1",
            "Walk/missing.avi 1",
            "Run/empty.avi 2",
            "Walk/a.avi 1",
            "Run/r.avi 1",
        ],
        ["Run/b.avi", "Walk/a.avi"],
    )
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("secret")
    for rel in ("Walk/a.avi", "Run/b.avi", "Run/r.avi"):
        (root / rel).write_bytes(rel.encode())
    (root / "Run" / "empty.avi").touch()
    entries, rejects = build_index(root, lists, 2, "ucf101", OPTIONS)
    assert [(e["id"], e["split"], e["label"]) for e in entries] == [("Walk/a", "train", 0), ("Run/b", "test", 1)]
    reasons = {r.path: r.reason for r in rejects}
    assert "leaves the dataset root" in reasons["Walk/../../etc/passwd"]
    assert "leaves the dataset root" in reasons["/abs/Walk/x.avi"]
    assert "unknown class" in reasons["Jump/j.avi"]
    assert reasons["Walk/missing.avi"] == "missing file"
    assert reasons["Run/empty.avi"] == "empty file"
    assert "listed label" in reasons["Run/r.avi"]
    assert sum("listed twice" in r.reason for r in rejects) == 2  # again in train, and in test
    assert len(rejects) == 8


def test_safe_relative():
    assert str(safe_relative("Walk/a.avi")) == "Walk/a.avi"
    for bad in ("../a.avi", "Walk/../../a.avi", "/Walk/a.avi", "a.avi", "Walk/sub/a.avi"):
        assert safe_relative(bad) is None


def test_reject_share_fails_only_past_the_threshold_and_names_the_videos_the_stage_and_the_setting():
    rejects = [{"path": f"A/v{i}.avi", "reason": "missing file"} for i in range(2)]
    index = Path("artifacts/data/hmdb51/index.json")
    check_reject_share(rejects[:1], 20, 0.05, index, "dataset")  # 5% is allowed
    with pytest.raises(
        InputError, match=r"^dataset@hmdb51: 2 of 20 .*datasets.hmdb51.max_reject_share=5.0%: A/v0.avi, A/v1.avi"
    ):
        check_reject_share(rejects, 20, 0.05, index, "dataset")


@pytest.mark.parametrize(
    "video_id, n_shards, expected",
    [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", 4, shard_of("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", 4)),
    ],
)
def test_shard_assignment_is_a_stable_hash(video_id, n_shards, expected):
    # Stable across processes: Python's hash() is salted per process, sha1 is not.
    import subprocess
    import sys

    code = f"from preprocess.dataset import shard_of; print(shard_of({video_id!r}, {n_shards}))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert int(out.stdout) == expected


def test_shard_assignment_known_values_and_balance():
    # Analytic: sha1("a") starts 86f7e437faa5a7fc -> as an integer mod 7.
    assert shard_of("a", 7) == int("86f7e437faa5a7fc", 16) % 7
    ids = [e.rel_path for e in read_split(SPLITS / "ucf101", 1)]
    counts = Counter(shard_of(i, 16) for i in ids)
    assert set(counts) == set(range(16))
    assert max(counts.values()) < 1.2 * len(ids) / 16  # roughly balanced
    # Adding a video moves no other video.
    before = {i: shard_of(i, 16) for i in ids[:100]}
    assert before == {i: shard_of(i, 16) for i in ids[:100]}


def test_real_ucf101_clips_index_in_their_official_layout(tmp_path):
    """The real UCF101 clips, laid out as UCF-101/<Class>/<file>, index with the official classInd."""
    clips = [p for p in REAL_CLIPS if p.parent.name == "ucf101"]
    root = tmp_path / "UCF-101"
    lines = []
    for clip in clips:
        class_name = clip.name.split("_")[1]  # v_<Class>_gXX_cYY.avi
        (root / class_name).mkdir(parents=True)
        shutil.copyfile(clip, root / class_name / clip.name)
        lines.append(f"{class_name}/{clip.name}")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "classInd.txt").write_bytes((SPLITS / "ucf101" / "classInd.txt").read_bytes())
    (lists / "trainlist01.txt").write_text("\r\n".join(lines[:2]) + "\r\n")
    (lists / "testlist01.txt").write_text("\r\n".join(lines[2:]) + "\r\n")
    entries, rejects = build_index(root, lists, 4, "ucf101", OPTIONS)
    assert rejects == [] and len(entries) == len(clips) == 4
    classes = read_class_index(SPLITS / "ucf101" / "classInd.txt")
    for entry, clip in zip(entries, clips, strict=True):
        assert entry["label"] == classes[entry["class"]]
        assert entry["size"] == clip.stat().st_size
        assert entry["id"] == f"{entry['class']}/{clip.stem}"
    assert [e["split"] for e in entries] == ["train", "train", "test", "test"]


def _index(tmp_path, root, lists, shard_ids=(0, 1), max_share=1.0):
    out = tmp_path / "out"
    return index_dataset(
        root,
        lists,
        "ucf101",
        FormatOptions(1, 0.3, 0),
        list(shard_ids),
        max_share,
        out / "index.json",
        out / "rejects.json",
        lambda k: out / "shards" / f"{k}.json",
        [tmp_path / "frames"],
    )


def test_an_empty_test_split_fails_in_the_dataset_stage_before_the_index_is_written(tmp_path):
    root, lists = _tiny_dataset(tmp_path, ["Walk/a.avi 1"], ["Run/missing.avi"])
    (root / "Walk/a.avi").write_bytes(b"video")
    with pytest.raises(InputError, match="test split .* has no usable video"):
        _index(tmp_path, root, lists)
    assert not (tmp_path / "out/index.json").exists()
    assert json.loads((tmp_path / "out/rejects.json").read_text())[0]["reason"] == "missing file"


def test_the_dataset_stage_removes_the_shards_that_shards_ids_no_longer_lists(tmp_path):
    root, lists = _tiny_dataset(tmp_path, ["Walk/a.avi 1"], ["Run/b.avi"])
    for rel in ("Walk/a.avi", "Run/b.avi"):
        (root / rel).write_bytes(rel.encode())
    (tmp_path / "frames").mkdir()
    for name in ("0.h5", "0.json", "1.h5", "1.json", "notes.txt"):
        (tmp_path / "frames" / name).write_text("x")
    entries = _index(tmp_path, root, lists, shard_ids=[0])
    assert {e["shard"] for e in entries} == {0}
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["0.h5", "0.json", "notes.txt"]


def test_an_unreadable_root_is_named(tmp_path):
    _root, lists = _tiny_dataset(tmp_path, ["Walk/a.avi 1"], ["Run/b.avi"])
    with pytest.raises(InputError, match="nowhere: not a readable folder"):
        _index(tmp_path, tmp_path / "nowhere", lists)
