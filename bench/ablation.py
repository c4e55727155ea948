"""The method x intra-negative ablation on the demo, through the pipeline's own stages.

Each run is the real ``python -m pipeline pretrain iic`` (one model: ``pretrain.models: [iic]``,
with the run's intra_neg), then ``features / retrieve / temporal [/ finetune]``
of each ``--evaluate`` dataset, in a scratch workspace under ``--work``: a copy of dvc.yaml and
of params.yaml with the run's overrides, and links to this workspace's verified shards (run
``dvc repro verify@demo`` first, and for each evaluation dataset). So a row is exactly what
``dvc repro`` gives with those params. Finished runs are kept in ``<work>/results.json`` and
skipped when the script is started again.

    python bench/ablation.py                      # 4 methods x intra on/off x seeds 632, 1, 2
    python bench/ablation.py --out docs/ablation-table.md

The seed sets pretraining, fine-tuning and the random-init baseline together. Fine-tuning runs
for the first seed only (``--finetune-seeds``). Prints the table (mean and range per row over
the seeds) and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.markdown import markdown_table

REPO = Path(__file__).resolve().parent.parent
SHARED_INPUTS = ("verified", "frames", "motion")  # per dataset, read-only
METHODS = ("cmc", "cmc_upstream", "moco", "simclr")


def run_name(method: str, intra_neg: bool, seed: int) -> str:
    return f"{method}-{'intra' if intra_neg else 'plain'}-{seed}"


def prepare_workspace(folder: Path, method: str, intra_neg: bool, seed: int, datasets: list[str]) -> None:
    """dvc.yaml, params.yaml with the run's overrides, and links to the datasets' verified shards."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dvc.yaml", folder / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["pretrain"].update(method=method, intra_neg=intra_neg, seed=seed, models=["iic"])
    params["finetune"]["seed"] = seed
    params["features"]["random_init_seed"] = seed
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for dataset in datasets:
        (folder / "artifacts/data" / dataset).mkdir(parents=True, exist_ok=True)
        for name in SHARED_INPUTS:
            link = folder / "artifacts/data" / dataset / name
            if not link.exists():
                link.symlink_to(REPO / "artifacts/data" / dataset / name, target_is_directory=True)
    for dataset in params["pretrain"]["datasets"]:  # what `pretrain_data@<dataset>` writes
        copy = folder / "artifacts/pretrain_data" / dataset / "videos.json"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "artifacts/data" / dataset / "verified/videos.json", copy)


def run_stages(folder: Path, stages: list[list[str]]) -> float:
    """Run the stage commands (``["features", "demo"]``) in order in ``folder``; return the wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    for command in stages:
        with open(folder / f"{'@'.join(command)}.log", "w") as log:
            subprocess.run(
                [sys.executable, "-m", "pipeline", *command],
                cwd=folder,
                env=env,
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    return time.perf_counter() - start


def scores(retrieval: dict, temporal: dict, model: str) -> dict:
    """One model's retrieval top-1 (rgb, view 2) and temporal measures (repeat, shuffle, reverse, arrow)."""
    view2 = next(k for k in retrieval[model] if k not in ("rgb", "merge", "queries", "gallery"))
    return {"rgb": retrieval[model]["rgb"]["top1"], "view2": retrieval[model][view2]["top1"]} | {
        f"temporal_{name}": value for name, value in temporal[model]["rgb"].items()
    }


def collect(folder: Path, dataset: str, finetuned: bool) -> dict:
    """One dataset's scores for the pretrained model and random init, and fine-tuned video top-1."""
    retrieval = json.loads((folder / "artifacts/metrics" / dataset / "retrieval.json").read_text())
    temporal = json.loads((folder / "artifacts/metrics" / dataset / "temporal.json").read_text())
    row = {model: scores(retrieval, temporal, model) for model in ("iic", "random")}
    if finetuned:
        finetune = json.loads((folder / "artifacts/metrics" / dataset / "finetune.json").read_text())
        for model in ("iic", "random"):
            row[model]["finetune"] = finetune[model]["video_top1"]
    return row


def from_seed_experiments(exp_show: Any, datasets: list[str]) -> dict:
    """The rows ``cmc-intra-<seed>`` and ``cmc-plain-<seed>`` from the seed experiments in
    ``exp_show`` (``dvc exp show --json``, README "Seeds"): with the default params their ``iic``
    and ``baseline`` are CMC with and without intra-negatives, pretrained and evaluated by
    ``dvc repro`` itself."""
    from evaluate.seeds import seed_runs

    results: dict = {}
    for run in seed_runs(exp_show):
        for model, intra in (("iic", True), ("baseline", False)):
            results[run_name("cmc", intra, run.seed)] = {
                d: {
                    "iic": scores(run.metrics[d]["retrieval"], run.metrics[d]["temporal"], model),
                    "random": scores(run.metrics[d]["retrieval"], run.metrics[d]["temporal"], "random"),
                }
                for d in datasets
            }
    return results


def summarise(values: list[float]) -> str:
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.1f}"
    return f"{statistics.mean(pct):.1f} ({min(pct):.1f}-{max(pct):.1f})"


def table(results: dict, dataset: str, methods: list[str], seeds: list[int], finetune_seeds: list[int]) -> str:
    """Markdown for one evaluation dataset: one row per method x intra-negatives, random init as the floor.

    Mean (min-max) over the seeds that finished; the per-seed column shows "-" for a seed not run yet.
    """
    seed_list = ", ".join(map(str, seeds))
    lines = [
        f"| method | intra-negatives | seeds run | retrieval top-1 rgb | retrieval top-1 view 2 | per seed rgb / view 2 "
        f"({seed_list}) | fine-tuned video top-1 ({'seed ' + ', '.join(map(str, finetune_seeds)) if finetune_seeds else 'not run'}) |",
        "|---|---|---|---|---|---|---|",
    ]

    def per_seed(runs: list[dict | None], model: str) -> str:
        return " · ".join(
            "-" if r is None else f"{100 * r[model]['rgb']:.1f} / {100 * r[model]['view2']:.1f}" for r in runs
        )

    floor: dict[int, dict] = {}  # the random-init baseline depends on the seed only
    for method in methods:
        for intra in (False, True):
            runs = [results.get(run_name(method, intra, s), {}).get(dataset) for s in seeds]
            done = [r for r in runs if r is not None]
            if not done:
                continue
            for seed, r in zip(seeds, runs, strict=True):
                if r is not None and (seed not in floor or "finetune" in r["random"]):
                    floor[seed] = r
            ft = [r["iic"]["finetune"] for r in done if "finetune" in r["iic"]]
            lines.append(
                f"| {method} | {'yes' if intra else 'no'} | {len(done)} | "
                f"{summarise([r['iic']['rgb'] for r in done])} | {summarise([r['iic']['view2'] for r in done])} | "
                f"{per_seed(runs, 'iic')} | {summarise(ft) if ft else '-'} |"
            )
    if floor:
        runs = [floor.get(s) for s in seeds]
        done = [r for r in runs if r is not None]
        ft = [r["random"]["finetune"] for r in done if "finetune" in r["random"]]
        lines.append(
            f"| random init (floor) | - | {len(done)} | {summarise([r['random']['rgb'] for r in done])} | "
            f"{summarise([r['random']['view2'] for r in done])} | {per_seed(runs, 'random')} | "
            f"{summarise(ft) if ft else '-'} |"
        )
    return "\n".join(lines)


TEMPORAL = ("repeat", "shuffle", "reverse", "arrow")


def temporal_table(results: dict, dataset: str, methods: list[str], seeds: list[int]) -> str:
    """Markdown: the temporal measures (evaluate/temporal.py) per method x intra-negatives, mean
    (min-max) over the seeds run, random init as the floor. Similarities: lower is more sensitive
    to time; arrow of time: higher tells the direction better (0.5: blind)."""
    rows: list[list] = []
    floor: list[dict] = []
    for method in methods:
        for intra in (False, True):
            done = [r for s in seeds if (r := results.get(run_name(method, intra, s), {}).get(dataset))]
            done = [r for r in done if "temporal_reverse" in r["iic"]]  # runs of older code have none
            if done:
                rows.append([method, "yes" if intra else "no", len(done),
                             *(summarise([r["iic"][f"temporal_{m}"] for r in done]) for m in TEMPORAL)])  # fmt: skip
                floor = floor or done
    if floor:
        rows.append(["random init", "-", len(floor), *(summarise([r["random"][f"temporal_{m}"] for r in floor]) for m in TEMPORAL)])  # fmt: skip
    header = ["method", "intra-negatives", "seeds run", *(f"{m} (x100)" for m in TEMPORAL)]
    return "\n".join(markdown_table(header, rows))


EFFECTS = (("rgb", "retrieval rgb"), ("view2", "retrieval view 2"), *((f"temporal_{m}", m) for m in TEMPORAL))


def intra_effect_table(results: dict, dataset: str, methods: list[str], seeds: list[int]) -> str:
    """Markdown: per method and measure, with minus without intra-negatives at each seed (points,
    x100 for the temporal measures), "-" where either run is missing. A negative similarity
    difference means intra-negatives made the features more sensitive to time."""
    rows = []
    for method in methods:
        for key, name in EFFECTS:
            diffs = []
            for seed in seeds:
                with_, without = (results.get(run_name(method, i, seed), {}).get(dataset) for i in (True, False))
                have = with_ and without and key in with_["iic"] and key in without["iic"]
                diffs.append(f"{100 * (with_['iic'][key] - without['iic'][key]):+.1f}" if have else "-")
            rows.append([method, name, *diffs])
    header = ["method", "measure", *(f"seed {s}" for s in seeds)]
    return "\n".join(markdown_table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[632, 1, 2])
    parser.add_argument("--finetune-seeds", nargs="*", type=int, default=[632])
    parser.add_argument(
        "--intra-neg", choices=("both", "on", "off"), default="both", help="pretrain.intra_neg values to run"
    )
    parser.add_argument("--evaluate", nargs="+", default=["demo"], help="evaluation datasets (keys of datasets:)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/iic-ablation"))
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    parser.add_argument("--table-only", action="store_true", help="print the table of the finished runs; run nothing")
    parser.add_argument(
        "--cmc-from-exp-json",
        type=Path,
        default=None,
        metavar="FILE",
        help="take the cmc rows from the seed experiments in this `dvc exp show --json` output (their iic and "
        "baseline) instead of running them",
    )
    args = parser.parse_args()

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    if args.cmc_from_exp_json is not None:
        if params["pretrain"]["method"] != "cmc" or params["pretrain"]["baseline"] != {"intra_neg": False}:
            sys.exit("--cmc-from-exp-json needs the default pretrain.method (cmc) and baseline ({intra_neg: false})")
        args.methods = [m for m in args.methods if m != "cmc"]
    needed = sorted({*params["pretrain"]["datasets"], *args.evaluate})
    for dataset in needed:
        if not (REPO / "artifacts/data" / dataset / "verified/videos.json").is_file():
            sys.exit(f"no verified shards of {dataset}: run `dvc repro verify@{dataset}` first")
    args.work.mkdir(parents=True, exist_ok=True)
    results_file = args.work / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for seed in [] if args.table_only else args.seeds:
        for method in args.methods:
            for intra in {"both": (False, True), "on": (True,), "off": (False,)}[args.intra_neg]:
                name = run_name(method, intra, seed)
                finetuned = seed in args.finetune_seeds
                # A finished run is pretrained already: only evaluations it lacks are run.
                done = results.get(name, {})
                todo = [d for d in args.evaluate if d not in done or (finetuned and "finetune" not in done[d]["iic"])]
                if not todo:
                    continue
                folder = args.work / name
                prepare_workspace(folder, method, intra, seed, needed)
                stages = [] if done else [["pretrain", "iic"]]
                for dataset in todo:
                    stages += [["features", dataset], ["retrieve", dataset], ["temporal", dataset]] + (
                        [["finetune", dataset]] if finetuned else []
                    )
                seconds = run_stages(folder, stages)
                results[name] = {
                    **done,
                    **{d: collect(folder, d, finetuned) for d in todo},
                    "seconds": round(done.get("seconds", 0) + seconds, 1),
                }
                results_file.write_text(json.dumps(results, indent=2))
                scores = "  ".join(
                    f"{d}: rgb {100 * results[name][d]['iic']['rgb']:.1f} view2 "
                    f"{100 * results[name][d]['iic']['view2']:.1f}"
                    for d in args.evaluate
                )
                print(f"{name}: {scores}  ({seconds:.0f} s)", flush=True)

    if args.cmc_from_exp_json is not None:
        results = from_seed_experiments(json.loads(args.cmc_from_exp_json.read_text()), args.evaluate) | results
        args.methods = ["cmc", *args.methods]
    text = "\n\n".join(
        f"`{d}`:\n\n"
        + table(results, d, args.methods, args.seeds, args.finetune_seeds)
        + f"\n\nTemporal sensitivity on `{d}`:\n\n"
        + temporal_table(results, d, args.methods, args.seeds)
        + f"\n\nWith minus without intra-negatives on `{d}`, per seed:\n\n"
        + intra_effect_table(results, d, args.methods, args.seeds)
        for d in args.evaluate
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
