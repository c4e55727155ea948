"""Static checks of dvc.yaml against params.yaml and the code (the dynamic check is in tests/e2e)."""
from __future__ import annotations

import subprocess

import yaml

from pipeline.params import leaf_keys
from pipeline.stage import declared_params
from tests.conftest import REPO

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_listed_param_exists(params):
    keys = leaf_keys(params)
    sections = {k.rsplit(".", i)[0] for k in keys for i in range(1, k.count(".") + 1)}
    for stage in STAGES:
        for key in declared_params(stage, REPO / "dvc.yaml"):
            assert key in keys or key in sections, f"{stage} lists unknown param {key}"


def test_every_code_dependency_exists_and_each_stage_lists_its_command_module():
    for name, stage in STAGES.items():
        body = stage.get("do", stage)
        for dep in body["deps"]:
            if dep.startswith(("preprocess/", "train/", "evaluate/", "pipeline/")):
                assert (REPO / dep).exists(), f"{name}: {dep} does not exist"
        assert body["cmd"].startswith(f"python -m pipeline {name}")


def _entries(kind: str) -> dict[str, dict]:
    """{path: options} of every stage's ``kind`` (outs or metrics)."""
    found = {}
    for stage in STAGES.values():
        for entry in stage.get("do", stage).get(kind, []):
            path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            found[path] = options
    return found


def test_metrics_and_plots_are_declared_and_tracked_in_git():
    metrics = _entries("metrics")
    assert {"artifacts/metrics/retrieval.json", "artifacts/metrics/finetune.json"} <= set(metrics)
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    files = {f for p in plots for spec in p.values() for f in spec["y"]}
    outs = _entries("outs")
    # Every plotted file is an output, or lies in an output folder (DVCLive's plots/).
    assert all(any(f == o or f.startswith(o + "/") for o in outs) for f in files), files
    # Small enough for git: a fresh clone shows them without `dvc pull`.
    for path in [*metrics, *files]:
        options = metrics.get(path) or outs.get(path) or next(v for o, v in outs.items() if path.startswith(o + "/"))
        assert options.get("cache") is False, f"{path} should be tracked in git (cache: false)"
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0
        assert not ignored, f"{path} is git-ignored"
