"""bench/gpu_check.py cannot rot: its CPU dry run runs every row's code at tiny sizes in CI."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

ROWS = [
    "CUDA-only tests",
    "training step",
    "generated JPEG shards",
    "end to end from the shards",
    "feature extraction",
    "TV-L1 torch backend",
    "torchrun, one process",
]


@pytest.mark.slow
def test_the_gpu_check_dry_run_fills_every_row(tmp_path):
    out = tmp_path / "table.md"
    run = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--cpu-dry-run", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    table = out.read_text()
    for row in ROWS:
        assert f"| {row}" in table, row
    assert "gloo ok" in table and "FAILED" not in table
    assert float(re.search(r"EPE vs OpenCV ([0-9.]+) px", table).group(1)) <= 0.1
    assert re.search(r"\| [0-9]+ clips/s = [0-9]+ % of the step; step busy [0-9]+ %", table)
