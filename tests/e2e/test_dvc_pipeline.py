"""The three promises with real DVC: repro everything, rerun only what changed, share artifacts.

Each test builds on the state the previous one left in the session's tiny repository, so
they run in file order.
"""
from __future__ import annotations

import json
import os
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

from pipeline.params import leaf_keys, load_params
from pipeline.stage import TRACE_ENV, declared_params
from tests.e2e.conftest import git, ran_stages, run, set_params

pytestmark = pytest.mark.slow

PREPROCESS = {"demo", "dataset", "frames@0", "frames@1", "motion@0", "motion@1", "verify"}
LEARNING = {"pretrain", "features", "retrieve", "finetune", "export"}


def test_repro_runs_every_stage_then_nothing(tiny_repo):
    trace = tiny_repo / "params_trace.jsonl"
    first = run(["dvc", "repro"], tiny_repo, env={TRACE_ENV: str(trace)})
    assert ran_stages(first) == PREPROCESS | LEARNING
    second = run(["dvc", "repro"], tiny_repo)
    assert ran_stages(second) == set()
    metrics = json.loads((tiny_repo / "artifacts/metrics/retrieval.json").read_text())
    assert set(metrics) == {"iic", "random"} and metrics["iic"]["queries"] > 0
    finetune = json.loads((tiny_repo / "artifacts/metrics/finetune.json").read_text())
    assert set(finetune["iic"]) >= {"clip_top1", "video_top1", "video_top5"}


def test_each_stage_reads_exactly_the_params_dvc_yaml_lists(tiny_repo):
    """A listed key that is never read would trigger needless reruns; an unlisted read is refused at run time."""
    params = load_params(tiny_repo / "params.yaml")
    all_keys = leaf_keys(params)
    read: dict[str, set[str]] = {}
    for line in (tiny_repo / "params_trace.jsonl").read_text().splitlines():
        record = json.loads(line)
        read.setdefault(record["stage"], set()).update(record["read"])
    stages = yaml.safe_load((tiny_repo / "dvc.yaml").read_text())["stages"]
    assert set(read) == set(stages)
    for stage in stages:
        declared = declared_params(stage, tiny_repo / "dvc.yaml")
        expanded = {k for k in all_keys if any(k == d or k.startswith(d + ".") for d in declared)}
        assert read[stage] == expanded, f"{stage}: listed but unread {expanded - read[stage]}, read but unlisted {read[stage] - expanded}"


@pytest.mark.parametrize("change, expected", [
    # New flow reruns everything that reads the motion shards. Pretraining on residuals does not
    # use flow, so it reproduces the same checkpoint bit for bit, the features come out
    # byte-identical and DVC rightly skips retrieve, whose only data input they are.
    ({"motion": {"tvl1.warps": 3}}, {"motion@0", "motion@1", "verify", "pretrain", "features", "finetune"}),
    ({"pretrain": {"epochs": 3}}, LEARNING),
    ({"retrieve": {"topk": [1, 5]}}, {"retrieve", "export"}),
    # One tiny epoch at either lr scores the same: finetune.json is byte-identical, so the
    # export (its card quotes the metrics) rightly stays.
    ({"finetune": {"lr": 0.002}}, {"finetune"}),
])
def test_a_param_change_reruns_exactly_the_stages_downstream(tiny_repo, change, expected):
    set_params(tiny_repo, change)
    assert ran_stages(run(["dvc", "repro"], tiny_repo)) == expected
    assert ran_stages(run(["dvc", "repro"], tiny_repo)) == set()


def test_adding_one_video_reruns_one_shard(tiny_repo):
    videos = load_params(tiny_repo / "params.yaml").demo.videos
    set_params(tiny_repo, {"demo": {"videos": videos + 1}})
    ran = ran_stages(run(["dvc", "repro"], tiny_repo))
    assert {"demo", "dataset", "verify"} <= ran
    assert len([s for s in ran if s.startswith("frames@")]) == 1
    assert len([s for s in ran if s.startswith("motion@")]) == 1
    assert ran - PREPROCESS == LEARNING  # the new video joins training and evaluation


def test_push_clone_pull_then_nothing_to_rerun(tiny_repo, tmp_path):
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], tiny_repo)
    git(tiny_repo, "add", "-A")
    git(tiny_repo, "commit", "-qm", "reproduced")
    run(["dvc", "push"], tiny_repo)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tiny_repo), str(clone))
    # Metrics and plot tables are in git: a fresh clone shows them before pulling anything.
    assert json.loads(run(["dvc", "metrics", "show", "--json"], clone)) == \
        json.loads(run(["dvc", "metrics", "show", "--json"], tiny_repo))
    assert "iic.rgb.top1" in run(["dvc", "exp", "show", "--no-pager", "--md"], clone).splitlines()[0]
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], clone)
    assert "confusion" in (tmp_path / "plots/index.html").read_text()
    run(["dvc", "pull"], clone)
    assert ran_stages(run(["dvc", "repro"], clone)) == set()
    shown = run(["dvc", "metrics", "show", "--json"], clone)
    assert json.loads(shown) == json.loads(run(["dvc", "metrics", "show", "--json"], tiny_repo))

    # Another fresh clone changes a retrieval param: features come from the remote, only retrieve runs.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(tiny_repo), str(other))
    set_params(other, {"retrieve": {"topk": [1, 2]}})
    output = run(["dvc", "repro", "--pull"], other)
    assert ran_stages(output) == {"retrieve", "export"}
    metrics = json.loads((other / "artifacts/metrics/retrieval.json").read_text())
    assert set(metrics["iic"]["rgb"]) == {"top1", "top2"}

    # The exported backbone is a DVC model artifact: registered with a version (a GTO tag, as
    # `gto register` makes it), then fetched by name from the repository and its remote.
    git(tiny_repo, "tag", "-a", "iic-backbone@v1.0.0", "-m", "Registering artifact iic-backbone version v1.0.0")
    run(["dvc", "artifacts", "get", str(tiny_repo), "iic-backbone", "-o", str(tmp_path / "weights.safetensors")], tmp_path)
    assert (tmp_path / "weights.safetensors").read_bytes() == (tiny_repo / "artifacts/export/model.safetensors").read_bytes()
    shutil.rmtree(remote)


def test_killed_pretraining_resumes_from_its_checkpoint(tiny_repo, tmp_path):
    """Kill `dvc repro` during pretraining after a checkpoint; the rerun resumes, and its weights
    equal those of an uninterrupted run."""
    set_params(tiny_repo, {"pretrain": {"epochs": 6}})  # a configuration DVC has not run yet
    resume = tiny_repo / "artifacts/pretrain_resume/last.pt"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(["dvc", "repro", "pretrain"], cwd=tiny_repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not resume.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert resume.exists(), "pretraining finished or failed before its first checkpoint"
    assert not (tiny_repo / "artifacts/pretrain/model.pt").exists()

    output = run(["dvc", "repro", "pretrain"], tiny_repo)
    assert "resuming pretraining" in output
    assert not resume.exists()
    resumed = torch.load(tiny_repo / "artifacts/pretrain/model.pt", weights_only=True)
    resumed_bytes = (tiny_repo / "artifacts/pretrain/model.pt").read_bytes()

    # The same configuration once more, from scratch (-f runs it although nothing changed).
    output = run(["dvc", "repro", "-f", "-s", "pretrain"], tiny_repo)
    assert "resuming pretraining" not in output
    uninterrupted = torch.load(tiny_repo / "artifacts/pretrain/model.pt", weights_only=True)
    for key, value in uninterrupted["encoder"].items():
        assert torch.equal(value, resumed["encoder"][key]), key
    # Identical weights, identical file: DVC sees the same hash, so nothing downstream reruns.
    assert (tiny_repo / "artifacts/pretrain/model.pt").read_bytes() == resumed_bytes


def _fails(cmd: list[str], cwd: Path) -> tuple[int, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stderr


def test_errors_a_person_makes_print_one_line(tiny_repo, tmp_path):
    """A stage run out of order and a bad key: one line naming the file or key, status 2."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tiny_repo), str(clone))
    code, err = _fails([sys.executable, "-m", "pipeline", "pretrain"], clone)
    assert code == 2 and err.strip().splitlines() == [
        "error: artifacts/verified/videos.json: missing; run `dvc repro verify` (--debug for the traceback)"]
    set_params(clone, {"pretrain": {"epoch": 3}})
    code, err = _fails([sys.executable, "-m", "pipeline", "pretrain"], clone)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown key pretrain.epoch" in err
    code, err = _fails([sys.executable, "-m", "pipeline", "--debug", "pretrain"], clone)
    assert code == 1 and "Traceback" in err


def test_removed_shards_and_videos_never_reach_training(tiny_repo):
    """shards.ids [0, 1] -> [0]: the leftovers of shard 1 are removed, and training, features
    and fine-tuning see exactly the videos the index lists."""
    set_params(tiny_repo, {"shards": {"ids": [0]}})
    output = run(["dvc", "repro"], tiny_repo)
    assert {"dataset", "frames@0", "motion@0", "verify"} <= ran_stages(output)
    for folder in ("frames", "motion"):
        assert sorted(p.name for p in (tiny_repo / "artifacts" / folder).iterdir()) == ["0.h5", "0.json"]
    index = {e["id"] for e in json.loads((tiny_repo / "artifacts/dataset/index.json").read_text())}
    verified = {v["id"] for v in json.loads((tiny_repo / "artifacts/verified/videos.json").read_text())["videos"]}
    assert verified == index
    assert set(np.load(tiny_repo / "artifacts/features/iic.npz")["ids"].tolist()) == index
    n_train = sum(e["split"] == "train" for e in json.loads((tiny_repo / "artifacts/dataset/index.json").read_text()))
    assert f"on {n_train} videos" in output
