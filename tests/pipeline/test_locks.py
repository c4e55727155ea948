"""One running instance per stage: a second one fails at start naming the first, and a killed
holder never leaves a lock behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from pipeline.errors import InputError
from pipeline.locks import stage_lock
from tests.conftest import REPO

HOLDER = """
import sys, time
from pathlib import Path
from pipeline.locks import stage_lock
with stage_lock("pretrain", Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_holder_is_refused_until_the_first_is_killed(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = rf"stage pretrain is already running \(pid {holder.pid}, lock "
        with pytest.raises(InputError, match=busy), stage_lock("pretrain", tmp_path):
            pass
        with stage_lock("features@demo", tmp_path):  # another stage instance is free
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with stage_lock("pretrain", tmp_path) as path:  # the kernel dropped the dead holder's lock
        assert path.read_text() == f"{os.getpid()}\n"


def test_a_pretraining_started_by_hand_while_one_runs_fails_before_touching_its_state(tmp_path):
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    resume = tmp_path / "artifacts/pretrain_resume/iic/last.pt"
    resume.parent.mkdir(parents=True)
    resume.write_bytes(b"the running stage's resume state")
    with stage_lock("pretrain@iic", tmp_path / "artifacts/.tmp/locks"):  # as `dvc repro` pretraining holds it
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "pretrain", "iic"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2
    assert f"error: stage pretrain@iic is already running (pid {os.getpid()}" in proc.stderr
    assert resume.read_bytes() == b"the running stage's resume state"
    assert not (tmp_path / "artifacts/pretrain/iic/model.pt").exists()
