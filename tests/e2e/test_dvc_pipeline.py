"""The three promises with real DVC: repro everything, rerun only what changed, share artifacts.

Each test builds on the state the previous one left in the shared tiny repository, so
they run in file order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from evaluate.seeds import SEED_KEYS, seed_runs
from pipeline.params import load_params
from pipeline.stage import TRACE_ENV
from tests.e2e.conftest import git, ran_stages, run, set_params

pytestmark = pytest.mark.slow

DATASETS = ("demo", "demo_transfer")
SHARDS = (0, 1)


def preprocessing(*names: str) -> set[str]:
    """Every stage that makes the named datasets' verified shards."""
    return {
        s
        for n in names
        for s in (
            f"demo@{n}",
            f"dataset@{n}",
            f"verify@{n}",
            *(f"{kind}@{n}-{i}" for kind in ("frames", "motion") for i in SHARDS),
        )
    }


def evaluation(*names: str) -> set[str]:
    kinds = ("features", "retrieve", "knn", "linear", "gallery", "temporal", "finetune")
    return {f"{kind}@{n}" for n in names for kind in kinds}


PREPROCESS = preprocessing(*DATASETS)
PRETRAIN = {"pretrain@iic", "pretrain@baseline"}  # IIC and its baseline without intra-negatives
LEARNING = PRETRAIN | {"report", "export"} | evaluation("demo")
MODELS = {"iic", "baseline", "random"}
PAIRED = {"intervals", "paired", "paired_baseline"}


def test_repro_runs_every_stage_then_nothing(tiny_repo):
    trace = tiny_repo / "params_trace.jsonl"
    first = run(["dvc", "repro"], tiny_repo, env={TRACE_ENV: str(trace)})
    assert ran_stages(first) == PREPROCESS | {"pretrain_data@demo"} | LEARNING
    second = run(["dvc", "repro"], tiny_repo)
    assert ran_stages(second) == set()
    metrics = json.loads((tiny_repo / "artifacts/metrics/demo/retrieval.json").read_text())
    assert set(metrics) == MODELS | PAIRED and metrics["iic"]["queries"] > 0
    assert metrics["intervals"]["iic"]["rgb"]["top1"]["low"] <= metrics["iic"]["rgb"]["top1"]
    finetune = json.loads((tiny_repo / "artifacts/metrics/demo/finetune.json").read_text())
    assert set(finetune["iic"]) >= {"clip_top1", "video_top1"} and "video_top5" not in finetune["iic"]  # 3 classes
    for name in ("knn", "linear"):
        frozen = json.loads((tiny_repo / f"artifacts/metrics/demo/{name}.json").read_text())
        assert set(frozen) == MODELS | PAIRED and 0 <= frozen["iic"]["merge"]["top1"] <= 1
    temporal = json.loads((tiny_repo / "artifacts/metrics/demo/temporal.json").read_text())
    assert set(temporal) == MODELS | PAIRED and set(temporal["iic"]["rgb"]) == {"repeat", "shuffle", "reverse", "arrow"}
    assert set(finetune) == MODELS | PAIRED
    baseline = torch.load(tiny_repo / "artifacts/pretrain/baseline/model.pt", weights_only=True)["config"]
    iic = torch.load(tiny_repo / "artifacts/pretrain/iic/model.pt", weights_only=True)["config"]
    assert {k for k in iic if iic[k] != baseline[k]} == {"intra_neg"} and not baseline["intra_neg"]
    # The learning curve of pretraining, measured after the last epoch at least.
    curve = (tiny_repo / "artifacts/dvclive/pretrain/iic/plots/metrics/knn_top1_rgb.tsv").read_text().splitlines()
    assert curve[0] == "step\tknn_top1_rgb" and len(curve) >= 2
    assert (tiny_repo / "artifacts/plots/demo/retrieval_gallery.png").read_bytes()[:4] == b"\x89PNG"
    report = (tiny_repo / "artifacts/report.md").read_text()
    assert "## `demo` (ucf101 format, split 1)" in report and "model.width: 4 (row: 64)" in report
    assert "| kNN merge top-1 |" in report and "| linear probe merge top-1 |" in report
    assert "**Intra-negatives** (IIC - baseline" in report and "| reverse |" in report
    summary = run([sys.executable, "-m", "pipeline", "summary"], tiny_repo)
    assert "intra-negatives" in summary


def _leaves(value: object, prefix: str) -> set[str]:
    if isinstance(value, dict):
        return {k for key, v in value.items() for k in _leaves(v, f"{prefix}.{key}")}
    return {prefix}


def test_each_stage_reads_exactly_the_params_dvc_tracks_for_it(tiny_repo):
    """A tracked key that is never read would trigger needless reruns; a read key DVC does not
    track would not rerun the stage when it changes. DVC's own record (dvc.lock) is the reference."""
    read: dict[str, set[str]] = {}
    for line in (tiny_repo / "params_trace.jsonl").read_text().splitlines():
        record = json.loads(line)
        read.setdefault(record["stage"], set()).update(record["read"])
    locked = yaml.safe_load((tiny_repo / "dvc.lock").read_text())["stages"]
    assert set(read) == set(locked)
    for stage, entry in locked.items():
        tracked = {k for key, v in entry.get("params", {}).get("params.yaml", {}).items() for k in _leaves(v, key)}
        assert read[stage] == tracked, (
            f"{stage}: tracked but unread {tracked - read[stage]}, read but untracked {read[stage] - tracked}"
        )


@pytest.mark.parametrize(
    "change, expected, if_metrics_changed",
    [
        # New flow reruns everything that reads the motion shards. Pretraining on residuals does not
        # use flow, so it reproduces the same checkpoint bit for bit, the features come out
        # byte-identical and DVC rightly skips retrieve, whose only data input they are.
        (
            {"motion": {"tvl1.warps": 3}},
            {f"motion@{n}-{i}" for n in DATASETS for i in SHARDS}
            | {"verify@demo", "verify@demo_transfer", "features@demo", "finetune@demo", "gallery@demo", "temporal@demo"}
            | {"pretrain_data@demo"}
            | PRETRAIN,
            {"report", "export"},
        ),
        ({"pretrain": {"epochs": 3}}, LEARNING, set()),
        # Not [1, 5]: with 6 train videos every larger k was left out already, so [1, 5] changes nothing.
        ({"retrieve": {"topk": [1, 3]}}, {"retrieve@demo", "report", "export"}, set()),
        # The report and the card follow fine-tuning only when its metrics file changed.
        ({"finetune": {"lr": 0.002}}, {"finetune@demo"}, {"report", "export"}),
        # One dataset's settings rerun that dataset's stages only (identical index: nothing after
        # it), and the report, which records every dataset's settings (and the card, which quotes it).
        (
            {"datasets": {"demo_transfer.max_reject_share": 0.2}},
            {"dataset@demo_transfer", "verify@demo_transfer", "report", "export"},
            set(),
        ),
    ],
)
def test_a_param_change_reruns_exactly_the_stages_downstream(tiny_repo, change, expected, if_metrics_changed):
    before = (tiny_repo / "artifacts/metrics/demo/finetune.json").read_bytes()
    set_params(tiny_repo, change)
    ran = ran_stages(run(["dvc", "repro"], tiny_repo))
    changed = (tiny_repo / "artifacts/metrics/demo/finetune.json").read_bytes() != before
    assert ran == expected | (if_metrics_changed if changed else set())
    assert ran_stages(run(["dvc", "repro"], tiny_repo)) == set()


def test_adding_an_evaluation_dataset_runs_only_its_stages(tiny_repo):
    """demo_transfer was preprocessed from the start; evaluating on it adds its evaluation stages,
    the report and the card, and never reruns pretraining or the other dataset's stages."""
    set_params(tiny_repo, {"evaluate": {"datasets": ["demo", "demo_transfer"]}})
    assert ran_stages(run(["dvc", "repro"], tiny_repo)) == evaluation("demo_transfer") | {"report", "export"}
    report = (tiny_repo / "artifacts/report.md").read_text()
    assert "## `demo_transfer` (hmdb51 format, split 1)" in report
    assert json.loads((tiny_repo / "artifacts/metrics/demo_transfer/retrieval.json").read_text())["iic"]["queries"] > 0


def test_a_new_video_in_an_evaluation_dataset_reruns_that_dataset_only(tiny_repo):
    set_params(tiny_repo, {"demo": {"demo_transfer.videos": 13}})
    ran = ran_stages(run(["dvc", "repro"], tiny_repo))
    assert not ran & PRETRAIN and not any(s.endswith(("@demo", "@demo-0", "@demo-1")) for s in ran), ran
    assert {"demo@demo_transfer", "dataset@demo_transfer", "verify@demo_transfer"} | evaluation("demo_transfer") <= ran
    assert (
        len([s for s in ran if s.startswith("frames@")]) == 1 and len([s for s in ran if s.startswith("motion@")]) == 1
    )


def test_adding_one_video_reruns_one_shard(tiny_repo):
    videos = load_params(tiny_repo / "params.yaml").demo["demo"].videos
    set_params(tiny_repo, {"demo": {"demo.videos": videos + 1}})
    ran = ran_stages(run(["dvc", "repro"], tiny_repo))
    assert {"demo@demo", "dataset@demo", "verify@demo"} <= ran
    assert len([s for s in ran if s.startswith("frames@")]) == 1
    assert len([s for s in ran if s.startswith("motion@")]) == 1
    # The new video joins training and every evaluation.
    assert {s for s in ran if not s.startswith(("demo@", "dataset@", "frames@", "motion@", "verify@"))} == PRETRAIN | {
        "pretrain_data@demo",
        "report",
        "export",
    } | evaluation(*DATASETS)


def test_push_clone_pull_then_nothing_to_rerun(tiny_repo, tmp_path):
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], tiny_repo)
    git(tiny_repo, "add", "-A")
    git(tiny_repo, "commit", "-qm", "reproduced")
    run(["dvc", "push"], tiny_repo)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tiny_repo), str(clone))
    # Metrics and plot tables are in git: a fresh clone shows them before pulling anything.
    assert json.loads(run(["dvc", "metrics", "show", "--json"], clone)) == json.loads(
        run(["dvc", "metrics", "show", "--json"], tiny_repo)
    )
    assert "iic.rgb.top1" in run(["dvc", "exp", "show", "--no-pager", "--md"], clone).splitlines()[0]
    assert (clone / "artifacts/report.md").read_text() == (tiny_repo / "artifacts/report.md").read_text()
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], clone)
    page = (tmp_path / "plots/index.html").read_text()
    assert "pretraining loss" in page and "retrieval_gallery.png" in page and "knn_top1_rgb" in page
    run(["dvc", "pull"], clone)
    assert ran_stages(run(["dvc", "repro"], clone)) == set()
    shown = run(["dvc", "metrics", "show", "--json"], clone)
    assert json.loads(shown) == json.loads(run(["dvc", "metrics", "show", "--json"], tiny_repo))

    # Another fresh clone changes a retrieval param: features come from the remote, only retrieve runs.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(tiny_repo), str(other))
    set_params(other, {"retrieve": {"topk": [1, 2]}})
    output = run(["dvc", "repro", "--pull"], other)
    assert ran_stages(output) == {"retrieve@demo", "retrieve@demo_transfer", "report", "export"}
    metrics = json.loads((other / "artifacts/metrics/demo/retrieval.json").read_text())
    assert set(metrics["iic"]["rgb"]) == {"top1", "top2"}

    # The exported backbone is a DVC model artifact: registered with a version (a GTO tag, as
    # `gto register` makes it), then fetched by name from the repository and its remote.
    git(tiny_repo, "tag", "-a", "iic-backbone@v1.0.0", "-m", "Registering artifact iic-backbone version v1.0.0")
    run(
        ["dvc", "artifacts", "get", str(tiny_repo), "iic-backbone", "-o", str(tmp_path / "weights.safetensors")],
        tmp_path,
    )
    assert (tmp_path / "weights.safetensors").read_bytes() == (
        tiny_repo / "artifacts/export/model.safetensors"
    ).read_bytes()
    shutil.rmtree(remote)


def test_seeds_run_as_queued_experiments_and_aggregate_into_one_table(tiny_repo):
    """README "Seeds": one queued DVC experiment per seed, then `python -m pipeline seeds` reads
    `dvc exp show --json` and writes the table over the baseline's seed and the two new ones."""
    for seed in (1, 2):
        flags = [f for key in SEED_KEYS for f in ("-S", f"{key}={seed}")]
        run(["dvc", "exp", "run", "--queue", *flags], tiny_repo)
    run(["dvc", "queue", "start", "-j", "1"], tiny_repo)
    deadline = time.monotonic() + 600
    while True:
        status = run(["dvc", "queue", "status"], tiny_repo)
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert status.count("Success") == 2, status
    table_file = tiny_repo / "seeds.md"
    table = run([sys.executable, "-m", "pipeline", "seeds", "--out", str(table_file)], tiny_repo)
    assert table_file.read_text() in table
    rows = [line for line in table.splitlines() if line.startswith("| demo |")]
    baseline = load_params(tiny_repo / "params.yaml").pretrain.seed
    assert f"3 seeds (1, 2, {baseline})" in table
    # Every measure of every protocol, each with three per-seed differences and their mean, against
    # random init and against the baseline (whose mean ± sd column comes first).
    labels = {r.split(" | ")[1] for r in rows}
    assert {"retrieval merge top-1", "kNN merge top-1", "linear probe merge top-1", "fine-tuned video top1"} <= labels
    assert {"temporal rgb reverse sim", "temporal rgb arrow of time"} <= labels
    assert all(len(r.strip("|").split("|")) == 4 + 3 + 1 + 1 + 3 + 1 for r in rows)
    assert "seed 1: IIC - baseline" in table and not any("| - |" in r for r in rows)  # every run has a baseline
    shown = json.loads(run(["dvc", "exp", "show", "--json"], tiny_repo))
    seeds = sorted(r.seed for r in seed_runs(shown))
    assert seeds == [1, 2, baseline]


def test_killed_pretraining_resumes_from_its_checkpoint(tiny_repo, tmp_path):
    """Kill `dvc repro` during pretraining after a checkpoint; the rerun resumes, and its weights
    equal those of an uninterrupted run."""
    set_params(tiny_repo, {"pretrain": {"epochs": 6}})  # a configuration DVC has not run yet
    resume = tiny_repo / "artifacts/pretrain_resume/iic/last.pt"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        ["dvc", "repro", "pretrain@iic"],
        cwd=tiny_repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not resume.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert resume.exists(), "pretraining finished or failed before its first checkpoint"
    assert not (tiny_repo / "artifacts/pretrain/iic/model.pt").exists()

    output = run(["dvc", "repro", "pretrain@iic"], tiny_repo)
    assert "resuming pretraining" in output
    assert not resume.exists()
    resumed = torch.load(tiny_repo / "artifacts/pretrain/iic/model.pt", weights_only=True)
    resumed_bytes = (tiny_repo / "artifacts/pretrain/iic/model.pt").read_bytes()

    # The same configuration once more, from scratch (-f runs it although nothing changed).
    output = run(["dvc", "repro", "-f", "-s", "pretrain@iic"], tiny_repo)
    assert "resuming pretraining" not in output
    uninterrupted = torch.load(tiny_repo / "artifacts/pretrain/iic/model.pt", weights_only=True)
    for key, value in uninterrupted["encoder"].items():
        assert torch.equal(value, resumed["encoder"][key]), key
    # Identical weights, identical file: DVC sees the same hash, so nothing downstream reruns.
    assert (tiny_repo / "artifacts/pretrain/iic/model.pt").read_bytes() == resumed_bytes


def _fails(cmd: list[str], cwd: Path) -> tuple[int, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stderr


def test_errors_a_person_makes_print_one_line(tiny_repo, tmp_path):
    """A stage run out of order and a bad key: one line naming the file or key, status 2."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tiny_repo), str(clone))
    code, err = _fails([sys.executable, "-m", "pipeline", "pretrain", "iic"], clone)
    assert code == 2 and err.strip().splitlines() == [
        "error: artifacts/pretrain_data/demo/videos.json: missing; run `dvc repro pretrain_data@demo` "
        "(--debug for the traceback)"
    ]
    set_params(clone, {"pretrain": {"epoch": 3}})
    code, err = _fails([sys.executable, "-m", "pipeline", "pretrain", "iic"], clone)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown key pretrain.epoch" in err
    code, err = _fails([sys.executable, "-m", "pipeline", "--debug", "pretrain", "iic"], clone)
    assert code == 1 and "Traceback" in err


def test_removed_shards_and_videos_never_reach_training(tiny_repo):
    """shards.ids [0, 1] -> [0]: the leftovers of shard 1 are removed, and training, features
    and fine-tuning see exactly the videos the index lists."""
    set_params(tiny_repo, {"shards": {"ids": [0]}})
    output = run(["dvc", "repro"], tiny_repo)
    assert {"dataset@demo", "frames@demo-0", "motion@demo-0", "verify@demo"} <= ran_stages(output)
    data = tiny_repo / "artifacts/data/demo"
    for folder in ("frames", "motion"):
        assert sorted(p.name for p in (data / folder).iterdir()) == ["0.h5", "0.json"]
    index = {e["id"] for e in json.loads((data / "dataset/index.json").read_text())}
    verified = {v["id"] for v in json.loads((data / "verified/videos.json").read_text())["videos"]}
    assert verified == index
    assert set(np.load(data / "features/iic.npz")["ids"].tolist()) == index
    n_train = sum(e["split"] == "train" for e in json.loads((data / "dataset/index.json").read_text()))
    assert f"on {n_train} videos" in output


def test_pretraining_on_two_datasets_reruns_for_a_listed_dataset_only(tiny_repo):
    """pretrain.datasets [demo] -> [demo, demo_transfer]: pretraining reads both train splits, and
    a new video of demo_transfer now reruns it (while unlisted it did not: the test of a new video
    in an evaluation dataset). Pretraining only is reproduced (the card's two datasets are tested in
    tests/evaluate/test_export.py); the next test reruns the evaluations, which it expects anyway."""
    set_params(tiny_repo, {"pretrain": {"datasets": ["demo", "demo_transfer"]}})
    ran = ran_stages(run(["dvc", "repro", *sorted(PRETRAIN)], tiny_repo))
    both = {"pretrain_data@demo", "pretrain_data@demo_transfer"}
    assert ran == both | PRETRAIN
    train = {
        name: sum(v["split"] == "train" for v in json.loads((tiny_repo / path).read_text())["videos"])
        for name, path in (
            ("demo", "artifacts/data/demo/verified/videos.json"),
            ("demo_transfer", "artifacts/data/demo_transfer/verified/videos.json"),
        )
    }
    config = torch.load(tiny_repo / "artifacts/pretrain/iic/model.pt", weights_only=True)["config"]
    assert config["train_videos"] == train["demo"] + train["demo_transfer"]

    videos = load_params(tiny_repo / "params.yaml").demo["demo_transfer"].videos
    set_params(tiny_repo, {"demo": {"demo_transfer.videos": videos + 1}})
    ran = ran_stages(run(["dvc", "repro", *sorted(PRETRAIN)], tiny_repo))
    assert {"verify@demo_transfer", "pretrain_data@demo_transfer"} | PRETRAIN <= ran
    assert "pretrain_data@demo" not in ran and not any(s.endswith(("@demo-0", "@demo-1")) for s in ran), ran


def test_dropping_the_baseline_reruns_the_evaluations_and_never_iic_pretraining(tiny_repo):
    """pretrain.models: [iic] is for a budget of one pretraining: IIC's stage is untouched (it does
    not track pretrain.models), every evaluation drops the baseline's column and pair. Last: the
    tests before it expect the baseline."""
    set_params(tiny_repo, {"pretrain": {"models": ["iic"]}})
    ran = ran_stages(run(["dvc", "repro"], tiny_repo))
    assert ran == evaluation(*DATASETS) | {"report", "export"}
    for name in ("retrieval", "knn", "linear", "temporal", "finetune"):
        metrics = json.loads((tiny_repo / f"artifacts/metrics/demo/{name}.json").read_text())
        assert set(metrics) == {"iic", "random", "intervals", "paired"}, name
    assert "No baseline was pretrained" in (tiny_repo / "artifacts/report.md").read_text()
