"""Results over seeds: the experiments of ``dvc exp show --json`` as one markdown table.

Each seed is one DVC experiment (``dvc exp run --queue -S pretrain.seed=N ...``, README "Seeds").
Per measure (retrieval, kNN and the linear probe on each feature set; fine-tuning; the temporal
probes), the table gives IIC's and random init's mean +- sd over the seeds, then the paired
IIC - random difference of each seed (with the verdict of its paired bootstrap interval) and the
mean difference, and the same against the baseline.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any

from evaluate.intervals import verdict
from evaluate.report import headline_key
from pipeline.dotted import dotted
from pipeline.errors import InputError
from pipeline.markdown import markdown_table

log = logging.getLogger(__name__)

SEED_KEYS = ("pretrain.seed", "finetune.seed", "features.random_init_seed", "linear.seed")
METRICS_FILE = re.compile(
    r"artifacts/metrics/(?P<dataset>[^/]+)/(?P<stage>retrieval|knn|linear|finetune|temporal)\.json$"
)
LEVEL_KEY = "intervals.level"
VERDICT_MARK = {"ahead": "+", "behind": "-", "level": "="}


@dataclasses.dataclass(frozen=True)
class SeedRun:
    """One experiment: its name, seed and metrics files ({dataset: {stage: content}})."""

    name: str
    seed: int
    metrics: dict[str, dict[str, dict]]
    level: float  # intervals.level: the paired intervals' coverage behind each verdict


def _runs_of(node: Any, nested: bool = False) -> list[tuple[dict, bool]]:
    """Every entry of ``dvc exp show --json`` that holds a finished run's data, at any depth, and
    whether it is an experiment (found under a commit's ``experiments``) rather than the workspace
    or a commit."""
    found: list[tuple[dict, bool]] = []
    if isinstance(node, dict):
        state = (node.get("executor") or {}).get("state")
        if state not in (None, "success"):
            # A queued or running experiment shows the metrics files its run started from (the
            # commit's), and a failed one has none of its own: neither is its seed's result.
            log.warning("%s: left out, its run is %s", node.get("name") or "an experiment", state)
            return found
        data = node.get("data")
        if isinstance(data, dict) and "params" in data and "metrics" in data:
            found.append((node, nested))
        for key, value in node.items():
            found += _runs_of(value, nested or key == "experiments")
    elif isinstance(node, list):
        for value in node:
            found += _runs_of(value, nested)
    return found


def seed_runs(exp_show: Any) -> list[SeedRun]:
    """The runs of ``dvc exp show --json`` output, one per seed, ordered by seed.

    For a seed found more than once, an experiment wins over the commit and the workspace, and
    the newest experiment over older ones. A run whose seed keys (``SEED_KEYS``) disagree is
    refused: it is not one seed.
    """
    runs: dict[int, tuple[tuple[bool, str], SeedRun]] = {}
    for entry, is_experiment in _runs_of(exp_show):
        data = entry["data"]
        params = (data["params"].get("params.yaml") or {}).get("data")
        if not params:
            continue
        rev = str(data.get("rev", ""))
        name = entry.get("name") or (rev[:7] if re.fullmatch(r"[0-9a-f]{40}", rev) else rev)
        try:
            seeds = {key: dotted(params, key) for key in SEED_KEYS}
            level = float(dotted(params, LEVEL_KEY))
        except (KeyError, TypeError) as exc:
            # An older run, from before a seed key or the interval level existed: the others still count.
            log.warning("%s: left out, its params have no %s (a run of older code)", name, exc.args[0])
            continue
        if len(set(seeds.values())) != 1:
            raise InputError(f"{name}: its seeds differ ({seeds}); set all of {', '.join(SEED_KEYS)} to one "
                             "value per experiment")  # fmt: skip
        seed = next(iter(seeds.values()))
        metrics: dict[str, dict[str, dict]] = {}
        for path, content in data["metrics"].items():
            match = METRICS_FILE.search(path)
            if match and isinstance(content, dict) and content.get("data"):
                metrics.setdefault(match["dataset"], {})[match["stage"]] = content["data"]
        rank = (is_experiment, data.get("timestamp") or "")
        if metrics and (seed not in runs or rank > runs[seed][0]):
            runs[seed] = (rank, SeedRun(name, seed, metrics, level))
    return [runs[s][1] for s in sorted(runs)]


def _measures(runs: list[SeedRun]) -> list[tuple[str, str, str, str]]:
    """(dataset, stage, feature or "", metric key) of every measure the table shows, in order:
    those with paired differences in some run (a run without one, of older code, is skipped there)."""
    out: list[tuple[str, str, str, str]] = []
    for run in runs:
        for dataset, stages in run.metrics.items():
            for stage in ("retrieval", "knn", "linear", "finetune", "temporal"):
                paired = stages.get(stage, {}).get("paired", {})
                if stage == "finetune":
                    keys = [(dataset, stage, "", key) for key in paired]
                elif stage == "temporal":  # every probe: no one of them is the headline
                    keys = [(dataset, stage, kind, key) for kind, scores in paired.items() for key in scores]
                else:
                    keys = [(dataset, stage, kind, headline_key(scores)) for kind, scores in paired.items()]
                out += [m for m in keys if m not in out]
    return out


def _value(run: SeedRun, measure: tuple[str, str, str, str], model: str) -> float:
    dataset, stage, kind, key = measure
    m = run.metrics[dataset][stage][model]
    return m[kind][key] if kind else m[key]


def _paired(run: SeedRun, measure: tuple[str, str, str, str], pair: str = "paired") -> dict[str, float]:
    """The paired difference ``pair`` ("paired": IIC - random, "paired_baseline": IIC - baseline) of one measure."""
    dataset, stage, kind, key = measure
    p = run.metrics[dataset][stage][pair]
    return p[kind][key] if kind else p[key]


def _optional(get: Any) -> Any:
    """``get()``, or None where a run has no such entry (no baseline pretrained, or older code)."""
    try:
        return get()
    except KeyError:
        return None


def _diffs(paired: list[dict[str, float]]) -> list[str]:
    """Each seed's difference in points with its verdict mark, then their mean."""
    marks = [f"{100 * p['diff']:+.1f} {VERDICT_MARK[verdict(p['low'], p['high'])]}" for p in paired]
    return [*marks, f"{100 * statistics.fmean(p['diff'] for p in paired):+.1f}"]


def _mean_sd(values: list[float]) -> str:
    """ "mean ± sd" in %, or the one value when there is one seed (no sd)."""
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.fmean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def _levels(runs: list[SeedRun]) -> str:
    """The runs' interval level as a percentage ("95%"), or each of them when they differ ("90% / 95%")."""
    return " / ".join(f"{100 * level:g}%" for level in sorted({r.level for r in runs}))


def _label(measure: tuple[str, str, str, str]) -> str:
    """A measure's name in the table: "retrieval rgb top-1", "fine-tuned video top1", "temporal rgb reverse sim"."""
    _, stage, kind, key = measure
    if stage == "temporal":
        return f"temporal {kind} {'arrow of time' if key == 'arrow' else key + ' sim'}"
    names = {"retrieval": "retrieval", "knn": "kNN", "linear": "linear probe", "finetune": "fine-tuned"}
    return f"{names[stage]} {kind} top-{key[3:]}" if kind else f"{names[stage]} {key.replace('_', ' ')}"


def seed_table(runs: list[SeedRun]) -> str:
    """The markdown table of ``runs`` (every measure found in the first run and present in all)."""
    if not runs:
        raise InputError("no experiment with metrics in `dvc exp show`: run the seeds first (README: Seeds)")
    head = [
        f"{len(runs)} seeds ({', '.join(str(r.seed) for r in runs)}); top-1 %, mean ± sd over the seeds. IIC - random "
        f"and IIC - baseline (the same pretraining without intra-negatives) per seed with the verdict of its paired "
        f"{_levels(runs)} interval (+ ahead, = level, - behind), and their means; - where a run has no baseline. "
        f'Temporal probes (x100): a "sim" is the cosine similarity of a clip to the altered clip, where + '
        f"(higher) means less sensitive to time; the arrow of time is the probe's accuracy (50: blind).",
        "",
    ]
    rows = []
    with_baseline = False
    for measure in _measures(runs):
        try:
            iic = [_value(r, measure, "iic") for r in runs]
            random = [_value(r, measure, "random") for r in runs]
            paired = [_paired(r, measure) for r in runs]
        except KeyError:
            continue  # a measure some seed's run does not have (another topk, a dataset added later)
        dataset = measure[0]
        label = _label(measure)
        baseline = [_optional(lambda r=r, m=measure: _value(r, m, "baseline")) for r in runs]
        against = [_optional(lambda r=r, m=measure: _paired(r, m, "paired_baseline")) for r in runs]
        complete = None not in baseline and None not in against
        with_baseline |= complete
        baseline_cells = [_mean_sd(baseline), *_diffs(against)] if complete else ["-"] * (len(runs) + 2)
        rows.append([dataset, label, _mean_sd(iic), _mean_sd(random), *_diffs(paired), *baseline_cells])
    seeds = [f"seed {r.seed}" for r in runs]
    header = ["dataset", "measure", "IIC", "random init", *(f"{s}: IIC - random" for s in seeds), "mean IIC - random",
              "baseline", *(f"{s}: IIC - baseline" for s in seeds), "mean IIC - baseline"]  # fmt: skip
    if not with_baseline:  # no run pretrained a baseline: the table of older runs
        header = header[: 4 + len(runs) + 1]
        rows = [row[: 4 + len(runs) + 1] for row in rows]
    return "\n".join([*head, *markdown_table(header, rows), ""])


def exp_show_json(repo: Path) -> Any:
    """``dvc exp show --json`` of the repository at ``repo`` (the baseline commit, the workspace and their experiments)."""
    proc = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise InputError(f"`dvc exp show --json` failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)
