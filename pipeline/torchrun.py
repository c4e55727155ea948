"""A stage that params ask to run in several processes re-executes itself under torchrun.

``launch.nnodes`` x ``launch.nproc_per_node`` > 1 turns ``python -m pipeline finetune demo``
(the command dvc.yaml gives, and the one a user types) into::

    [srun --nodes N --ntasks-per-node 1] python -m torch.distributed.run --nnodes N
        --nproc_per_node P --rdzv_backend c10d --rdzv_endpoint HOST:PORT --rdzv_id ID
        -m pipeline finetune demo

``exec`` keeps the process DVC started (its pid, its lock, its signals), so ``dvc repro`` waits
for every rank and a kill of DVC still stops the stage (``pipeline/launcher.py``). The ranks
see torchrun's environment and run the stage itself. On one node the rendezvous is
``--standalone`` (a free local port); across nodes every node joins ``launch.rdzv_endpoint``
under the same id, derived from the stage, so nodes started by hand or by srun find each other.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

from pipeline.errors import ConfigError
from pipeline.schema import LaunchParams

log = logging.getLogger(__name__)

# Set by torchrun in every rank: a process that has it is a rank already and never relaunches.
RANK_ENV = "TORCHELASTIC_RUN_ID"


def world_size(launch: LaunchParams) -> int:
    """Processes in all that ``launch`` asks for."""
    return launch.nnodes * launch.nproc_per_node


def rdzv_endpoint(launch: LaunchParams, hostname: str) -> str:
    """Where the nodes meet: ``launch.rdzv_endpoint``; under srun this node (the allocation's
    first, where dvc repro runs) with that port."""
    host, sep, port = launch.rdzv_endpoint.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"launch.rdzv_endpoint: {launch.rdzv_endpoint!r} is not host:port")
    return f"{hostname}:{port}" if launch.srun else launch.rdzv_endpoint


def torchrun_command(
    launch: LaunchParams,
    stage_args: Sequence[str],
    run_id: str,
    env: Mapping[str, str],
    hostname: str,
    python: str = sys.executable,
) -> list[str] | None:
    """The command that runs ``python -m pipeline <stage_args>`` as every rank, or None for one process.

    run_id: the same on every node of one run (the stage's name, and the SLURM job under srun).
    """
    if world_size(launch) == 1 or RANK_ENV in env:
        return None
    if launch.srun and "SLURM_JOB_ID" not in env:
        raise ConfigError("launch.srun is true but this is not inside a SLURM allocation (no SLURM_JOB_ID)")
    torchrun = [python, "-m", "torch.distributed.run", f"--nproc_per_node={launch.nproc_per_node}"]
    if launch.nnodes == 1 and not launch.srun:
        torchrun.append("--standalone")
    else:
        job = f"{env['SLURM_JOB_ID']}-" if launch.srun else ""
        torchrun += [
            f"--nnodes={launch.nnodes}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint={rdzv_endpoint(launch, hostname)}",
            f"--rdzv_id={job}{run_id}",
        ]
    command = torchrun + ["-m", "pipeline", *stage_args]
    if launch.srun:
        srun = ["srun", f"--nodes={launch.nnodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
        command = srun + command
    return command


def relaunch_under_torchrun(launch: LaunchParams, run_id: str) -> None:
    """Replace this process by torchrun running this same command as every rank, when params ask
    for more than one process and this is not a rank already; return otherwise."""
    import socket

    command = torchrun_command(launch, sys.argv[1:], run_id.replace("@", "-"), os.environ, socket.gethostname())
    if command is None:
        return
    log.info("%d processes (%d node(s) x %d): %s", world_size(launch), launch.nnodes, launch.nproc_per_node, command)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execvp(command[0], command)
