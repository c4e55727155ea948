"""Judge a demo design on random-init runs only: can a supervised model learn it, and how far
below that do frozen random features stay?

A design is ``params.yaml`` with ``--set key=value`` overrides (the demo generator, split sizes,
the fine-tuning schedule). In a scratch workspace under ``--work`` the pipeline's own commands
generate and preprocess each dataset (``demo``, ``dataset``, ``frames``, ``motion``, ``verify``);
then, per seed, fine-tuning from random init (``train.finetune.finetune`` with no encoder
state) and weighted kNN on the frozen features of a random-init encoder (rgb, view 2, merge).
No pretraining runs, so no pretraining result can steer the design.

    python bench/demo_design.py --name wider --set demo.demo.videos=180 --set finetune.epochs=40
    python bench/demo_design.py --name wider --seeds 632 1 2 --datasets demo demo_transfer

Prints one row per dataset: the train/test counts, fine-tuned video top-1 per seed and its mean,
the best random-init kNN top-1 and the headroom criteria (60 <= fine-tuned <= 85, kNN at least
20 points below). Results are appended to ``<work>/designs.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evaluate.features import video_features  # noqa: E402
from evaluate.knn import knn_class_scores  # noqa: E402
from evaluate.retrieval import merge_features  # noqa: E402
from pipeline import paths  # noqa: E402
from pipeline.params import load_params  # noqa: E402
from pipeline.runtime import make_runtime  # noqa: E402
from preprocess.verified import open_verified  # noqa: E402
from train.checkpoint import build_encoder  # noqa: E402
from train.classification import topk_correct  # noqa: E402
from train.data import split_ids  # noqa: E402
from train.finetune import finetune  # noqa: E402

log = logging.getLogger("demo_design")


def override(params: dict, assignment: str) -> None:
    """Apply one ``a.b.c=value`` (value parsed as YAML) to the nested ``params``."""
    key, _, raw = assignment.partition("=")
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    if leaf not in node:
        raise SystemExit(f"--set {key}: no such key in params.yaml")
    node[leaf] = yaml.safe_load(raw)


def prepare(folder: Path, assignments: list[str], datasets: list[str]) -> float:
    """Write the design's params.yaml and run the data stages of ``datasets``; return seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for assignment in assignments:
        override(params, assignment)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "dvc.yaml", folder / "dvc.yaml")  # the stage commands read their declared params there
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    for name in datasets:
        if (folder / paths.dataset(name).verified_videos).exists():
            continue
        commands = [["demo", name], ["dataset", name]]
        commands += [[kind, name, str(s)] for kind in ("frames", "motion") for s in params["shards"]["ids"]]
        commands += [["verify", name]]
        for command in commands:
            with open(folder / f"{'@'.join(command)}.log", "w") as out:
                subprocess.run(
                    [sys.executable, "-m", "pipeline", *command], cwd=folder, env=env, check=True, stdout=out,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
    return time.perf_counter() - start


def knn_top1(reader, encoder, view2: str, p, runtime) -> dict[str, float]:
    """Weighted kNN top-1 of the test videos among the train videos, per feature set."""
    train, test = split_ids(reader, "train"), split_ids(reader, "test")
    ids = train + test
    labels = torch.tensor([reader.videos[v]["label"] for v in ids])
    sets = {}
    for modality in ("rgb", view2):
        sets[modality] = video_features(
            encoder, reader, ids, modality, p.clip.length, p.clip.crop, p.clip.eval_clips,
            p.features.batch_size, p.runtime.workers, runtime,
        )  # fmt: skip
    sets["merge"] = merge_features(sets["rgb"], sets[view2])
    n_classes = int(labels.max()) + 1
    result = {}
    for name, feats in sets.items():
        x = torch.from_numpy(feats)
        scores = knn_class_scores(
            x[len(train) :], x[: len(train)], labels[: len(train)], n_classes, p.knn.k, p.knn.temperature
        )
        result[name] = topk_correct(scores, labels[len(train) :], 1).float().mean().item()
    return result


def judge(folder: Path, name: str, seeds: list[int], config: dict) -> dict:
    os.chdir(folder)
    p = load_params(folder / "params.yaml")
    data = paths.dataset(name)
    reader = open_verified(data.verified_videos, data.frames, data.motion)
    runtime = make_runtime(p.runtime)
    n_classes = len({v["label"] for v in reader.videos.values()})
    row: dict = {
        "train": len(split_ids(reader, "train")),
        "test": len(split_ids(reader, "test")),
        "finetune": {},
        "knn": {},
        "seconds": {},
    }
    for seed in seeds:
        setup = dataclasses.replace(p.finetune, seed=seed)
        start = time.perf_counter()
        result = finetune(
            reader, setup, p.clip, config, None, runtime, p.runtime.workers, n_classes,
            f"random-{seed}", False,
        )  # fmt: skip
        row["seconds"][seed] = round(time.perf_counter() - start, 1)
        row["finetune"][seed] = {
            "video_top1": result["metrics"]["video_top1"],
            "best_epoch": result["metrics"]["best_epoch"],
            "last_train_loss": result["history"][-1]["train_loss"],
        }
        torch.manual_seed(seed)
        row["knn"][seed] = knn_top1(reader, build_encoder(config), config["view2"], p, runtime)
    finetuned = [r["video_top1"] for r in row["finetune"].values()]
    best_knn = [max(k.values()) for k in row["knn"].values()]
    row["finetune_mean"], row["knn_best_mean"] = statistics.mean(finetuned), statistics.mean(best_knn)
    row["meets"] = 0.60 <= row["finetune_mean"] <= 0.85 and row["knn_best_mean"] <= row["finetune_mean"] - 0.20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the design's name: its folder under --work")
    parser.add_argument("--set", dest="assignments", action="append", default=[], help="key=value (YAML value)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[632])
    parser.add_argument("--datasets", nargs="+", default=["demo"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/demo-design"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    folder = (args.work / args.name).resolve()
    seconds = prepare(folder, args.assignments, args.datasets)
    p = load_params(folder / "params.yaml")
    config = {
        "arch": p.model.arch,
        "width": p.model.width,
        "feat_dim": p.pretrain.feat_dim,
        "view2": p.pretrain.modality,
    }
    rows = {}
    for name in args.datasets:
        rows[name] = judge(folder, name, args.seeds, config)
        r = rows[name]
        print(
            f"{args.name} {name}: {r['train']} train / {r['test']} test; fine-tuned random init "
            f"{[round(100 * f['video_top1'], 1) for f in r['finetune'].values()]} mean {100 * r['finetune_mean']:.1f}; "
            f"random kNN best {[round(100 * max(k.values()), 1) for k in r['knn'].values()]} mean "
            f"{100 * r['knn_best_mean']:.1f}; meets: {r['meets']}; fine-tuning s {list(r['seconds'].values())}",
            flush=True,
        )
    record = args.work / "designs.json"
    designs = json.loads(record.read_text()) if record.exists() else []
    designs.append({"name": args.name, "set": args.assignments, "data_seconds": seconds, "datasets": rows})
    record.write_text(json.dumps(designs, indent=1))


if __name__ == "__main__":
    main()
