"""The frames and motion pool on a real dask.distributed cluster: the same bytes as loky, and
a worker killed mid-shard costs only its task a rerun."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from distributed import Client, LocalCluster

from pipeline.errors import ConfigError
from preprocess.dataset import build_index
from preprocess.formats import FormatOptions
from preprocess.frames import extract_frames_shard
from preprocess.motion import compute_motion_shard
from preprocess.pool import cpu_pool
from tests.conftest import replace

OPTIONS = FormatOptions(split=1, test_ratio=0.3, split_seed=0)  # split 1; folder: a 30% test draw, seed 0


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local


def _frames(params, root, entries, out, pool):
    frames = replace(params.frames, height=48, width=64, n_jobs=2)
    return extract_frames_shard(entries, root, out / "0.h5", out / "0.json", frames, params.storage, pool)


def test_dask_shards_are_byte_identical_to_loky(params, real_dataset, cluster, tmp_path):
    root, lists = real_dataset
    entries, _ = build_index(root, lists, 1, "ucf101", OPTIONS)
    entries = entries[:8]
    dask = replace(params.pool, backend="dask", scheduler=cluster.scheduler_address)
    motion = replace(params.motion, n_jobs=2)
    for name, pool in (("loky", params.pool), ("dask", dask)):
        out = tmp_path / name
        _frames(params, root, entries, out / "frames", pool)
        compute_motion_shard(
            out / "frames/0.h5",
            out / "frames/0.json",
            out / "motion/0.h5",
            out / "motion/0.json",
            motion,
            params.storage,
            pool,
        )
    for kind in ("frames/0.h5", "frames/0.json", "motion/0.h5", "motion/0.json"):
        assert (tmp_path / "loky" / kind).read_bytes() == (tmp_path / "dask" / kind).read_bytes(), kind


def test_a_worker_killed_mid_shard_is_survived(params, real_dataset, cluster, tmp_path):
    root, lists = real_dataset
    entries, _ = build_index(root, lists, 1, "ucf101", OPTIONS)
    entries = entries[:8]
    _frames(params, root, entries, tmp_path / "frames", params.pool)
    motion = replace(params.motion, n_jobs=2)
    dask = replace(params.pool, backend="dask", scheduler=cluster.scheduler_address)
    errors = []

    def run():
        try:
            compute_motion_shard(
                tmp_path / "frames/0.h5",
                tmp_path / "frames/0.json",
                tmp_path / "dask/0.h5",
                tmp_path / "dask/0.json",
                motion,
                params.storage,
                dask,
            )
        except Exception as exc:  # reported below
            errors.append(exc)

    with Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)  # {worker address: pid}
        stage = threading.Thread(target=run)
        stage.start()
        deadline = time.monotonic() + 60
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = next(address for address, tasks in client.processing().items() if tasks)
        os.kill(pids[busy], signal.SIGKILL)  # a worker dies in the middle of a video's task
        stage.join(timeout=300)
        assert pids[busy] not in client.run(os.getpid).values()  # it really died (the nanny restarted it)
    assert not errors, errors
    compute_motion_shard(
        tmp_path / "frames/0.h5",
        tmp_path / "frames/0.json",
        tmp_path / "loky/0.h5",
        tmp_path / "loky/0.json",
        motion,
        params.storage,
        params.pool,
    )
    assert (tmp_path / "dask/0.h5").read_bytes() == (tmp_path / "loky/0.h5").read_bytes()


def test_dask_without_a_scheduler_is_a_config_error(params):
    with (
        pytest.raises(ConfigError, match="pool.scheduler"),
        cpu_pool(replace(params.pool, backend="dask", scheduler="")),
    ):
        pass
    unreachable = replace(params.pool, backend="dask", scheduler="tcp://127.0.0.1:9", connect_timeout=2)
    with pytest.raises(ConfigError, match="cannot reach tcp://127.0.0.1:9"), cpu_pool(unreachable):
        pass
