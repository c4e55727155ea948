"""The torchrun command a stage re-executes as when params ask for several processes."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.schema import LaunchParams
from pipeline.torchrun import RANK_ENV, torchrun_command, world_size


def launch(nnodes=1, nproc=1, srun=False, endpoint="localhost:29400") -> LaunchParams:
    return LaunchParams(nnodes, nproc, srun, endpoint, sync_batchnorm=True)


def command(params: LaunchParams, env: dict | None = None) -> list[str] | None:
    return torchrun_command(params, ["finetune", "demo"], "finetune-demo", env or {}, "node07", python="py")


def test_one_process_and_a_rank_never_relaunch():
    assert world_size(launch(2, 4)) == 8
    assert command(launch()) is None
    assert command(launch(2, 2), {RANK_ENV: "x"}) is None  # torchrun's ranks run the stage itself


def test_one_node_is_a_standalone_rendezvous():
    assert command(launch(1, 4)) == [
        "py", "-m", "torch.distributed.run", "--nproc_per_node=4", "--standalone", "-m", "pipeline", "finetune", "demo",
    ]  # fmt: skip


def test_several_nodes_meet_at_the_endpoint_under_one_id_per_stage():
    assert command(launch(2, 1, endpoint="10.0.0.5:29511")) == [
        "py", "-m", "torch.distributed.run", "--nproc_per_node=1", "--nnodes=2", "--rdzv_backend=c10d",
        "--rdzv_endpoint=10.0.0.5:29511", "--rdzv_id=finetune-demo", "-m", "pipeline", "finetune", "demo",
    ]  # fmt: skip


def test_srun_starts_one_torchrun_per_node_meeting_on_this_node():
    cmd = command(launch(4, 8, srun=True, endpoint="localhost:29511"), {"SLURM_JOB_ID": "123"})
    assert cmd[:4] == ["srun", "--nodes=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert "--nnodes=4" in cmd and "--nproc_per_node=8" in cmd and "--standalone" not in cmd
    assert "--rdzv_endpoint=node07:29511" in cmd  # dvc repro runs on the allocation's first node
    assert "--rdzv_id=123-finetune-demo" in cmd  # two jobs never join each other
    assert cmd[-3:] == ["pipeline", "finetune", "demo"]


def test_srun_outside_slurm_and_a_bad_endpoint_are_config_errors():
    with pytest.raises(ConfigError, match="SLURM_JOB_ID"):
        command(launch(2, 1, srun=True))
    with pytest.raises(ConfigError, match="launch.rdzv_endpoint"):
        command(launch(2, 1, endpoint="localhost"))
