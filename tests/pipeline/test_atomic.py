"""Atomic writes keep temporary files out of every output folder, and kills leave nothing trusted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline import paths
from pipeline.atomic import atomic_path, is_zombie, remove_orphaned_temporaries, write_json
from tests.conftest import REPO


def test_temporary_file_of_an_artifact_lives_in_the_scratch_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = paths.dataset("demo").motion_shard(0)
    with atomic_path(target) as tmp:
        assert tmp.parent.resolve() == (tmp_path / "artifacts/.tmp").resolve()
        tmp.write_bytes(b"shard")
        assert list((tmp_path / "artifacts/data/demo/motion").iterdir()) == []  # the output folder sees nothing
    assert target.read_bytes() == b"shard"
    assert list((tmp_path / "artifacts/.tmp").iterdir()) == []


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


WRITER = """
import sys, time
from pipeline import paths
from pipeline.atomic import atomic_path
from pipeline.stage import _exit_on_sigterm
import signal
signal.signal(signal.SIGTERM, _exit_on_sigterm)
with atomic_path(paths.dataset("demo").motion_shard(0)) as tmp:
    tmp.write_bytes(b"partial")
    print("writing", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_writer_leaves_no_file_in_the_output_folder(tmp_path, sig):
    """SIGTERM (timeout, schedulers) removes the temporary file; SIGKILL leaves it in the
    scratch folder only, and the next stage removes it because its writer is dead."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    scratch = tmp_path / "artifacts/.tmp"
    assert list((tmp_path / "artifacts/data/demo/motion").iterdir()) == []
    left = list(scratch.iterdir())
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM and left == []
    else:
        assert len(left) == 1
        assert remove_orphaned_temporaries(scratch) == 1
        assert list(scratch.iterdir()) == []


def test_a_killed_writer_that_is_still_a_zombie_counts_as_dead(tmp_path):
    """Killed but not yet reaped (its parent, here this test, has not waited for it): kill(pid, 0)
    still answers, yet the writer is gone, so its temporary file is removed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not is_zombie(proc.pid):
        assert time.monotonic() < deadline, "the killed writer never became a zombie"
        time.sleep(0.01)
    os.kill(proc.pid, 0)  # the zombie still answers, as on a host where PID 1 reaps late
    scratch = tmp_path / "artifacts/.tmp"
    try:
        assert remove_orphaned_temporaries(scratch) == 1
        assert list(scratch.iterdir()) == []
    finally:
        proc.wait(timeout=30)


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    scratch = tmp_path / ".tmp"
    scratch.mkdir()
    mine = scratch / f".0.h5.{os.getpid()}.abc.tmp"
    mine.write_bytes(b"")
    assert remove_orphaned_temporaries(scratch) == 0 and mine.exists()


def test_dvc_ignores_the_scratch_folder():
    assert "artifacts/.tmp" in (REPO / ".dvcignore").read_text().split()


def test_the_stage_wrapper_removes_orphans_before_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scratch = tmp_path / "artifacts/.tmp"
    scratch.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (scratch / f".0.h5.{dead.pid}.x.tmp").write_bytes(b"")
    time.sleep(0.01)
    assert remove_orphaned_temporaries() == 1
