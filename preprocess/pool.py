"""The CPU pool of the frames and motion stages: joblib's local processes or a Dask cluster.

``pool.backend: loky`` runs the per-video tasks in local worker processes. ``dask`` runs the
same joblib tasks on a ``dask.distributed`` cluster (``pool.scheduler``: its address) through
joblib's dask backend. Either way the results stream back in order to the stage process,
which alone writes the shard, so the outputs are byte-identical and a worker that dies only
costs its task a rerun elsewhere (Dask reschedules it). Tasks receive absolute paths: with
Dask, every worker must see the dataset root and ``artifacts/`` at the same path (a shared
filesystem).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from joblib import parallel_config

from pipeline.errors import ConfigError
from pipeline.schema import PoolParams

log = logging.getLogger(__name__)


@contextlib.contextmanager
def cpu_pool(pool: PoolParams) -> Iterator[None]:
    """Within this block, ``joblib.Parallel`` runs on the configured pool."""
    if pool.backend == "loky":
        yield
        return
    from distributed import Client

    if not pool.scheduler:
        raise ConfigError("pool.scheduler: pool.backend dask needs the scheduler's address (tcp://host:8786)")
    try:
        client = Client(pool.scheduler, timeout=pool.connect_timeout)
    except OSError as exc:
        raise ConfigError(f"pool.scheduler: cannot reach {pool.scheduler} ({exc})") from None
    with client, parallel_config(backend="dask"):
        workers = client.scheduler_info(n_workers=-1)["workers"]
        log.info(
            "pool: dask cluster %s, %d workers, %d threads",
            pool.scheduler,
            len(workers),
            sum(w["nthreads"] for w in workers.values()),
        )
        yield
