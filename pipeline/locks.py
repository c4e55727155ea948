"""One running instance per stage: an exclusive lock that dies with its process.

``dvc repro`` never runs a stage twice at once, but a person can start ``python -m pipeline
pretrain`` by hand while DVC runs it: both would train from the same resume state and both
write ``model.pt``. Each stage instance therefore holds ``flock`` on a file in
``artifacts/.tmp/locks``; the kernel drops the lock when its holder exits, however it dies
(``kill -9`` included), so a stale lock never blocks a rerun.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline import paths
from pipeline.errors import InputError

LOCKS = paths.SCRATCH / "locks"


@contextlib.contextmanager
def stage_lock(name: str, folder: Path = LOCKS) -> Iterator[Path]:
    """Hold the lock of stage instance ``name`` (``pretrain``, ``frames@demo-3``) for the block.

    Raises InputError naming the holder's pid when another process holds it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise InputError(
                f"stage {name} is already running (pid {holder}, lock {path}); wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays, so a waiting process never locks an unlinked inode
