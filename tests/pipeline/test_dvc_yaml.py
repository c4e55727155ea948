"""Static checks of dvc.yaml against params.yaml and the code (the dynamic check is in tests/e2e)."""
from __future__ import annotations

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


def test_metrics_and_plots_are_declared():
    metrics = [m for s in STAGES.values() for m in s.get("metrics", [])]
    assert metrics == ["artifacts/metrics/retrieval.json", "artifacts/metrics/finetune.json"]
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    files = {f for p in plots for spec in p.values() for f in spec["y"]}
    outs = {o if isinstance(o, str) else next(iter(o)) for s in STAGES.values() for o in s.get("do", s).get("outs", [])}
    assert files <= outs
