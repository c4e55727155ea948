"""A temporary copy of the repository with a tiny configuration, driven with real git and DVC."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

# Small enough for a 2-core CPU in seconds per stage; same code paths as the demo. Four groups
# of three videos: groups 1 and 3 train, so fine-tuning can hold one of them out for validation.
TINY = {
    "demo": {
        "demo": {
            "motions": ["DriftRight", "DriftLeft", "RollClockwise"],
            "videos": 12,
            "frames": 20,
            "height": 48,
            "width": 64,
            "clips_per_group": 1,
            "test_every": 2,
            "extra_test_groups": 0,
        },
        "demo_transfer": {
            "motions": ["ZoomIn", "ZoomOut", "DriftUpRight"],
            "videos": 12,
            "frames": 20,
            "height": 48,
            "width": 64,
            "clips_per_group": 1,
            "test_every": 2,
            "extra_test_groups": 0,
        },
    },
    "evaluate": {"datasets": ["demo"]},  # the tests add demo_transfer, as a user adds HMDB51
    "shards": {"ids": [0, 1]},
    "frames": {"height": 32, "width": 43, "n_jobs": 1},
    "motion": {"n_jobs": 1},
    "clip": {"length": 16, "crop": 24, "eval_clips": 2},
    "model": {"width": 4},
    "runtime": {"workers": 0},
    "pretrain": {"epochs": 2, "batch_size": 4, "nce_k": 4},
    "features": {"batch_size": 8},
    "temporal": {"clips": 1, "batch_size": 8},
    "finetune": {"epochs": 1, "batch_size": 4, "val_videos": 2},
    "linear": {"val_videos": 2},
}


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> str:
    """Run a command; fail the test with its output when it fails. Returns stdout+stderr."""
    bin_dir = str(Path(sys.executable).parent)
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-6000:]}")
    return output


def ran_stages(output: str) -> set[str]:
    """Stage names that `dvc repro` ran (not the ones it skipped)."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def _merge(node: dict, changes: dict) -> None:
    """Set each dotted key of ``changes`` under ``node``; a mapping value merges into a mapping."""
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        target = node
        for parent in parents:
            target = target[parent]
        if isinstance(value, dict) and isinstance(target.get(leaf), dict):
            _merge(target[leaf], value)
        else:
            target[leaf] = value


def set_params(workdir: Path, changes: dict) -> None:
    path = workdir / "params.yaml"
    params = yaml.safe_load(path.read_text())
    _merge(params, changes)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def git(workdir: Path, *args: str) -> str:
    return run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], workdir)


def tiny_project(workdir: Path) -> Path:
    """A git repository at ``workdir`` holding the project's tracked files and the tiny params (not reproduced)."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, tracked):
        source = REPO / rel
        if source.is_file():
            (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, workdir / rel)
    (workdir / "dvc.lock").unlink(missing_ok=True)  # the tiny config reproduces from scratch
    set_params(workdir, TINY)
    git(workdir, "init", "-q", "-b", "main")
    git(workdir, "add", "-A")
    git(workdir, "commit", "-qm", "tiny configuration")
    return workdir


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """The tiny project that test_dvc_pipeline.py reproduces (its first test) and then changes."""
    return tiny_project(tmp_path_factory.mktemp("repo") / "project")
