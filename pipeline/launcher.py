"""A stage that DVC started stops when DVC is gone.

``kill -9`` of ``dvc repro`` alone leaves its stage running unattended, and DVC's next run drops
the dead pid's lock while the orphan still writes. A stage launched by DVC (``DVC_STAGE`` in
its environment) therefore watches the DVC process from a daemon thread and, once it has
exited, sends itself SIGTERM: ``pipeline.stage`` turns that into SystemExit, temporary files
are removed, and pretraining keeps its last resumable checkpoint for the rerun. A run started
by hand (no ``DVC_STAGE``) is not watched, so ``nohup`` and closed terminals behave as usual.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

from pipeline.atomic import proc_stat, process_alive

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how soon a stage notices; a /proc read per poll costs nothing measurable


def _launched_by_dvc(pid: int) -> bool:
    """Whether ``pid``'s environment holds DVC_STAGE (torchrun between DVC and a rank does)."""
    try:
        return b"\0DVC_STAGE=" in b"\0" + Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def dvc_pid() -> int | None:
    """The DVC process that started this stage, or None when DVC did not start it.

    DVC runs a stage's command as its direct child; under torchrun the launcher sits between
    them and carries DVC_STAGE too, so the first ancestor without it is DVC.
    """
    if "DVC_STAGE" not in os.environ:
        return None
    pid = os.getppid()
    while pid > 1 and _launched_by_dvc(pid):
        fields = proc_stat(pid)
        if len(fields) < 2 or not fields[1].isdigit():
            break
        pid = int(fields[1])  # its parent
    return pid if pid > 1 else None


def watch_launcher(poll: float = POLL_SECONDS) -> threading.Thread | None:
    """Start the watch when DVC launched this stage; returns the thread (None when not watched)."""
    pid = dvc_pid()
    if pid is None:
        return None

    def watch() -> None:
        event = threading.Event()
        while not event.wait(poll):
            if not process_alive(pid):
                log.error("dvc (pid %d) is gone: stopping this stage; a rerun resumes from what it kept", pid)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    thread = threading.Thread(target=watch, name="watch-dvc", daemon=True)
    thread.start()
    return thread
