"""sha256 of files, remembered by (size, mtime, inode) so an unchanged file is hashed once.

Every reader checks every shard it opens against its manifest, and the dataset stage hashes
every video: at UCF101 size that is tens of GB read at each stage start. As DVC's own state
database does, a file whose size, modification time (ns) and inode are those recorded with
its hash is taken to still have that hash; anything that rewrites the file (a rebuild, a
``dvc checkout``, an edit, a truncation) changes them and it is hashed again. The record is a
small JSON file in the scratch folder (no DVC output or dependency sees it); losing it only
costs a rehash, and concurrent stages at worst drop each other's new entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from pipeline import paths
from pipeline.atomic import write_json

_LOCK = threading.Lock()
_MEMORY: dict[str, list] = {}  # this process's view: path -> [size, mtime_ns, inode, sha256]


def _cache_file() -> Path:
    return paths.SCRATCH / "sha256-cache.json"


def _load() -> dict[str, list]:
    try:
        with open(_cache_file()) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # missing or damaged: everything is hashed again


def sha256_of_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hash the bytes of ``path`` (always reads the file)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of ``path``; read from the record when the file's size, mtime and inode match it."""
    path = Path(path)
    stat = path.stat()
    key = str(path.resolve())
    signature = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    with _LOCK:
        if not _MEMORY:
            _MEMORY.update(_load())
        known = _MEMORY.get(key)
    if known is not None and known[:3] == signature:
        return known[3]
    digest = sha256_of_file(path)
    if path.stat().st_mtime_ns == stat.st_mtime_ns:  # not rewritten while it was read
        with _LOCK:
            _MEMORY[key] = [*signature, digest]
    return digest


def save_checksums() -> None:
    """Merge this process's new hashes into the record (call once at the end of a stage)."""
    with _LOCK:
        if not _MEMORY:
            return
        merged = {**_load(), **_MEMORY}
        # Forget files that are gone, so the record does not grow without bound.
        merged = {k: v for k, v in merged.items() if os.path.exists(k)}
        write_json(_cache_file(), merged)
