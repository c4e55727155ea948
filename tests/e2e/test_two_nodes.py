"""Two nodes of one gloo process each on localhost (``--nnodes 2``, c10d rendezvous), started as a
user starts them on two machines: the same stage command on each, ``launch`` in params.yaml.

What they write must equal one process holding the same global batch: features row for row,
fine-tuning's metrics and curves.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import run, set_params, tiny_project

# No dropout: its masks are drawn per rank, so only a dropout-free run can equal one process.
# 18 videos: 9 train, 6 left to fit after holding out a group, which two ranks share evenly
# (with an odd count each epoch would leave one video out, as DDP's equal shares must).
GLOBAL = {"finetune": {"epochs": 2, "dropout": 0.0}, "demo": {"demo": {"videos": 18}}, "pretrain": {"models": ["iic"]}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_two_nodes(project: Path, stage: list[str]) -> list[str]:
    """Start ``python -m pipeline <stage>`` twice at once, as on two machines; both must exit 0."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", *stage],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-6000:]
    return outputs


def _outputs(project: Path) -> dict:
    data = project / "artifacts/data/demo"
    features = {m: dict(np.load(data / f"features/{m}.npz")) for m in ("iic", "random")}
    live = project / "artifacts/dvclive/finetune/demo"
    curves = {
        m: {p.stem: p.read_text() for p in sorted((live / m / "plots/metrics").glob("*.tsv"))}
        for m in ("iic", "random")
    }
    return {
        "features": features,
        "finetune": json.loads((project / "artifacts/metrics/demo/finetune.json").read_text()),
        "curves": curves,
    }


def _curve(tsv: str) -> np.ndarray:
    """A DVCLive history's (step, value) rows, without its wall-clock timestamps."""
    header, *rows = tsv.splitlines()
    keep = [i for i, name in enumerate(header.split("\t")) if name != "timestamp"]
    return np.array([[float(line.split("\t")[i]) for i in keep] for line in rows])


@pytest.mark.slow
def test_two_nodes_write_what_one_process_writes_with_the_same_global_batch(tmp_path):
    project = tiny_project(tmp_path / "project")
    set_params(project, GLOBAL)
    run(["dvc", "repro", "pretrain@iic"], project)

    # One process: global batches of 4 videos.
    set_params(project, {"finetune": {"batch_size": 4}, "features": {"batch_size": 4}})
    for stage in (["features", "demo"], ["finetune", "demo"]):
        run([sys.executable, "-m", "pipeline", *stage], project)
    single = _outputs(project)
    shutil.rmtree(project / "artifacts/data/demo/features")
    shutil.rmtree(project / "artifacts/dvclive/finetune")

    # Two nodes x one process, 2 videos each: the same global batch.
    set_params(
        project,
        {
            "launch": {"nnodes": 2, "nproc_per_node": 1, "rdzv_endpoint": f"localhost:{_free_port()}"},
            "finetune": {"batch_size": 2},
            "features": {"batch_size": 2},
        },
    )
    logs = _on_two_nodes(project, ["features", "demo"]) + _on_two_nodes(project, ["finetune", "demo"])
    assert all("--nnodes=2" in log and "--rdzv_backend=c10d" in log for log in logs)  # every node relaunched
    assert sum("stage features@demo done" in log for log in logs[:2]) == 2
    two = _outputs(project)

    for model in ("iic", "random"):
        one, both = single["features"][model], two["features"][model]
        assert list(both["ids"]) == list(one["ids"])
        for view in ("rgb", "view2"):
            np.testing.assert_allclose(both[view], one[view], rtol=1e-5, atol=1e-6)
        for name, tsv in single["curves"][model].items():
            # DDP averages the gradients of the ranks' halves; batch norm spans both halves.
            np.testing.assert_allclose(_curve(two["curves"][model][name]), _curve(tsv), rtol=1e-4, atol=1e-6)
        assert set(two["finetune"][model]) == set(single["finetune"][model])
        for key in single["finetune"][model]:
            assert two["finetune"][model][key] == single["finetune"][model][key], (model, key)
