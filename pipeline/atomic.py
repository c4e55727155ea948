"""Atomic file writes: write in a scratch folder, fsync, then rename over the target.

A stage killed at any moment leaves either the old file or the new one, never half of one.
The temporary file lives in ``artifacts/.tmp`` (for targets under ``artifacts/``), a folder
that no stage depends on and DVC ignores, so a file left by ``kill -9`` never enters an
output folder, a dependency hash or a later stage; SIGTERM removes it (``pipeline.stage``
turns SIGTERM into SystemExit, so the ``finally`` below runs). Temporary names carry the
writer's pid, so a later stage removes the ones whose writer is dead.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline import paths

log = logging.getLogger(__name__)


def scratch_dir(target: Path) -> Path:
    """Where the temporary file of ``target`` is written: same filesystem, outside any output."""
    artifacts = paths.ARTIFACTS.resolve()
    resolved = target.resolve()
    if resolved.is_relative_to(artifacts):
        return artifacts / paths.SCRATCH.name
    return target.parent  # outside the pipeline's folders (tests, benchmarks)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path; rename it onto ``target`` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = scratch_dir(target)
    scratch.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=scratch)
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


def remove_orphaned_temporaries(scratch: Path = paths.SCRATCH) -> int:
    """Delete temporary files whose writer process is gone (killed with SIGKILL); returns how many."""
    removed = 0
    for tmp in scratch.glob(".*.tmp") if scratch.is_dir() else ():
        try:
            pid = int(tmp.name.rsplit(".", 3)[-3])
        except (ValueError, IndexError):
            continue
        if not process_alive(pid):
            tmp.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d temporary files left by killed runs in %s", removed, scratch)
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie (killed, not yet reaped by its parent or by
    PID 1, which on some hosts takes seconds) answers ``kill(pid, 0)`` but writes nothing more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    return not is_zombie(pid)


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: [state, ppid, ...]; [] where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command name (field 2) is in parentheses and may hold spaces or ')': the rest follows the last ')'.
    return stat.rpartition(")")[2].split()


def is_zombie(pid: int) -> bool:
    """True when /proc says ``pid`` has exited (state Z or X); False where there is no /proc."""
    return proc_stat(pid)[:1] in (["Z"], ["X"])


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_bytes(target, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def write_csv(target: str | Path, rows: list[dict]) -> None:
    """Atomically write rows (dicts with the same keys) as CSV, e.g. for ``dvc plots``."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(target, buffer.getvalue().encode())


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)
