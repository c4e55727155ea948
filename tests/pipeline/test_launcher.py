"""A stage started by DVC stops when DVC is killed; one started by hand is never watched."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.launcher import dvc_pid
from tests.conftest import REPO

# The stage: watched like every stage, it reports how it ended.
STAGE = """
import signal, sys, time
from pathlib import Path
from pipeline.launcher import watch_launcher
from pipeline.stage import _exit_on_sigterm
signal.signal(signal.SIGTERM, _exit_on_sigterm)
try:
    print("watched" if watch_launcher(poll=0.1) else "not watched", flush=True)
    time.sleep(60)
finally:
    Path(sys.argv[1]).write_text("stopped")
"""

# DVC's part (no DVC_STAGE of its own): start the command with DVC_STAGE set, through `hops`
# launchers that carry it as torchrun does, pass its first line on, then wait.
LAUNCHER = """
import os, subprocess, sys, time
hops, marker, stage = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cmd = [sys.executable, "-c", stage, marker]
for _ in range(hops):
    cmd = [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])", *cmd]
env = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"}
child = subprocess.Popen(cmd, env={**env, "DVC_STAGE": "pretrain"}, stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("hops", [0, 1], ids=["dvc-child", "under-a-launcher"])
def test_a_stage_stops_when_the_dvc_that_started_it_is_killed(tmp_path, hops):
    marker = tmp_path / "ended"
    env = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"} | {"PYTHONPATH": str(REPO)}
    dvc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(hops), str(marker), STAGE],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so the test can end whatever is left of the tree
    )
    try:
        state, _ = dvc.stdout.readline().split()
        assert state == "watched"
        dvc.send_signal(signal.SIGKILL)  # only DVC: the stage (and a launcher) live on
        dvc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the stage kept running after dvc was killed"
            time.sleep(0.05)
        assert marker.read_text() == "stopped"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dvc.pid, signal.SIGKILL)


def test_a_stage_started_by_hand_is_not_watched(monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert dvc_pid() is None
    monkeypatch.setenv("DVC_STAGE", "pretrain")
    assert dvc_pid() == os.getppid()  # this test's parent has no DVC_STAGE: it is taken for DVC
