"""The dataset stage: the index of a dataset in any layout (``preprocess/formats.py``), its
validation and rejects, and one video list per shard.

Labels in the index are 0-based (-1 for unlabeled data). Invalid entries are rejected with a
reason, never raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from pipeline.atomic import write_json
from pipeline.checksums import file_sha256
from pipeline.errors import InputError
from pipeline.paths import shard_id_of
from preprocess.formats import FORMATS, VIDEO_SPLITS, FormatOptions, Layout, Listed, Reject
from preprocess.rejects import check_reject_share

log = logging.getLogger(__name__)


def safe_relative(rel_path: str, two_level: bool = True) -> PurePosixPath | None:
    """The list path as a relative path inside the root, or None if it would leave the root
    (or, with ``two_level``, is not exactly ``Class/video`` as the UCF101 lists require)."""
    path = PurePosixPath(rel_path)
    if path.is_absolute() or ".." in path.parts or not path.parts or (two_level and len(path.parts) != 2):
        return None
    return path


def file_problem(path: Path, root: Path) -> str | None:
    """Why ``path`` is not a usable video file inside ``root`` (resolved), or None."""
    if path.is_symlink() and not path.exists():
        return "dangling symlink"
    if not path.exists():
        return "missing file"
    if path.is_dir():
        return "a directory, not a video file"
    if not path.resolve().is_relative_to(root):
        return f"symlink leaves the dataset root (to {path.resolve()})"
    return None


def resolve_video(root: Path, rel: PurePosixPath, folder_cache: dict[str, dict[str, str]]) -> Path | None:
    """Find the listed file; fall back to a case-insensitive match in its class folder.

    The UCF101 lists write ``v_HandStandPushups_...`` while the files are ``v_HandstandPushups_...``.
    """
    exact = root / rel
    if exact.is_file():
        return exact
    folder = rel.parts[0]
    if folder not in folder_cache:
        class_dir = root / folder
        names = [p.name for p in class_dir.iterdir()] if class_dir.is_dir() else []
        folder_cache[folder] = {name.lower(): name for name in names}
    real_name = folder_cache[folder].get(rel.name.lower())
    return root / folder / real_name if real_name else None


def shard_of(video_id: str, n_shards: int) -> int:
    """Stable shard of a video id: the same on every machine and Python process."""
    digest = hashlib.sha1(video_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def video_id(rel: PurePosixPath) -> str:
    """``Class/v_Class_g01_c01.avi`` -> ``Class/v_Class_g01_c01`` (unique within a dataset)."""
    return str(rel.with_suffix(""))


def build_index(
    root: Path,
    lists_dir: Path,
    n_shards: int,
    fmt: str,
    options: FormatOptions,
) -> tuple[list[dict], list[Reject]]:
    """Index split ``options.split`` of a dataset in format ``fmt`` (a key of ``FORMATS``).

    Returns (entries, rejects). Each entry: id, path (relative to root), class (None when
    unlabeled), label (0-based; -1 when unlabeled), split (train|test), size (bytes), sha256,
    shard. Rejected, each with its reason: malformed list lines (file and line), paths leaving
    the root, unknown classes, label mismatches, missing, dangling, directory and empty files,
    symlinks leaving the root, and the second listing of a file. Ids are the path without its
    extension, or with it for files whose names differ only by extension.
    """
    layout: Layout = FORMATS[fmt](root, lists_dir, options)
    labels = {name: i for i, name in enumerate(layout.classes)} if layout.classes is not None else {}
    root_resolved = root.resolve()
    folder_cache: dict[str, dict[str, str]] = {}
    rejects: list[Reject] = list(layout.rejects)
    accepted: list[tuple[Listed, Path, PurePosixPath]] = []
    for item in layout.listed:
        rel = safe_relative(item.rel_path, layout.two_level)
        if rel is None:
            reason = "path leaves the dataset root" + (" or is not Class/video" if layout.two_level else "")
            rejects.append(Reject(item.rel_path, reason, item.source))
            continue
        if item.class_name is not None and item.class_name not in labels:
            rejects.append(Reject(item.rel_path, f"unknown class {item.class_name!r}", item.source))
            continue
        label = labels.get(item.class_name) if item.class_name is not None else None
        if item.listed_label is not None and item.listed_label != label:
            rejects.append(
                Reject(item.rel_path, f"listed label {item.listed_label + 1} is not {item.class_name}'s", item.source)
            )
            continue
        path = resolve_video(root, rel, folder_cache) if layout.two_level else root / rel
        problem = "missing file" if path is None else file_problem(path, root_resolved)
        if problem or path is None:
            rejects.append(Reject(item.rel_path, problem or "missing file", item.source))
            continue
        accepted.append((item, path, PurePosixPath(path.relative_to(root).as_posix())))
    stems = Counter(video_id(real_rel) for _, _, real_rel in {a[2]: a for a in accepted}.values())
    entries: list[dict] = []
    seen: dict[PurePosixPath, str] = {}
    # Hashing every file is the slow part on a real dataset (13,320 UCF101 videos): show it.
    for item, path, real_rel in tqdm(accepted, desc="dataset: index and hash", unit="video"):
        if real_rel in seen:
            rejects.append(Reject(item.rel_path, f"listed twice (first in {seen[real_rel]})", item.source))
            continue
        seen[real_rel] = item.split
        size = path.stat().st_size
        if size == 0:
            rejects.append(Reject(item.rel_path, "empty file", item.source))
            continue
        vid = video_id(real_rel) if stems[video_id(real_rel)] == 1 else str(real_rel)
        entries.append(
            {
                "id": vid,
                "path": str(real_rel),
                "class": item.class_name,
                "label": labels.get(item.class_name, -1) if item.class_name is not None else -1,
                "split": item.split,
                "size": size,
                "sha256": file_sha256(path),
                "shard": shard_of(vid, n_shards),
            }
        )
    return entries, rejects


def remove_leftover_shards(folders: Sequence[Path], shard_ids: Sequence[int]) -> list[Path]:
    """Delete shard files and manifests whose id ``shards.ids`` no longer lists.

    DVC leaves the outputs of a removed ``frames@k`` stage in place; the folder is a dependency
    of later stages, so a leftover would change its hash (and nothing may read it).
    """
    removed = []
    for folder in folders:
        for path in sorted(folder.glob("*")) if folder.is_dir() else ():
            shard_id = shard_id_of(path)
            if shard_id is not None and shard_id not in shard_ids:
                path.unlink()
                removed.append(path)
    if removed:
        log.info("removed %d leftover files of shards no longer listed: %s", len(removed), ", ".join(map(str, removed)))
    return removed


def index_dataset(
    root: Path,
    lists_dir: Path,
    fmt: str,
    options: FormatOptions,
    shard_ids: Sequence[int],
    max_reject_share: float,
    index_path: Path,
    rejects_path: Path,
    shard_list: Callable[[int], Path],
    shard_folders: Sequence[Path],
) -> list[dict]:
    """The dataset stage: index, rejects report, one video list per shard; returns the index.

    Fails (InputError) when the root or lists are unreadable, when a split is empty (before
    any preprocessing is paid for) and when the rejects alone pass ``max_reject_share``.
    """
    start = time.perf_counter()
    if not root.is_dir():
        raise InputError(f"{root}: not a readable folder")
    if not lists_dir.exists():
        raise InputError(f"{lists_dir}: not found (dataset.lists)")
    entries, rejects = build_index(root, lists_dir, len(shard_ids), fmt, options)
    write_json(rejects_path, [dataclasses.asdict(r) for r in rejects])
    unlabeled = all(e["label"] == -1 for e in entries)
    for split in ("train",) if unlabeled else VIDEO_SPLITS:  # unlabeled data: pretraining only
        if not any(e["split"] == split for e in entries):
            raise InputError(
                f"the {split} split of {lists_dir} ({fmt}, split {options.split}) has no usable video; "
                f"see {rejects_path}"
            )
    check_reject_share(rejects, len(entries) + len(rejects), max_reject_share, index_path, "dataset")
    by_shard: dict[int, list[dict]] = {shard_id: [] for shard_id in shard_ids}
    for entry in entries:  # one pass: Kinetics has 240,000 entries and hundreds of shards
        by_shard[entry["shard"]].append(entry)
    for shard_id, shard_entries in by_shard.items():
        write_json(shard_list(shard_id), shard_entries)
    write_json(index_path, entries)
    remove_leftover_shards(shard_folders, shard_ids)
    n_train = sum(e["split"] == "train" for e in entries)
    log.info(
        "dataset: %d videos indexed (%d train, %d test) in %d shards, %d rejected, %.1fs -> %s",
        len(entries),
        n_train,
        len(entries) - n_train,
        len(shard_ids),
        len(rejects),
        time.perf_counter() - start,
        index_path,
    )
    return entries
