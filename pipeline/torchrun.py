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
import socket
import sys
import time
from collections.abc import Mapping, Sequence

from pipeline.errors import ConfigError, InputError
from pipeline.schema import LaunchParams

log = logging.getLogger(__name__)

# Set by torchrun in every rank: a process that has it is a rank already and never relaunches.
RANK_ENV = "TORCHELASTIC_RUN_ID"


def world_size(launch: LaunchParams) -> int:
    """Processes in all that ``launch`` asks for."""
    return launch.nnodes * launch.nproc_per_node


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); ConfigError naming ``launch.rdzv_endpoint`` for anything else."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"launch.rdzv_endpoint: {endpoint!r} is not host:port (a port 1-65535)")
    return host, int(port)


def rdzv_endpoint(launch: LaunchParams, hostname: str) -> str:
    """Where the nodes meet: ``launch.rdzv_endpoint``; under srun this node (the allocation's
    first, where dvc repro runs) with that port."""
    _host, port = parse_endpoint(launch.rdzv_endpoint)
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
            f"--rdzv_conf=join_timeout={launch.rdzv_timeout}",  # torch's default waits 600 s for the other nodes
        ]
    command = torchrun + ["-m", "pipeline", *stage_args]
    if launch.srun:
        srun = ["srun", f"--nodes={launch.nnodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
        command = srun + command
    return command


def is_this_machine(host: str, hostname: str) -> bool:
    """Whether ``host`` names this machine, where torchrun's c10d rendezvous then serves the store itself."""
    if host in ("localhost", hostname, socket.getfqdn()):
        return True
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise InputError(f"launch.rdzv_endpoint: host {host!r} does not resolve ({exc.strerror})") from exc
    try:
        own = set(socket.gethostbyname_ex(hostname)[2])
    except OSError:
        own = set()
    return any(a.startswith("127.") or a == "::1" or a in own for a in addresses)


def wait_for_endpoint(host: str, port: int, timeout: float) -> None:
    """Return once something accepts a TCP connection at host:port; InputError naming the endpoint
    after ``timeout`` seconds of trying (torchrun would retry for minutes, then end in a traceback)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(min(remaining, 5.0), 0.1)):
                return
        except OSError as exc:
            if time.monotonic() + 1 >= deadline:
                raise InputError(
                    f"launch.rdzv_endpoint: nothing answered at {host}:{port} within {timeout:g} s "
                    f"(launch.rdzv_timeout; last: {exc.strerror or exc}); start the first node there, or fix the "
                    "host or open the port"
                ) from exc
            time.sleep(1.0)


def relaunch_under_torchrun(launch: LaunchParams, run_id: str) -> None:
    """Replace this process by torchrun running this same command as every rank, when params ask
    for more than one process and this is not a rank already; return otherwise.

    A node whose rendezvous endpoint is another machine first waits, at most
    ``launch.rdzv_timeout`` seconds, for that machine to answer, so an unreachable endpoint is one
    line naming it; torchrun then bounds the wait for every node by the same setting.
    """
    hostname = socket.gethostname()
    command = torchrun_command(launch, sys.argv[1:], run_id.replace("@", "-"), os.environ, hostname)
    if command is None:
        return
    if launch.nnodes > 1 and not launch.srun:
        host, port = parse_endpoint(launch.rdzv_endpoint)
        if not is_this_machine(host, hostname):
            log.info("waiting up to %d s for the rendezvous at %s", launch.rdzv_timeout, launch.rdzv_endpoint)
            wait_for_endpoint(host, port, launch.rdzv_timeout)
    log.info("%d processes (%d node(s) x %d): %s", world_size(launch), launch.nnodes, launch.nproc_per_node, command)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execvp(command[0], command)
