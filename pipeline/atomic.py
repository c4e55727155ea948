"""Atomic file writes: write next to the target, fsync, then rename over it.

A stage killed at any moment leaves either the old file or the new one, never half of one,
so a rerun never trusts a truncated output.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are shared like any other file
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(target: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(target: str | Path, rows: list[dict]) -> None:
    """Atomically write rows (dicts with the same keys) as CSV, e.g. for ``dvc plots``."""
    with atomic_path(target) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)
