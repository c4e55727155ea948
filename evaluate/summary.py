"""The few lines a person reads first after ``dvc repro``: per evaluation dataset, IIC beside
random init on each feature set by retrieval, kNN and the linear probe, and on fine-tuning, from
``artifacts/report.json``.

``dvc metrics show`` prints every metric of every file in one table, far wider than a
terminal; these lines stay within ``WIDTH`` characters and say where the rest is.
"""

from __future__ import annotations

from pathlib import Path

from evaluate.report import headline_key
from pipeline.atomic import read_json
from pipeline.errors import InputError

WIDTH = 100  # characters: one terminal line


def _top1(value: float) -> str:
    return f"{100 * value:.1f}"


def summary_lines(report: dict) -> list[str]:
    """report.json's content -> lines of at most WIDTH characters (top-1 in %, IIC / random)."""
    lines = [f"Pretrained on `{report['pretrained_on']}`. Top-1 %, IIC / random init:"]
    for name, entry in report["datasets"].items():
        retrieval, finetune = entry["retrieval"], entry["finetune"]
        kinds = [k for k, v in retrieval["iic"].items() if isinstance(v, dict)]
        lines += _pack(f"  {name}", [f"({retrieval['iic']['queries']} test videos)"])
        for stage, head in (("retrieval", "    retrieval"), ("knn", "    kNN"), ("linear", "    linear")):
            if stage in entry:
                m = entry[stage]
                top = headline_key(m["iic"][kinds[0]])
                label = "" if top == "top1" else f" ({top[:3]}-{top[3:]})"
                lines += _pack(
                    head + label, [f"{k} {_top1(m['iic'][k][top])} / {_top1(m['random'][k][top])}" for k in kinds]
                )
        lines += _pack("    fine-tuned", [f"video {_top1(finetune['iic']['video_top1'])} / "
                                          f"{_top1(finetune['random']['video_top1'])}"])  # fmt: skip
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
