"""Dataset layouts: each format turns a root (and its lists) into listed videos and line rejects.

A format is a function ``(root, lists, options) -> Layout`` behind the ``FORMATS``
registry (``dataset.format``). It only reads the lists (or scans the folders); checking the
files themselves (present, a regular file inside the root, not listed twice) is the index's
job (``preprocess/dataset.py``). Every malformed line becomes a ``Reject`` naming the file,
the line number and the reason, never an exception.

| format | layout |
|---|---|
| ucf101 | ``classInd.txt`` + ``trainlistNN.txt`` / ``testlistNN.txt`` (``Class/video.avi [label]``) |
| hmdb51 | official per-class ``<class>_test_splitN.txt``: ``video.avi 1`` train, ``2`` test, ``0`` unused |
| list | mmaction2-style ``train.txt`` / ``test.txt``: ``relative/path.ext [label]``, any depth, spaces allowed; optional ``classes.txt`` |
| folder | class = first folder under the root, any depth below; test split drawn by a seeded ratio, whole recording groups (``video_group``) |
| kinetics_csv | ``label,youtube_id,time_start,time_end,split`` with ``<label>/<youtube_id>_<start:06d>_<end:06d>.mp4`` files |
| unlabeled | every video under the root, any depth, all in the train split; pretraining only |
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.errors import InputError

VIDEO_SPLITS = ("train", "test")  # the split values of the index

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".3gp")
_UCF101_GROUP = re.compile(r"_(g\d+)_c\d+$")  # v_<Class>_g08_c01: group 8, clip 1


@dataclasses.dataclass(frozen=True)
class Reject:
    path: str  # the listed path (a malformed line: its text)
    reason: str
    source: str = ""  # where it is listed: "<list file>:<line>" (empty for folder scans)


@dataclasses.dataclass(frozen=True)
class Listed:
    rel_path: str  # relative to the root, '/'-separated, as the list or the scan gives it
    split: str  # train | test
    class_name: str | None  # None: unlabeled
    listed_label: int | None = None  # a label the list states (0-based), checked against the class
    source: str = ""  # "<list file>:<line>" (empty for folder scans)


@dataclasses.dataclass(frozen=True)
class Layout:
    classes: list[str] | None  # class names in label order (0-based); None: unlabeled
    listed: list[Listed]
    rejects: list[Reject]
    two_level: bool = False  # paths must be exactly Class/video (UCF101 lists)


@dataclasses.dataclass(frozen=True)
class FormatOptions:
    split: int  # official split 1-3 (ucf101, hmdb51)
    test_ratio: float  # folder: share of each class's groups drawn for test
    split_seed: int  # folder: the draw's seed


def read_lines(path: Path) -> tuple[list[tuple[int, str]], list[Reject]]:
    """Non-blank lines of a text list as (1-based number, text), and a reject per undecodable line.

    A UTF-8 byte-order mark is dropped; CRLF endings are fine; a line that is not UTF-8 (a
    Latin-1 list) is rejected naming the file and line, the others go on.
    """
    if path.is_dir():
        raise InputError(f"{path}: a folder, where a list file is expected; point the dataset's lists at the file")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines, rejects = [], []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            rejects.append(
                Reject(
                    raw.decode("latin-1").strip(),
                    "not UTF-8 text (a Latin-1 list?); save the list as UTF-8",
                    f"{path.name}:{number}",
                )
            )
            continue
        if text:
            lines.append((number, text))
    return lines, rejects


def read_class_index(path: Path) -> tuple[list[str], list[Reject]]:
    """UCF101's ``classInd.txt``: class names in label order, and a reject per malformed line.

    A number or a name given twice is an error naming the file and both lines (``InputError``),
    raised before any list line is read: either would silently relabel or reject videos.
    """
    index_lines, rejects = read_lines(path)
    classes: dict[int, tuple[str, int]] = {}  # number -> (name, line)
    lines_of: dict[str, int] = {}  # name -> line
    for number, text in index_lines:
        parts = text.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            rejects.append(Reject(text, "expected '<number> <class>'", f"{path.name}:{number}"))
            continue
        class_number, name = int(parts[0]), parts[1].strip()
        if class_number in classes:
            first, first_line = classes[class_number]
            raise InputError(
                f"{path}: class number {class_number} is given twice, to {first!r} (line {first_line}) "
                f"and to {name!r} (line {number})"
            )
        if name in lines_of:
            raise InputError(f"{path}: class {name!r} is listed twice, on lines {lines_of[name]} and {number}")
        classes[class_number] = (name, number)
        lines_of[name] = number
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise InputError(f"{path}: class numbers are not 1..{len(classes)}")
    return [classes[i][0] for i in sorted(classes)], rejects


def normal_list_path(text: str) -> PurePosixPath:
    """A list's path with ``\\`` as ``/``, and ``./`` and doubled slashes dropped (``..`` and a leading
    ``/`` are kept, so that the index can reject a path that leaves the root)."""
    return PurePosixPath(text.replace("\\", "/"))


def _ucf101(root: Path, lists: Path, o: FormatOptions) -> Layout:
    classes, rejects = read_class_index(lists / "classInd.txt")
    listed = []
    for split in ("train", "test"):
        path = lists / f"{split}list{o.split:02d}.txt"
        lines, bad = read_lines(path)
        rejects += bad
        for number, text in lines:
            parts = text.split()
            label = None
            if len(parts) > 2 or (len(parts) == 2 and not parts[1].lstrip("-").isdigit()):
                rejects.append(Reject(text, "expected 'Class/video.avi [integer label]'", f"{path.name}:{number}"))
                continue
            if len(parts) == 2:
                label = int(parts[1]) - 1
            # Normalised first, so that ./Class/video.avi takes its class from Class, not from '.'.
            rel = normal_list_path(parts[0])
            listed.append(Listed(str(rel), split, rel.parts[0] if rel.parts else "", label, f"{path.name}:{number}"))
    return Layout(classes, listed, rejects, two_level=True)


def _hmdb51(root: Path, lists: Path, o: FormatOptions) -> Layout:
    files = sorted(lists.glob(f"*_test_split{o.split}.txt"))
    if not files:
        raise InputError(
            f"{lists}: no <class>_test_split{o.split}.txt files, as the hmdb51 format's split {o.split} needs"
        )
    classes = [f.name[: -len(f"_test_split{o.split}.txt")] for f in files]
    listed, rejects = [], []
    for class_name, path in zip(classes, files, strict=True):
        lines, bad = read_lines(path)
        rejects += bad
        for number, text in lines:
            name, _, code = text.rpartition(" ")
            name = name.strip()
            if code not in ("0", "1", "2") or not name:
                rejects.append(Reject(text, "expected '<video> 0|1|2'", f"{path.name}:{number}"))
                continue
            if code != "0":  # 0: not used by this split
                listed.append(
                    Listed(
                        f"{class_name}/{name}",
                        "train" if code == "1" else "test",
                        class_name,
                        source=f"{path.name}:{number}",
                    )
                )
    return Layout(classes, listed, rejects)


def _list(root: Path, lists: Path, o: FormatOptions) -> Layout:
    names = None
    if (lists / "classes.txt").is_file():
        class_lines, rejects = read_lines(lists / "classes.txt")
        names = [text for _, text in class_lines]
    else:
        rejects = []
    listed, labels = [], set()
    for split in ("train", "test"):
        path = lists / f"{split}.txt"
        if not path.is_file():
            continue
        lines, bad = read_lines(path)
        rejects += bad
        for number, text in lines:
            head, _, tail = text.rpartition(" ")
            if head and tail.lstrip("-").isdigit():
                rel, label = head.strip(), int(tail)
            elif Path(text).suffix.lower() in VIDEO_SUFFIXES:
                rel, label = text, None  # no label: the whole line is the path (spaces allowed)
            else:
                rejects.append(Reject(text, f"the label {tail!r} is not an integer", f"{path.name}:{number}"))
                continue
            if label is not None and (label < 0 or (names is not None and label >= len(names))):
                rejects.append(Reject(text, f"label {label} is outside the classes", f"{path.name}:{number}"))
                continue
            labels.add(label)
            listed.append(Listed(rel, split, None if label is None else str(label), label, f"{path.name}:{number}"))
    if labels == {None}:
        return Layout(None, listed, rejects)
    n_classes = len(names) if names is not None else max(label for label in labels if label is not None) + 1
    classes = names if names is not None else [str(i) for i in range(n_classes)]
    listed = [
        dataclasses.replace(e, class_name=None if e.listed_label is None else classes[e.listed_label]) for e in listed
    ]
    return Layout(classes, listed, rejects)


def _videos_under(folder: Path) -> list[str]:
    """'/'-separated paths of every video file name under ``folder`` (any depth), sorted."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
    )


def video_group(video_id: str) -> str:
    """The recording group of a video: ``gNN`` in UCF101's naming, else the video itself.

    UCF101 splits by group number across all classes (split 1 tests groups 1-7), because the
    clips of one group share actors and scene; HMDB51-style names carry no group.
    """
    match = _UCF101_GROUP.search(PurePosixPath(video_id).stem)
    return match.group(1) if match else video_id


def _folder(root: Path, lists: Path, o: FormatOptions) -> Layout:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    listed = []
    for class_name in classes:
        paths = [f"{class_name}/{p}" for p in _videos_under(root / class_name)]
        groups = sorted({video_group(p) for p in paths})
        # Seeded per class, so adding a class leaves the others' splits unchanged.
        rng = np.random.default_rng([o.split_seed, *class_name.encode()])
        order = [groups[i] for i in rng.permutation(len(groups))]
        n_test = round(o.test_ratio * len(groups))
        test = set(order[:n_test])
        listed += [Listed(p, "test" if video_group(p) in test else "train", class_name) for p in paths]
    return Layout(classes, listed, [])


KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")


def _kinetics_csv(root: Path, lists: Path, o: FormatOptions) -> Layout:
    """The official Kinetics CSV: a header naming the columns (in any order; extra ones such as
    ``is_cc`` are ignored), or no header and the official order. A row is rejected, naming its
    line, when it is not one CSV row, lacks a column, has non-integer times, a start not before
    its end, or an unknown split."""
    path = lists
    lines, rejects = read_lines(path)
    listed, classes = [], set()
    splits = {"train": "train", "val": "test", "validate": "test", "test": "test"}
    column = {name: i for i, name in enumerate(KINETICS_COLUMNS)}  # no header: the official order
    for number, text in lines:
        try:
            (row,) = csv.reader(io.StringIO(text))
        except (csv.Error, ValueError):
            rejects.append(Reject(text, "not one CSV row", f"{path.name}:{number}"))
            continue
        names = [c.strip() for c in row]
        if number == lines[0][0] and {"label", "youtube_id"} <= set(names):
            missing = [c for c in KINETICS_COLUMNS if c not in names]
            if missing:
                raise InputError(f"{path}: the header names no {', '.join(missing)} column (it has {', '.join(names)})")
            column = {name: names.index(name) for name in KINETICS_COLUMNS}
            continue  # the header
        if len(row) <= max(column.values()):
            rejects.append(Reject(text, f"expected the columns {','.join(KINETICS_COLUMNS)}", f"{path.name}:{number}"))
            continue
        label, youtube_id, start, end, split = (row[column[c]].strip() for c in KINETICS_COLUMNS)
        if not (start.isdigit() and end.isdigit()) or split not in splits:
            rejects.append(
                Reject(text, "time_start/time_end are not integers or the split is unknown", f"{path.name}:{number}")
            )
            continue
        if int(start) >= int(end):
            rejects.append(Reject(text, f"time_start {start} is not before time_end {end}", f"{path.name}:{number}"))
            continue
        name = f"{youtube_id}_{int(start):06d}_{int(end):06d}.mp4"
        rel = f"{label}/{name}"
        if not (root / rel).exists() and (root / split / label / name).exists():
            rel = f"{split}/{label}/{name}"  # the downloaders' <split>/<label>/ layout
        classes.add(label)
        listed.append(Listed(rel, splits[split], label, source=f"{path.name}:{number}"))
    return Layout(sorted(classes), listed, rejects)


def _unlabeled(root: Path, lists: Path, o: FormatOptions) -> Layout:
    return Layout(None, [Listed(p, "train", None) for p in _videos_under(root)], [])


FORMATS: dict[str, Callable[[Path, Path, FormatOptions], Layout]] = {
    "ucf101": _ucf101,
    "hmdb51": _hmdb51,
    "list": _list,
    "folder": _folder,
    "kinetics_csv": _kinetics_csv,
    "unlabeled": _unlabeled,
}
