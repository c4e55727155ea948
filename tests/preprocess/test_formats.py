"""Every input format on real footage, the official HMDB51 split files, and each bad line as a reject."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipeline.errors import InputError
from preprocess.dataset import build_index
from preprocess.formats import FormatOptions
from tests.conftest import REAL_CLIPS, SPLITS

OPTIONS = FormatOptions(split=1, test_ratio=0.3, split_seed=0)
LABELED = [c for c in REAL_CLIPS if c.parent.name != "unlabeled"]


def class_of(clip: Path) -> str:
    """v_ApplyEyeMakeup_g01_c01 -> ApplyEyeMakeup; climb_stairs_01 -> climb_stairs; boxing_p01_d2 -> boxing."""
    if clip.stem.startswith("v_"):
        return clip.stem.split("_")[1]
    return re.sub(r"(_p\d+_d\d+|_\d+)$", "", clip.stem)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """One copy of the real clips; every layout below hard-links to it (a symlink out of the root is a reject)."""
    folder = tmp_path_factory.mktemp("pool")
    for i, clip in enumerate(LABELED):
        shutil.copyfile(clip, folder / f"{i}{clip.suffix}")
    return folder


def _link(pool: Path, i: int, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(pool / f"{i}{LABELED[i].suffix}", target)


def _split_of(i: int) -> str:
    return "test" if i % 4 == 3 else "train"


def _expected() -> Counter:
    return Counter((class_of(c), _split_of(i), c.read_bytes().__len__()) for i, c in enumerate(LABELED))


def _got(entries) -> Counter:
    return Counter((e["class"].replace(" ", "_"), e["split"], e["size"]) for e in entries)


def test_ucf101_format(pool, tmp_path):
    root, lists = tmp_path / "videos", tmp_path / "lists"
    classes = sorted({class_of(c) for c in LABELED})
    lines = {"train": [], "test": []}
    for i, clip in enumerate(LABELED):
        _link(pool, i, root / class_of(clip) / clip.name)
        lines[_split_of(i)].append(f"{class_of(clip)}/{clip.name}")
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{n + 1} {c}\r\n" for n, c in enumerate(classes)))
    for split, rows in lines.items():
        (lists / f"{split}list01.txt").write_text("\r\n".join(rows))
    entries, rejects = build_index(root, lists, 4, "ucf101", OPTIONS)
    assert rejects == [] and _got(entries) == _expected()


def test_hmdb51_format(pool, tmp_path):
    root, lists = tmp_path / "videos", tmp_path / "splits"
    per_class: dict[str, list[str]] = {}
    for i, clip in enumerate(LABELED):
        _link(pool, i, root / class_of(clip) / clip.name)
        per_class.setdefault(class_of(clip), []).append(f"{clip.name} {1 if _split_of(i) == 'train' else 2} ")
    lists.mkdir()
    for name, rows in per_class.items():
        (lists / f"{name}_test_split1.txt").write_text("\n".join(rows + ["unused_video.avi 0"]) + "\n")
    entries, rejects = build_index(root, lists, 4, "hmdb51", OPTIONS)
    assert rejects == [] and _got(entries) == _expected()


def test_list_format_any_depth_and_spaces(pool, tmp_path):
    root, lists = tmp_path / "videos", tmp_path / "lists"
    classes = sorted({class_of(c) for c in LABELED})
    rows = {"train": [], "test": []}
    for i, clip in enumerate(LABELED):
        rel = f"deep/{class_of(clip)}/clip number {i}{clip.suffix}"
        _link(pool, i, root / rel)
        rows[_split_of(i)].append(f"{rel} {classes.index(class_of(clip))}")
    lists.mkdir()
    (lists / "classes.txt").write_text("\n".join(classes) + "\n")
    for split, lines in rows.items():
        (lists / f"{split}.txt").write_text("\n".join(lines) + "\n")
    entries, rejects = build_index(root, lists, 4, "list", OPTIONS)
    assert rejects == [] and _got(entries) == _expected()


def test_kinetics_csv_format_with_spaces_in_class_names(pool, tmp_path):
    root = tmp_path / "kinetics"
    rows = ["label,youtube_id,time_start,time_end,split"]
    for i, clip in enumerate(LABELED):
        label = class_of(clip).replace("_", " ")
        _link(pool, i, root / label / f"yt{i:03d}_{i:06d}_{i + 10:06d}.mp4")
        rows.append(f"{label},yt{i:03d},{i},{i + 10},{'val' if _split_of(i) == 'test' else 'train'}")
    (tmp_path / "kinetics.csv").write_text("\n".join(rows) + "\n")
    entries, rejects = build_index(root, tmp_path / "kinetics.csv", 4, "kinetics_csv", OPTIONS)
    assert rejects == [] and _got(entries) == _expected()
    assert any(" " in e["class"] for e in entries)


def test_folder_format_keeps_groups_together_and_is_seeded(pool, tmp_path):
    root = tmp_path / "videos"
    for i, clip in enumerate(LABELED):
        _link(pool, i, root / class_of(clip) / "any" / "depth" / clip.name)
    # Two more clips of one UCF101 group: a group goes to one split as a whole.
    for c in (1, 2):
        _link(pool, 0, root / "ApplyEyeMakeup" / f"v_ApplyEyeMakeup_g01_c0{c + 1}.avi")
    entries, rejects = build_index(root, root, 4, "folder", OPTIONS)
    assert rejects == [] and len(entries) == len(LABELED) + 2
    assert {e["class"] for e in entries} == {class_of(c) for c in LABELED}
    group = {e["split"] for e in entries if "_g01_" in e["path"] and e["class"] == "ApplyEyeMakeup"}
    assert len(group) == 1
    again, _ = build_index(root, root, 4, "folder", OPTIONS)
    assert [e["split"] for e in again] == [e["split"] for e in entries]
    other, _ = build_index(root, root, 4, "folder", FormatOptions(1, 0.3, 1))
    assert [e["split"] for e in other] != [e["split"] for e in entries]


def test_unlabeled_format_indexes_every_video_for_pretraining(tmp_path):
    root = tmp_path / "unlabeled"
    shutil.copytree(REAL_CLIPS[0].parents[1] / "unlabeled", root)
    entries, rejects = build_index(root, root, 2, "unlabeled", OPTIONS)
    assert rejects == [] and len(entries) == len(
        [c for c in REAL_CLIPS if c.parent.parent.name == "unlabeled" or c.parent.name == "unlabeled"]
    )
    assert {(e["split"], e["label"], e["class"]) for e in entries} == {("train", -1, None)}


@pytest.fixture(scope="module")
def hmdb51_split_files(tmp_path_factory) -> tuple[Path, Path]:
    """HMDB51's official per-class split-1 files, written from the split lists in ../shared/splits,
    and a stand-in file (hard links) for every video."""
    folder = tmp_path_factory.mktemp("hmdb51")
    root, lists = folder / "videos", folder / "testTrainMulti_7030_splits"
    stand_in = folder / "clip.avi"
    stand_in.write_bytes(b"x" * 64)
    per_class: dict[str, list[str]] = {}
    for split, code in (("train", 1), ("test", 2)):
        for line in (SPLITS / "hmdb51" / f"{split}list01.txt").read_text().splitlines():
            if line.strip():
                rel = line.split()[0]
                name, video = rel.split("/", 1)
                per_class.setdefault(name, []).append(f"{video} {code}")
                (root / name).mkdir(parents=True, exist_ok=True)
                os.link(stand_in, root / rel)
    lists.mkdir()
    for name, rows in per_class.items():
        (lists / f"{name}_test_split1.txt").write_text("\n".join(rows) + "\n")
    return root, lists


def test_official_hmdb51_split_files_give_3570_and_1530(hmdb51_split_files):
    root, lists = hmdb51_split_files
    entries, rejects = build_index(root, lists, 8, "hmdb51", OPTIONS)
    assert rejects == []
    assert Counter(e["split"] for e in entries) == {"train": 3570, "test": 1530}
    assert len({e["class"] for e in entries}) == 51


# Each bad line: rejected naming the list file, the line and the reason, while the rest goes on.


def _list_dataset(tmp_path: Path, train_lines: list[str], files: list[str]) -> tuple[Path, Path]:
    root, lists = tmp_path / "videos", tmp_path / "lists"
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode())
    lists.mkdir()
    (lists / "classes.txt").write_text("walk\nrun\n")
    (lists / "train.txt").write_text("\n".join(train_lines) + "\n")
    (lists / "test.txt").write_text("run/t.mp4 1\n")
    return root, lists


def _index(root, lists, fmt="list"):
    entries, rejects = build_index(root, lists, 2, fmt, OPTIONS)
    return {e["path"] for e in entries}, rejects


def test_a_kinetics_style_class_with_spaces_in_ucf101_lists_is_a_reject(tmp_path):
    root, lists = tmp_path / "videos", tmp_path / "lists"
    for rel in ("Walk/a.avi", "air drumming/abc.mp4", "Walk/t.avi"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"v")
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 Walk\n2 air drumming\n")
    (lists / "trainlist01.txt").write_text("Walk/a.avi 1\nair drumming/abc.mp4 2\n")
    (lists / "testlist01.txt").write_text("Walk/t.avi\n")
    kept, rejects = _index(root, lists, "ucf101")
    assert kept == {"Walk/a.avi", "Walk/t.avi"}
    assert [(r.source, r.path) for r in rejects] == [("trainlist01.txt:2", "air drumming/abc.mp4 2")]
    assert "integer label" in rejects[0].reason


def test_spaces_in_file_names_are_kept(tmp_path):
    kept, rejects = _index(*_list_dataset(tmp_path, ["walk/my clip.mp4 0"], ["walk/my clip.mp4", "run/t.mp4"]))
    assert kept == {"walk/my clip.mp4", "run/t.mp4"} and rejects == []


def test_a_utf8_bom_is_ignored(tmp_path):
    root, lists = _list_dataset(tmp_path, [], ["walk/a.mp4", "run/t.mp4"])
    (lists / "train.txt").write_bytes(b"\xef\xbb\xbfwalk/a.mp4 0\n")
    kept, rejects = _index(root, lists)
    assert kept == {"walk/a.mp4", "run/t.mp4"} and rejects == []


def test_a_non_integer_label_is_a_reject(tmp_path):
    kept, rejects = _index(
        *_list_dataset(tmp_path, ["walk/a.mp4 0", "walk/b.mp4 one"], ["walk/a.mp4", "walk/b.mp4", "run/t.mp4"])
    )
    assert kept == {"walk/a.mp4", "run/t.mp4"}
    assert [(r.source, r.reason) for r in rejects] == [("train.txt:2", "the label 'one' is not an integer")]


def test_a_directory_named_like_a_video_is_a_reject(tmp_path):
    root, lists = _list_dataset(tmp_path, ["walk/a.mp4 0", "walk/folder.mp4 0"], ["walk/a.mp4", "run/t.mp4"])
    (root / "walk/folder.mp4").mkdir()
    kept, rejects = _index(root, lists)
    assert kept == {"walk/a.mp4", "run/t.mp4"}
    assert [(r.path, r.source, r.reason) for r in rejects] == [
        ("walk/folder.mp4", "train.txt:2", "a directory, not a video file")
    ]


def test_a_dangling_symlink_is_a_reject(tmp_path):
    root, lists = _list_dataset(tmp_path, ["walk/a.mp4 0", "walk/gone.mp4 0"], ["walk/a.mp4", "run/t.mp4"])
    os.symlink(root / "walk/nowhere.mp4", root / "walk/gone.mp4")
    kept, rejects = _index(root, lists)
    assert kept == {"walk/a.mp4", "run/t.mp4"}
    assert [(r.path, r.source, r.reason) for r in rejects] == [("walk/gone.mp4", "train.txt:2", "dangling symlink")]


def test_a_symlink_that_leaves_the_root_is_a_reject(tmp_path):
    root, lists = _list_dataset(
        tmp_path, ["walk/a.mp4 0", "walk/out.mp4 0", "walk/in.mp4 0"], ["walk/a.mp4", "run/t.mp4"]
    )
    (tmp_path / "secret.mp4").write_bytes(b"outside")
    os.symlink(tmp_path / "secret.mp4", root / "walk/out.mp4")
    os.symlink(root / "walk/a.mp4", root / "walk/in.mp4")  # inside the root: fine (a second name)
    kept, rejects = _index(root, lists)
    assert kept == {"walk/a.mp4", "walk/in.mp4", "run/t.mp4"}
    assert len(rejects) == 1 and rejects[0].reason.startswith("symlink leaves the dataset root")


def test_a_latin1_list_line_is_a_reject_and_the_rest_goes_on(tmp_path):
    root, lists = _list_dataset(tmp_path, [], ["walk/a.mp4", "walk/caf\u00e9.mp4", "run/t.mp4"])
    (lists / "train.txt").write_bytes("walk/a.mp4 0\nwalk/caf\u00e9.mp4 0\n".encode("latin-1"))
    kept, rejects = _index(root, lists)
    assert kept == {"walk/a.mp4", "run/t.mp4"}
    assert [(r.source, r.path) for r in rejects] == [("train.txt:2", "walk/caf\u00e9.mp4 0")]
    assert "not UTF-8" in rejects[0].reason


def test_files_differing_only_by_extension_keep_their_own_ids(tmp_path):
    root, lists = _list_dataset(
        tmp_path,
        ["walk/a.mp4 0", "walk/a.avi 0", "walk/b.mp4 0"],
        ["walk/a.mp4", "walk/a.avi", "walk/b.mp4", "run/t.mp4"],
    )
    entries, rejects = build_index(root, lists, 2, "list", OPTIONS)
    assert rejects == []
    assert sorted(e["id"] for e in entries) == ["run/t", "walk/a.avi", "walk/a.mp4", "walk/b"]


def _ucf101_dataset(tmp_path, class_index: str, train: list[str], test: list[str]):
    root, lists = tmp_path / "videos", tmp_path / "lists"
    for rel in ("Alpha/v_Alpha_g01_c01.avi", "Alpha/v_Alpha_g07_c01.avi", "Beta/v_Beta_g01_c01.avi"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"v")
    lists.mkdir()
    (lists / "classInd.txt").write_text(class_index)
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root, lists


def test_a_class_number_given_twice_is_an_error_naming_the_file_the_line_and_both_classes(tmp_path):
    root, lists = _ucf101_dataset(tmp_path, "1 Alpha\n2 Beta\n2 Gamma\n", ["Alpha/v_Alpha_g07_c01.avi"], [])
    with pytest.raises(
        InputError,
        match=r"classInd\.txt: class number 2 is given twice, to 'Beta' \(line 2\) "
        r"and to 'Gamma' \(line 3\)",
    ):
        _index(root, lists, "ucf101")


def test_a_class_name_given_twice_is_an_error_naming_the_file_and_both_lines(tmp_path):
    root, lists = _ucf101_dataset(tmp_path, "1 Alpha\n2 Beta\n3 Alpha\n", ["Alpha/v_Alpha_g07_c01.avi"], [])
    with pytest.raises(InputError, match=r"classInd\.txt: class 'Alpha' is listed twice, on lines 1 and 3"):
        _index(root, lists, "ucf101")


def test_a_normalisable_list_path_keeps_its_video_and_id(tmp_path):
    root, lists = _ucf101_dataset(
        tmp_path,
        "1 Alpha\n2 Beta\n",
        ["./Alpha/v_Alpha_g07_c01.avi", "Beta//v_Beta_g01_c01.avi", "../Alpha/v_Alpha_g07_c01.avi"],
        ["/Alpha/v_Alpha_g01_c01.avi", "Alpha/./v_Alpha_g01_c01.avi"],
    )
    entries, rejects = build_index(root, lists, 2, "ucf101", OPTIONS)
    by_id = {e["id"]: (e["class"], e["split"]) for e in entries}
    assert by_id == {
        "Alpha/v_Alpha_g07_c01": ("Alpha", "train"),
        "Beta/v_Beta_g01_c01": ("Beta", "train"),
        "Alpha/v_Alpha_g01_c01": ("Alpha", "test"),
    }
    assert [(r.path, r.reason) for r in rejects] == [
        ("../Alpha/v_Alpha_g07_c01.avi", "path leaves the dataset root or is not Class/video"),
        ("/Alpha/v_Alpha_g01_c01.avi", "path leaves the dataset root or is not Class/video"),
    ]


def test_hmdb51_lists_without_the_split_files_is_an_input_error_naming_the_folder(tmp_path):
    """Every other list error is an InputError; this one was a FileNotFoundError."""
    (tmp_path / "lists").mkdir()
    (tmp_path / "root").mkdir()
    with pytest.raises(InputError, match=r"lists: no <class>_test_split1\.txt files"):
        build_index(tmp_path / "root", tmp_path / "lists", 4, "hmdb51", OPTIONS)


def _kinetics_rows(pool, root, order, extra=None):
    """The LABELED clips as a Kinetics layout, their CSV rows with the columns in ``order``."""
    rows = [",".join(order)]
    for i, clip in enumerate(LABELED):
        label = class_of(clip).replace("_", " ")
        _link(pool, i, root / label / f"yt{i:03d}_{i:06d}_{i + 10:06d}.mp4")
        cells = {"label": label, "youtube_id": f"yt{i:03d}", "time_start": str(i), "time_end": str(i + 10),
                 "split": "val" if _split_of(i) == "test" else "train", "is_cc": "0"}  # fmt: skip
        rows.append(",".join(cells[c] for c in order))
    return rows + (extra or [])


def test_kinetics_csv_columns_are_read_by_their_header_names(pool, tmp_path):
    """A CSV whose header orders the columns otherwise was read by position: every row a missing file."""
    order = ["youtube_id", "split", "label", "is_cc", "time_end", "time_start"]
    (tmp_path / "k.csv").write_text("\n".join(_kinetics_rows(pool, tmp_path / "k", order)) + "\n")
    entries, rejects = build_index(tmp_path / "k", tmp_path / "k.csv", 4, "kinetics_csv", OPTIONS)
    assert rejects == [] and _got(entries) == _expected()


def test_a_kinetics_row_whose_start_is_not_before_its_end_is_a_reject_and_the_others_stay(pool, tmp_path):
    order = ["label", "youtube_id", "time_start", "time_end", "split"]
    bad = ["abseiling,zzz,30,20,train", "abseiling,yyy,20,20,train"]
    (tmp_path / "k.csv").write_text("\n".join(_kinetics_rows(pool, tmp_path / "k", order, bad)) + "\n")
    entries, rejects = build_index(tmp_path / "k", tmp_path / "k.csv", 4, "kinetics_csv", OPTIONS)
    assert _got(entries) == _expected()
    n = len(LABELED) + 2
    assert [(r.path, r.reason, r.source) for r in rejects] == [
        ("abseiling,zzz,30,20,train", "time_start 30 is not before time_end 20", f"k.csv:{n}"),
        ("abseiling,yyy,20,20,train", "time_start 20 is not before time_end 20", f"k.csv:{n + 1}"),
    ]


def test_kinetics_lists_pointing_at_a_folder_is_one_input_error_naming_it(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "lists").mkdir()
    with pytest.raises(InputError, match=r"lists: a folder, where a list file is expected"):
        build_index(tmp_path / "root", tmp_path / "lists", 4, "kinetics_csv", OPTIONS)


def test_a_kinetics_header_without_a_needed_column_names_it(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "k.csv").write_text("label,youtube_id,time_start,split\nx,y,1,train\n")
    with pytest.raises(InputError, match="the header names no time_end column"):
        build_index(tmp_path / "root", tmp_path / "k.csv", 4, "kinetics_csv", OPTIONS)
