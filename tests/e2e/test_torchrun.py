"""Several processes from `dvc repro`, on the CPU: with ``launch.nproc_per_node: 2`` the pretrain
stage re-executes itself under torchrun, and DVC waits for both ranks."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import run, set_params, tiny_project
from train.checkpoint import load_checkpoint, load_encoder


@pytest.mark.slow
def test_dvc_repro_pretrains_under_torchrun_on_two_gloo_ranks(tmp_path):
    """Two ranks join a gloo group, train, rank 0 alone writes the checkpoint, both exit 0 (a
    rank aborting at exit would fail `dvc repro` after the outputs were written), and the
    epoch curves are means over both ranks, not rank 0's half of the global batch."""
    project = tiny_project(tmp_path / "project")
    # Per rank: 2 x 2 of the 6 train videos.
    set_params(project, {"pretrain": {"batch_size": 2, "models": ["iic"]}, "launch": {"nproc_per_node": 2}})
    output = run(["dvc", "repro", "pretrain@iic"], project)
    assert "--nproc_per_node=2" in output and "--standalone" in output
    for epoch in (1, 2):
        logged = re.findall(rf"epoch {epoch}: loss ([0-9.]+)", output)
        assert len(logged) == 2 and logged[0] == logged[1], logged  # each rank logs the global mean
    assert output.count("pretrained r3d on 6 videos") == 1  # rank 0 writes and says so
    assert "on 2 process(es)" in output
    checkpoint = load_checkpoint(project / "artifacts/pretrain/iic/model.pt")
    assert [f"{row['loss']:.4f}" for row in checkpoint["curves"]] == re.findall(r"epoch \d: loss ([0-9.]+)", output)[
        ::2
    ]
    config, _encoder = load_encoder(project / "artifacts/pretrain/iic/model.pt")
    assert config["train_videos"] == 6
    assert not (project / "artifacts/pretrain_resume/iic/last.pt").exists()  # a finished run leaves no resume state
