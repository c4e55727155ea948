"""Static checks of dvc.yaml against params.yaml and the code (the dynamic check is in tests/e2e)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from pipeline.stage import declared_params
from pipeline.stage_params import leaf_keys
from tests.conftest import REPO

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_listed_param_exists(params):
    keys = leaf_keys(params)
    sections = {k.rsplit(".", i)[0] for k in keys for i in range(1, k.count(".") + 1)}
    for stage, body in STAGES.items():
        # Each entry of a matrix or foreach stage: its own dataset (and shard).
        names = list(params.demo) if stage == "demo" else list(params.datasets)
        items = [{"dataset": n, "shard": 0} for n in names] if "matrix" in body or "foreach" in body else [None]
        for item in items:
            for key in declared_params(stage, REPO / "dvc.yaml", item, REPO / "params.yaml"):
                assert key in keys or key in sections, f"{stage} {item} lists unknown param {key}"


def test_every_code_dependency_exists_and_each_stage_lists_its_command_module():
    for name, stage in STAGES.items():
        body = stage.get("do", stage)
        for dep in body["deps"]:
            if dep.startswith(("preprocess/", "train/", "evaluate/", "pipeline/")):
                assert (REPO / dep).exists(), f"{name}: {dep} does not exist"
        assert body["cmd"].startswith(f"python -m pipeline {name}")


def _entries(*kinds: str) -> dict[str, dict]:
    """{path: options} of every stage's ``kinds`` (outs, metrics, plots), templates unfilled."""
    found = {}
    for stage in STAGES.values():
        for kind in kinds:
            for entry in stage.get("do", stage).get(kind, []):
                path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
                found[path] = options
    return found


def test_metrics_and_plots_are_declared_and_tracked_in_git():
    metrics = _entries("metrics")
    assert {
        "artifacts/metrics/${item.dataset}/retrieval.json",
        "artifacts/metrics/${item.dataset}/finetune.json",
    } <= set(metrics)
    top_level = {
        f for p in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"] for spec in p.values() for f in spec["y"]
    }
    # pretrain@<model>'s outputs, for each model of pretrain.models.
    outs = {
        path.replace("${item}", model): options
        for path, options in _entries("outs", "plots").items()
        for model in (("iic", "baseline") if "${item}" in path else ("",))
    }
    metrics = {
        path.replace("${item}", model): options
        for path, options in metrics.items()
        for model in (("iic", "baseline") if "${item}" in path else ("",))
    }
    # Every plotted file is an output, or lies in an output folder (DVCLive's plots/).
    assert all(any(f == o or f.startswith(o + "/") for o in outs) for f in top_level), top_level
    # Small enough for git: a fresh clone shows them without `dvc pull`.
    plot_outs = _entries("plots")
    for path in [*metrics, *top_level, *plot_outs, "artifacts/report.md", "artifacts/report.json"]:
        options = metrics.get(path) or outs.get(path) or next(v for o, v in outs.items() if path.startswith(o + "/"))
        assert options.get("cache") is False, f"{path} should be tracked in git (cache: false)"
        concrete = path.replace("${item.dataset}", "demo")
        ignored = subprocess.run(["git", "check-ignore", "-q", concrete], cwd=REPO).returncode == 0
        assert not ignored, f"{concrete} is git-ignored"


def test_a_matrix_stage_declares_the_params_of_its_own_dataset(tmp_path):
    """``datasets.${item.dataset}.root`` names one dataset's key."""
    frames = declared_params(
        "frames", REPO / "dvc.yaml", {"dataset": "demo_transfer", "shard": 2}, REPO / "params.yaml"
    )
    assert "datasets.demo_transfer.root" in frames and not any(k.startswith("datasets.demo.") for k in frames)
    dataset = declared_params("dataset", REPO / "dvc.yaml", {"dataset": "demo"}, REPO / "params.yaml")
    assert {k for k in dataset if k.startswith("datasets.")} == {
        f"datasets.demo.{k}"
        for k in ("format", "root", "lists", "split", "test_ratio", "split_seed", "max_reject_share")
    }


def test_messages_name_the_stage_of_a_dataset_shard():
    from pipeline.paths import dataset, stage_of

    data = dataset("hmdb51")
    assert stage_of(data.frames_manifest(3), "frames", 3) == "frames@hmdb51-3"
    assert stage_of(data.verified_videos, "verify") == "verify@hmdb51"
    assert stage_of(Path("/tmp/x/motion"), "motion", 1) == "motion@1"  # outside the layout


def _project_imports(module: str, seen: set[str]) -> set[str]:
    """Modules of preprocess/, train/ and evaluate/ that ``module`` imports, transitively (statically)."""
    import ast

    path = REPO / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = REPO / module.replace(".", "/") / "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module]
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
            else []
        )
        for name in names:
            if name.split(".")[0] in ("preprocess", "train", "evaluate") and name not in seen:
                seen.add(name)
                _project_imports(name, seen)
    return seen


def _cli_imports(command: str) -> set[str]:
    """The modules the click command ``command`` imports in its body, or in a helper of cli.py it calls."""
    import ast

    tree = ast.parse((REPO / "pipeline/cli.py").read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    body = functions[command]
    helpers = {n.func.id for n in ast.walk(body) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    scanned = [body, *(functions[h] for h in helpers if h in functions and h != command)]
    return {n.module for f in scanned for n in ast.walk(f) if isinstance(n, ast.ImportFrom) and n.module}


def _stage_modules(name: str) -> set[str]:
    """Files of preprocess/, train/ and evaluate/ that stage ``name``'s command runs (a package: its folder too)."""
    modules = set()
    for module in _cli_imports(name):
        modules |= _project_imports(module, {module}) if module.split(".")[0] != "pipeline" else set()
    return {m.replace(".", "/") + ".py" for m in modules} | {m.replace(".", "/") for m in modules}


def test_each_stage_depends_on_every_module_its_command_runs():
    """Editing a module a stage runs must rerun the stage: pretraining once ran train/moco.py
    and train/simclr.py without listing them, so an edit there reran nothing."""
    for name, stage in STAGES.items():
        deps = stage.get("do", stage)["deps"]
        modules = set()
        for module in _cli_imports(name):
            modules |= _project_imports(module, {module}) if module.split(".")[0] != "pipeline" else set()
        for module in modules:
            file = module.replace(".", "/") + ".py"
            if not (REPO / file).is_file():
                file = module.replace(".", "/")  # a package: its folder
            listed = any(file == d or file.startswith(d.rstrip("/") + "/") for d in deps)
            assert listed, f"{name} runs {file} but dvc.yaml does not list it"


def test_no_stage_lists_a_module_it_does_not_run():
    """A listed module a stage never imports reruns it for nothing: an edit to the H.264 codec
    once re-hashed every video of every dataset (240,000 at Kinetics size) through the dataset stage."""
    for name, stage in STAGES.items():
        runs = _stage_modules(name)
        for dep in stage.get("do", stage)["deps"]:
            if dep.startswith(("preprocess/", "train/", "evaluate/")):
                assert any(f == dep or f.startswith(dep.rstrip("/") + "/") for f in runs), f"{name} lists {dep}"
    dataset_deps = STAGES["dataset"]["do"]["deps"]
    assert not {"preprocess/shards.py", "preprocess/h264.py", "preprocess/residual.py"} & set(dataset_deps)
