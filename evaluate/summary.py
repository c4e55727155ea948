"""The few lines a person reads first after ``dvc repro``: per evaluation dataset, IIC beside
random init on each feature set by retrieval, kNN and the linear probe, and on fine-tuning, from
``artifacts/report.json``.

``dvc metrics show`` prints every metric of every file in one table, far wider than a
terminal; these lines stay within ``WIDTH`` characters and say where the rest is.
"""

from __future__ import annotations

from pathlib import Path

from evaluate.report import headline_key, models_of
from pipeline.atomic import read_json
from pipeline.errors import InputError

WIDTH = 100  # characters: one terminal line


def _top1(value: float) -> str:
    return f"{100 * value:.1f}"


def _values(m: dict, models: list[str], key: str, kind: str | None = None) -> str:
    """ "IIC / baseline / random" of one measure, in %."""
    return " / ".join(_top1(m[model][kind][key] if kind else m[model][key]) for model in models)


def summary_lines(report: dict) -> list[str]:
    """report.json's content -> lines of at most WIDTH characters (top-1 in %, IIC / [baseline /] random),
    and per dataset where intra-negatives put IIC ahead of, level with or behind its baseline."""
    entries: list[dict] = list(report["datasets"].values())
    first = entries[0]["retrieval"] if entries else {}
    models = models_of(first)
    names = " / ".join({"iic": "IIC", "baseline": "baseline", "random": "random init"}[m] for m in models)
    lines = [f"Pretrained on {', '.join(f'`{n}`' for n in report['pretrained_on'])}. Top-1 %, {names}:"]
    for name, entry in report["datasets"].items():
        retrieval, finetune = entry["retrieval"], entry["finetune"]
        models = models_of(retrieval)
        kinds = [k for k, v in retrieval["iic"].items() if isinstance(v, dict)]
        lines += _pack(f"  {name}", [f"({retrieval['iic']['queries']} test videos)"])
        for stage, head in (("retrieval", "    retrieval"), ("knn", "    kNN"), ("linear", "    linear")):
            if stage in entry:
                m = entry[stage]
                top = headline_key(m["iic"][kinds[0]])
                label = "" if top == "top1" else f" ({top[:3]}-{top[3:]})"
                lines += _pack(head + label, [f"{k} {_values(m, models, top, k)}" for k in kinds])
        lines += _pack("    fine-tuned", [f"video {_values(finetune, models, 'video_top1')}"])
        said = entry.get("intra_negatives", {})
        if said:
            counts = {word: sum(v == word for v in said.values()) for word in dict.fromkeys(said.values())}
            lines += _pack("    intra-negatives", [", ".join(f"{word} on {n}" for word, n in counts.items())
                                                   + f" of {len(said)} measures (IIC - baseline)"])  # fmt: skip
            lines += _pack("      ahead", [m for m, v in said.items() if v in ("ahead", "lower")] or ["none"])
            lines += _pack("      behind", [m for m, v in said.items() if v in ("behind", "higher")] or ["none"])
    lines.append("Full report: artifacts/report.md  Metrics: dvc metrics show  Plots: dvc plots show")
    return lines


def _pack(head: str, parts: list[str]) -> list[str]:
    """``head`` then the parts, three spaces apart, on as few lines of at most WIDTH as they fit;
    a part is never split, and one longer than a line is cut."""
    lines, line, gap = [], head[:WIDTH], " "
    for part in parts:
        if len(line) + len(gap) + len(part) > WIDTH and line.strip():
            lines.append(line)
            line, gap = " " * 6, ""
        line, gap = (line + gap + part)[:WIDTH], "   "
    return [*lines, line]


def print_summary(report_json: Path) -> None:
    if not report_json.is_file():
        raise InputError(f"{report_json}: missing; run `dvc repro` (the report stage writes it)")
    print("\n".join(summary_lines(read_json(report_json))))
