"""The experiment's report: every evaluation dataset, IIC beside its baseline without
intra-negatives and random init, with the temporal-sensitivity measures, beside the paper.

``artifacts/report.md`` is for people; ``artifacts/report.json`` holds the same numbers for the
model card and scripts. Beside UCF101 or HMDB51 official split 1, every published number of
``evaluate/paper.py`` is listed with its row and source, and shown beside ours only when every
setting that changes it matches; otherwise the settings that differ are named. The report says
how fine-tuning scored a video (the mean of the clips' probabilities or logits).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from evaluate.intervals import verdict
from evaluate.paper import FINETUNING, ROWS, differences, official_split1, rows_for
from pipeline import variants
from pipeline.atomic import write_bytes, write_json
from pipeline.dotted import dotted
from pipeline.errors import InputError
from pipeline.markdown import markdown_table
from pipeline.paths import DatasetPaths
from pipeline.schema import DatasetParams
from pipeline.stage_params import StageParams

log = logging.getLogger(__name__)

# The settings a paper number can depend on (evaluate/paper.py), read from params.yaml.
RUN_KEYS = (
    "model.arch",
    "model.width",
    "frames.height",
    "frames.width",
    "clip.length",
    "clip.crop",
    "clip.eval_clips",
    "pretrain.method",
    "pretrain.modality",
    "pretrain.intra_neg",
    "pretrain.neg",
    "pretrain.nce_k",
    "pretrain.epochs",
    "pretrain.batch_size",
    "pretrain.lr_steps",
    *FINETUNING,
    "finetune.modality",
    "knn.k",  # the frozen-feature protocols, named in the report
    "knn.temperature",
    "intervals.level",  # named beside the intervals it printed
    "pretrain.models",  # which pretrained models are set beside random init
    "pretrain.baseline.intra_neg",  # how the baseline differs from IIC
)

# The row whose settings are the paper's default: every protocol and repeat + res, fine-tuned on res.
REFERENCE_ROW = next(r for r in ROWS if r.name == "Ours (repeat + res)" and r.protocol == "finetune")

CLIP_RULE = {"softmax": "probabilities (softmax)", "logits": "logits (upstream's rule)"}


def _read(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: missing; run `dvc repro` (the evaluation stages write it)")
    metrics = json.loads(path.read_text())
    if "paired" not in metrics:
        raise InputError(f"{path}: written without intervals by an older stage; run `dvc repro` to rewrite it")
    return metrics


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def paper_rows(source: tuple[str, int], retrieval: dict, finetune: dict, run: dict[str, Any]) -> list[dict]:
    """Every published number for this dataset with its row, source, whether it is comparable
    (and if not, why), and our number beside it when it is. Empty unless the dataset is UCF101
    or HMDB51 official split 1."""
    dataset_format, split = source
    if not official_split1(dataset_format, split, retrieval):
        return []
    entries = []
    for row in rows_for(dataset_format):
        differ = differences(row, run)
        ours: dict[str, float] | None = None
        if not differ:
            measured = retrieval[row.model].get(row.feature, {}) if row.protocol == "retrieval" else finetune[row.model]
            ours = {k: 100 * measured[k] for k in row.values if k in measured}
        entries.append(
            {
                "row": row.name,
                "source": row.source,
                "protocol": row.protocol,
                "model": row.model,
                "feature": row.feature,
                "paper": row.values,
                "comparable": not differ,
                "differences": differ,
                "ours": ours,
                **({"note": row.note} if row.note else {}),
            }
        )
    return entries


def _paper_lines(name: str, source: tuple[str, int], entries: list[dict]) -> list[str]:
    if not entries:
        return [
            f"The paper's numbers are for UCF101 and HMDB51 official split 1; `{name}` ({source[0]} format, "
            f"split {source[1]}) is not one, so none is set beside it.",
            "",
        ]
    lines = [
        "Published numbers (%), each beside ours only where every setting that changes it matches:",
        "",
    ]
    rows = []
    for e in entries:
        paper = " / ".join(f"{v:.1f}" for v in e["paper"].values())
        ours = " / ".join(f"{v:.1f}" for v in e["ours"].values()) if e["ours"] else "-"
        what = f"{e['model']} {e['feature']}" if e["feature"] else f"{e['model']} video top-1"
        keys = "/".join(k.removeprefix("video_") for k in e["paper"])
        differ = "; ".join(e["differences"][:3]) + (
            f"; {len(e['differences']) - 3} more" if len(e["differences"]) > 3 else ""
        )
        rows.append([e["row"], e["source"], f"{e['protocol']} {keys}", what, paper, ours, differ or "nothing"])
    lines += markdown_table(["row", "source", "protocol", "ours compared", "paper", "ours", "differs in"], rows)
    notes = [f"{e['row']}: {e['note']}" for e in entries if "note" in e]
    return [*lines, "", *(f"Note. {n}." for n in notes), *([""] if notes else [])]


def topk_keys(scores: dict) -> list[str]:
    """The ``top<k>`` keys of one model's scores on one feature set, by k: each stage keeps its own
    (``retrieve.topk``, ``knn.topk``, ``linear.topk``) less those true by construction."""
    return sorted((key for key in scores if key.startswith("top") and key[3:].isdigit()), key=lambda key: int(key[3:]))


def headline_key(scores: dict) -> str:
    """The smallest top-k a stage measured (top1 unless its topk leaves 1 out): what the report
    and the summary set IIC beside random init by."""
    return topk_keys(scores)[0]


def models_of(metrics: dict) -> list[str]:
    """The evaluated models a metrics file holds, in the report's order (IIC, its baseline, random init)."""
    return [m for m in (variants.IIC, variants.BASELINE, variants.RANDOM) if m in metrics]


def _frozen_lines(knn: dict, linear: dict, run: dict[str, Any]) -> list[str]:
    kinds = [k for k, v in knn["iic"].items() if isinstance(v, dict)]
    ks, linear_ks = topk_keys(knn["iic"][kinds[0]]), topk_keys(linear["iic"][kinds[0]])
    lines = [
        f"Frozen features, {knn['iic']['test_videos']} test videos classified by the {knn['iic']['train_videos']} "
        f"train videos{_per_class(knn['iic'])}: weighted kNN (k {run['knn.k']}, votes exp(cosine / {run['knn.temperature']:g})) and a "
        "linear probe (its weight decay chosen on held-out validation groups of the train split).",
        "",
    ]
    header = [
        "model",
        "features",
        *(f"kNN {k}" for k in ks),
        *(f"linear {k}" for k in linear_ks),
        "linear weight decay",
    ]
    rows = [
        [model, kind, *(_pct(knn[model][kind][k]) for k in ks), *(_pct(linear[model][kind][k]) for k in linear_ks),
         f"{linear[model][kind]['weight_decay']:g}"]
        for model in models_of(knn)
        for kind in kinds
    ]  # fmt: skip
    return [*lines, *markdown_table(header, rows), ""]


def dataset_section(
    name: str, source: tuple[str, int], metrics: dict[str, dict], run: dict[str, Any]
) -> tuple[list[str], dict]:
    """Markdown lines and the JSON entry of one evaluation dataset.

    metrics: the dataset's metrics files by stage: retrieval, knn, linear and finetune."""
    retrieval, finetune = metrics["retrieval"], metrics["finetune"]
    lines = [f"## `{name}` ({source[0]} format, split {source[1]})", ""]
    kinds = [k for k, v in retrieval["iic"].items() if isinstance(v, dict)]
    ks = list(retrieval["iic"][kinds[0]])
    lines += [
        f"Retrieval: {retrieval['iic']['queries']} test queries against {retrieval['iic']['gallery']} "
        "train videos (top-k: a query counts when one of its k nearest has its class).",
        "",
    ]
    lines += markdown_table(
        ["model", "features", *ks],
        [
            [model, kind, *(_pct(retrieval[model][kind][k]) for k in ks)]
            for model in models_of(retrieval)
            for kind in kinds
        ],
    )
    lines.append("")
    columns = [
        k for k in ("clip_top1", "video_top1", "video_top5") if k in finetune["iic"]
    ]  # top-5 of < 6 classes: none
    lines += markdown_table(
        ["fine-tuned from", *(k.replace("_top", " top-") for k in columns)],
        [[m, *(_pct(finetune[m][k]) for k in columns)] for m in models_of(finetune)],
    )
    lines.append("")
    lines += _frozen_lines(metrics["knn"], metrics["linear"], run)
    lines += comparison_lines(metrics, run)
    lines += temporal_lines(metrics["temporal"], run)
    said = intra_negative_verdicts(metrics)
    lines += _verdict_lines(said)
    entries = paper_rows(source, retrieval, finetune, run)
    lines += _paper_lines(name, source, entries)
    entry: dict[str, Any] = dict(metrics)
    if said:
        entry["intra_negatives"] = said
    if entries:
        entry["paper"] = entries
    return lines, entry


def _with_interval(value: float, interval: dict[str, float]) -> str:
    return f"{100 * value:.1f} [{100 * interval['low']:.1f}, {100 * interval['high']:.1f}]"


def measure_rows(metrics: dict[str, dict]) -> list[tuple[str, dict[str, float], dict[str, dict], dict[str, dict]]]:
    """(label, {model: value}, {model: its interval}, {pair key: paired difference}) of every
    measure with paired differences: retrieval, kNN and the linear probe per feature set (by
    each stage's smallest k), then fine-tuning. Pair keys: ``pipeline.variants.PAIRS``."""
    rows = []
    for stage, label in (("retrieval", "retrieval"), ("knn", "kNN"), ("linear", "linear probe")):
        d = metrics[stage]
        models, pairs = models_of(d), [key for key in variants.PAIRS if key in d]
        for kind, paired in d["paired"].items():
            k = headline_key(paired)
            rows.append((f"{label} {kind} top-{k[3:]}", {m: d[m][kind][k] for m in models},
                         {m: d["intervals"][m][kind][k] for m in models}, {p: d[p][kind][k] for p in pairs}))  # fmt: skip
    finetune = metrics["finetune"]
    models, pairs = models_of(finetune), [key for key in variants.PAIRS if key in finetune]
    for key in finetune["paired"]:
        rows.append((f"fine-tuned {key.replace('_', ' ')}", {m: finetune[m][key] for m in models},
                     {m: finetune["intervals"][m][key] for m in models}, {p: finetune[p][key] for p in pairs}))  # fmt: skip
    return rows


def _difference(paired: dict[str, float]) -> str:
    return f"{100 * paired['diff']:+.1f} [{100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}]"


PAIR_HEADER = {"paired": ("IIC - random", "verdict"), "paired_baseline": ("IIC - baseline", "intra-negatives")}
MODEL_HEADER = {variants.IIC: "IIC", variants.BASELINE: "baseline", variants.RANDOM: "random init"}


def comparison_lines(metrics: dict[str, dict], run: dict[str, Any]) -> list[str]:
    """IIC beside its baseline and random init with bootstrap intervals, and the verdict of each
    paired interval: against random init (did pretraining help?) and against the baseline
    (did intra-negatives help?), on every measure."""
    level = f"{100 * run['intervals.level']:g}%"
    rows = measure_rows(metrics)
    models, pairs = list(rows[0][1]), list(rows[0][3])
    lines = [
        f"IIC against {' and '.join(MODEL_HEADER[m] for m in models if m != variants.IIC)}, top-1 (or each stage's "
        f"smallest k) with {level} bootstrap intervals over the test videos; each verdict comes from the paired "
        "interval of the difference (the same resampled videos for both models). *intra-negatives* compares IIC "
        "with its baseline, the same run without intra-negatives:",
        "",
    ]
    cells = [
        [label, *(_with_interval(value[m], interval[m]) for m in models),
         *(part for key in pairs for part in (_difference(paired[key]), verdict(paired[key]["low"], paired[key]["high"])))]
        for label, value, interval, paired in rows
    ]  # fmt: skip
    header = ["measure", *(MODEL_HEADER[m] for m in models), *(h for key in pairs for h in PAIR_HEADER[key])]
    return [*lines, *markdown_table(header, cells), ""]


TEMPORAL_MEANING = {
    "repeat": "cosine similarity of a clip's feature to the clip with one frame repeated throughout (lower: tells them apart)",
    "shuffle": "cosine similarity to the clip with two of its four chunks swapped (lower: sensitive to order)",
    "reverse": "cosine similarity to the clip played backwards (lower: sensitive to direction)",
    "arrow": "arrow of time: share of clips whose direction (forward or reversed) a linear probe on the frozen features tells right (0.5: blind)",
}


def _per_class(counts: dict[str, Any]) -> str:
    """ " (at least N of each class)" where the metrics say so (not in the metrics of older code)."""
    least = counts.get("train_videos_per_class_min")
    return "" if least is None else f" (at least {least} of each class)"


def _temporal_verdict(measure: str, paired: dict[str, float]) -> str:
    """A similarity's difference reads lower / higher (lower is more sensitive to time); the arrow's ahead / behind."""
    said = verdict(paired["low"], paired["high"])
    if measure == "arrow":
        return said
    return {"ahead": "higher", "behind": "lower", "level": "level"}[said]


def temporal_lines(temporal: dict, run: dict[str, Any]) -> list[str]:
    """What intra-negatives are meant to change, per model, with intervals and paired differences."""
    models, pairs = models_of(temporal), [key for key in variants.PAIRS if key in temporal]
    first = temporal[models[0]]
    lines = [
        f"Temporal sensitivity of the frozen RGB features, {first['test_videos']} test videos (arrow probe fitted on "
        f"{first['train_videos']} train videos), mean per video with {100 * run['intervals.level']:g}% intervals:",
        "",
        *(f"- *{name}*: {meaning}." for name, meaning in TEMPORAL_MEANING.items()),
        "",
    ]
    rows = []
    for measure in TEMPORAL_MEANING:
        value = {m: temporal[m]["rgb"][measure] for m in models}
        interval = {m: temporal["intervals"][m]["rgb"][measure] for m in models}
        rows.append(
            [measure, *(f"{value[m]:.3f} [{interval[m]['low']:.3f}, {interval[m]['high']:.3f}]" for m in models),
             *(part for key in pairs
               for part in (f"{temporal[key]['rgb'][measure]['diff']:+.3f} [{temporal[key]['rgb'][measure]['low']:+.3f}, "
                            f"{temporal[key]['rgb'][measure]['high']:+.3f}]",
                            _temporal_verdict(measure, temporal[key]["rgb"][measure])))]
        )  # fmt: skip
    header = ["measure", *(MODEL_HEADER[m] for m in models), *(h for key in pairs for h in PAIR_HEADER[key])]
    return [*lines, *markdown_table(header, rows), ""]


def _verdict_lines(said: dict[str, str]) -> list[str]:
    """One paragraph: where IIC is ahead of, level with or behind its baseline (and where its
    features are less or more similar to the altered clips)."""
    if not said:
        return ["No baseline was pretrained (pretrain.models), so the effect of intra-negatives is not measured.", ""]
    groups: dict[str, list[str]] = {}
    for measure, word in said.items():
        groups.setdefault(word, []).append(measure)
    parts = [f"**{word}** on {len(names)} ({', '.join(names)})" for word, names in groups.items()]
    return [f"**Intra-negatives** (IIC - baseline, {len(said)} measures): " + "; ".join(parts) + ".", ""]


def intra_negative_verdicts(metrics: dict[str, dict]) -> dict[str, str]:
    """{measure: ahead | level | behind (IIC - baseline), or lower | level | higher for a similarity}
    of one dataset; empty without a baseline."""
    out = {label: verdict(paired["paired_baseline"]["low"], paired["paired_baseline"]["high"])
           for label, _v, _i, paired in measure_rows(metrics) if "paired_baseline" in paired}  # fmt: skip
    temporal = metrics["temporal"]
    if "paired_baseline" in temporal:
        for measure in TEMPORAL_MEANING:
            out[f"temporal {measure}"] = _temporal_verdict(measure, temporal["paired_baseline"]["rgb"][measure])
    return out


def _protocol_line(run: dict[str, Any]) -> str:
    return (
        f"Fine-tuning: input `{run['finetune.modality']}`, dropout {run['finetune.dropout']:g}, a video scores the "
        f"mean of its {run['clip.eval_clips']} clips' {CLIP_RULE[run['finetune.clip_scores']]}, the kept epoch has "
        f"the best validation {run['finetune.select_by']}."
    )


def report_stage(
    pretrained_on: list[str],
    sources: dict[str, DatasetParams],
    outputs: dict[str, DatasetPaths],
    run: dict[str, Any],
    report_path: Path,
    data_path: Path,
) -> dict:
    """Write the markdown report and its JSON twin for the evaluation datasets ``outputs``.

    ``sources``: every dataset of the experiment (their settings close the report: where each
    number came from). ``pretrained_on``: ``pretrain.datasets``. ``run``: this run's value of every key
    of ``RUN_KEYS`` and "pretrained on" (each pretraining dataset's format and split).
    """
    lines = [
        "# Results",
        "",
        "Pretrained on the train split"
        + ("s" if len(pretrained_on) > 1 else "")
        + " of "
        + ", ".join(f"`{n}`" for n in pretrained_on)
        + "; evaluated on "
        + ", ".join(f"`{n}`" for n in outputs)
        + ". Top-k in %.",
        "",
    ]
    against = differences(REFERENCE_ROW, run)
    if variants.BASELINE in run["pretrain.models"]:
        lines += [
            f"Models: IIC (`{run['pretrain.method']}`, intra-negatives: "
            f"{run['pretrain.neg'] if run['pretrain.intra_neg'] else 'none'}), its baseline (the same pretraining with "
            f"intra_neg {str(run['pretrain.baseline.intra_neg']).lower()}) and random init of the same architecture.",
            "",
        ]
    lines += [
        _protocol_line(run),
        "",
        "Against the paper's protocol (R3D on UCF101 split 1, repeat + res, fine-tuned as upstream) this run differs "
        "in: " + ("; ".join(against) if against else "nothing") + ".",
        "",
    ]
    data: dict[str, Any] = {
        "pretrained_on": pretrained_on,
        "settings": run,
        "paper_protocol": not against,
        "datasets": {},
    }
    for name, out in outputs.items():
        metrics = {
            "retrieval": _read(out.retrieval_metrics),
            "knn": _read(out.knn_metrics),
            "linear": _read(out.linear_metrics),
            "finetune": _read(out.finetune_metrics),
            "temporal": _read(out.temporal_metrics),
        }
        source = sources[name]
        section, entry = dataset_section(name, (source.format, source.split), metrics, run)
        lines += section
        data["datasets"][name] = entry
    fields = [f.name.rstrip("_") for f in dataclasses.fields(DatasetParams)]
    rows = []
    for name, source in sources.items():
        role = ", ".join(r for r, on in (("pretraining", name in pretrained_on), ("evaluation", name in outputs)) if on)
        rows.append(
            [f"`{name}`", role or "unused", *(getattr(source, f.name) for f in dataclasses.fields(DatasetParams))]
        )
    lines += ["## Datasets", "", *markdown_table(["name", "role", *fields], rows)]
    lines.append("")
    data["sources"] = {name: dataclasses.asdict(source) for name, source in sources.items()}
    write_bytes(report_path, "\n".join(lines).encode())
    write_json(data_path, data)
    log.info("report: %d evaluation datasets -> %s", len(outputs), report_path)
    return data


def run_settings(p: StageParams, pretrained_on: list[DatasetParams]) -> dict[str, Any]:
    """``RUN_KEYS`` read through a stage's params view, and each pretraining dataset's (format, split)."""
    run: dict[str, Any] = {}
    for key in RUN_KEYS:
        node = dotted(p, key)
        run[key] = list(node) if isinstance(node, list) else node
    return run | {"pretrained on": [(source.format, source.split) for source in pretrained_on]}


def report_from_params(p: StageParams, report_path: Path, data_path: Path) -> dict:
    """The dvc stage ``report`` from its params (a ``StageParams`` view): every evaluation dataset."""
    sources = {name: p.datasets[name].materialize() for name in p.datasets}
    pretrained_on = list(p.pretrain.datasets)
    run = run_settings(p, [sources[name] for name in pretrained_on])
    names = list(p.evaluate.datasets)
    return report_stage(pretrained_on, sources, {n: DatasetPaths(n) for n in names}, run, report_path, data_path)
