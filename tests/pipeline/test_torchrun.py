"""The torchrun command a stage re-executes as when params ask for several processes."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.schema import LaunchParams
from pipeline.torchrun import RANK_ENV, is_this_machine, torchrun_command, wait_for_endpoint, world_size


def launch(nnodes=1, nproc=1, srun=False, endpoint="localhost:29400") -> LaunchParams:
    return LaunchParams(nnodes, nproc, srun, endpoint, rdzv_timeout=45, sync_batchnorm=True)


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
        "--rdzv_endpoint=10.0.0.5:29511", "--rdzv_id=finetune-demo", "--rdzv_conf=join_timeout=45",
        "-m", "pipeline", "finetune", "demo",
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


def test_an_endpoint_nothing_answers_at_is_one_line_after_the_timeout():
    """torchrun retried an unreachable endpoint for 131-170 s and ended in a traceback that named
    the host only in its warnings; the wait is now launch.rdzv_timeout, then one line."""
    import socket
    import time

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(
        InputError, match=rf"^launch\.rdzv_endpoint: nothing answered at 127\.0\.0\.1:{port} within 2 s"
    ):
        wait_for_endpoint("127.0.0.1", port, 2)
    assert time.monotonic() - start < 10
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        wait_for_endpoint("127.0.0.1", server.getsockname()[1], 2)  # answers: returns at once


def test_a_host_that_does_not_resolve_is_named_and_this_machine_is_recognised():
    with pytest.raises(InputError, match="launch.rdzv_endpoint: host 'nohost.invalid' does not resolve"):
        is_this_machine("nohost.invalid", "node07")
    assert is_this_machine("localhost", "node07") and is_this_machine("127.0.0.1", "node07")
    assert is_this_machine("node07", "node07")


def test_the_stage_refuses_an_unreachable_endpoint_in_one_line(tmp_path, monkeypatch):
    """Through the CLI: nnodes 2 with a dead endpoint on another host is exit 2 and one line."""
    import shutil

    import yaml
    from click.testing import CliRunner

    from pipeline.cli import main
    from tests.conftest import REPO

    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["launch"].update(nnodes=2, rdzv_endpoint="nohost.invalid:29400", rdzv_timeout=5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(RANK_ENV, raising=False)
    result = CliRunner().invoke(main, ["finetune", "demo"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: launch.rdzv_endpoint: host 'nohost.invalid' does not resolve")
    assert result.output.count("\n") == 1
