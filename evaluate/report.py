"""The experiment's report: every evaluation dataset, IIC beside random init, beside the paper.

``artifacts/report.md`` is for people (the README shows the demo's); ``artifacts/report.json``
holds the same numbers for the model card and scripts. The paper's published numbers (Tao,
Wang, Yamasaki, ACM MM 2020; R3D, pretrained on UCF101 split 1) appear beside a dataset only
when the run is comparable: the dataset is UCF101 or HMDB51 split 1 (its format, and its
official split-1 video counts) and the model, clip, frame size and method are the paper's.
Otherwise the report says which settings differ.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from pipeline.atomic import write_bytes, write_json
from pipeline.errors import InputError
from pipeline.paths import DatasetPaths
from pipeline.schema import DatasetParams, ModelParams

log = logging.getLogger(__name__)

# Official split 1: (train videos, test videos) of the datasets the paper reports.
OFFICIAL_SPLIT1 = {"ucf101": (9537, 3783), "hmdb51": (3570, 1530)}

# The paper's published top-1 (%), R3D pretrained on UCF101 split 1 with repeat intra-negatives
# and residual frames as view 2. Retrieval is reported for UCF101 only.
PAPER = {
    "ucf101": {"retrieval_top1": {"random": 9.9, "iic": 36.5}, "finetune_top1": {"iic": 72.8}},
    "hmdb51": {"finetune_top1": {"iic": 35.3}},
}

# What "the paper's settings" means here: setting -> the paper's value.
PAPER_SETTINGS = {
    "model.arch": "r3d",
    "model.width": 64,
    "clip.length": 16,
    "clip.crop": 112,
    "frames.height": 128,
    "frames.width": 171,
    "pretrain.method": "cmc",
    "pretrain.modality": "res",
    "pretrain.intra_neg": True,
    "pretrain.neg": "repeat",
    "pretrained on": ("ucf101", 1),
}


@dataclasses.dataclass(frozen=True)
class Comparability:
    """Whether this run's settings are the paper's; the differing ones as "key: ours (paper: theirs)"."""

    differences: tuple[str, ...]

    @property
    def comparable(self) -> bool:
        return not self.differences


def paper_settings(
    model: ModelParams,
    clip_length: int,
    crop: int,
    frame_height: int,
    frame_width: int,
    pretrain: dict[str, Any],
    pretrain_source: tuple[str, int],
) -> Comparability:
    """Compare the run with the paper's settings (``pretrain``: method, modality, intra_neg, neg)."""
    ours = {
        "model.arch": model.arch,
        "model.width": model.width,
        "clip.length": clip_length,
        "clip.crop": crop,
        "frames.height": frame_height,
        "frames.width": frame_width,
        **{f"pretrain.{k}": v for k, v in pretrain.items()},
        "pretrained on": pretrain_source,
    }
    differences = tuple(
        f"{key}: {ours[key]} (paper: {value})" for key, value in PAPER_SETTINGS.items() if ours[key] != value
    )
    return Comparability(differences)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: missing; run `dvc repro` (the evaluation stages write it)")
    return json.loads(path.read_text())


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def paper_row(source: tuple[str, int], retrieval: dict, settings: Comparability) -> dict | None:
    """The paper's numbers for this dataset when the run is comparable, else None."""
    dataset_format, split = source
    if not settings.comparable or split != 1 or dataset_format not in PAPER:
        return None
    sizes = retrieval.get("iic", {})
    if (sizes.get("gallery"), sizes.get("queries")) != OFFICIAL_SPLIT1[dataset_format]:
        return None  # an ucf101-format folder that is not UCF101 split 1 (the demo, a subset)
    return PAPER[dataset_format]


def dataset_section(
    name: str, source: tuple[str, int], retrieval: dict, finetune: dict, settings: Comparability
) -> tuple[list[str], dict]:
    """Markdown lines and the JSON entry of one evaluation dataset."""
    lines = [f"## `{name}` ({source[0]} format, split {source[1]})", ""]
    paper = paper_row(source, retrieval, settings)
    kinds = [k for k, v in retrieval["iic"].items() if isinstance(v, dict)]
    ks = [k for k in retrieval["iic"][kinds[0]]]
    lines += [
        f"Retrieval: {retrieval['iic']['queries']} test queries against {retrieval['iic']['gallery']} "
        "train videos (top-k: a query counts when one of its k nearest has its class).",
        "",
    ]
    lines += ["| model | features | " + " | ".join(ks) + " |", "|---|---|" + "---|" * len(ks)]
    for model in ("iic", "random"):
        for kind in kinds:
            lines.append(f"| {model} | {kind} | " + " | ".join(_pct(retrieval[model][kind][k]) for k in ks) + " |")
    if paper and "retrieval_top1" in paper:
        for model, value in paper["retrieval_top1"].items():
            lines.append(f"| paper, {model} | res (R3D) | {value:.1f} | " + " | ".join("" for _ in ks[1:]) + " |")
    lines += ["", "| fine-tuned from | clip top-1 | video top-1 | video top-5 |", "|---|---|---|---|"]
    for model in ("iic", "random"):
        m = finetune[model]
        lines.append(f"| {model} | {_pct(m['clip_top1'])} | {_pct(m['video_top1'])} | {_pct(m['video_top5'])} |")
    if paper and "finetune_top1" in paper:
        lines.append(f"| paper, iic (R3D) | | {paper['finetune_top1']['iic']:.1f} | |")
    lines.append("")
    entry = {"retrieval": retrieval, "finetune": finetune}
    if paper:
        entry["paper"] = paper
    return lines, entry


def report_stage(
    pretrained_on: str,
    sources: dict[str, DatasetParams],
    outputs: dict[str, DatasetPaths],
    settings: Comparability,
    report_path: Path,
    data_path: Path,
) -> dict:
    """Write the markdown report and its JSON twin for the evaluation datasets ``outputs``.

    ``sources``: every dataset of the experiment (their settings close the report: where each
    number came from).
    """
    lines = [
        "# Results",
        "",
        f"Pretrained on the train split of `{pretrained_on}`; evaluated on "
        + ", ".join(f"`{n}`" for n in outputs)
        + ". Top-k in %.",
        "",
    ]
    if settings.comparable:
        lines += ["Settings are the paper's: its published numbers appear beside UCF101 and HMDB51 split 1.", ""]
    else:
        lines += [
            "The paper's numbers (R3D, UCF101 split 1: retrieval top-1 random 9.9, IIC 36.5; fine-tuned "
            "top-1 UCF101 72.8, HMDB51 35.3) are shown only for a comparable run. This one differs in: "
            + "; ".join(settings.differences)
            + ".",
            "",
        ]
    data: dict[str, Any] = {"pretrained_on": pretrained_on, "paper_settings": settings.comparable, "datasets": {}}
    for name, out in outputs.items():
        retrieval = _read(out.retrieval_metrics)
        finetune = _read(out.finetune_metrics)
        source = sources[name]
        section, entry = dataset_section(name, (source.format, source.split), retrieval, finetune, settings)
        lines += section
        data["datasets"][name] = entry
    fields = [f.name.rstrip("_") for f in dataclasses.fields(DatasetParams)]
    lines += ["## Datasets", "", "| name | role | " + " | ".join(fields) + " |", "|---|---|" + "---|" * len(fields)]
    for name, source in sources.items():
        role = ", ".join(r for r, on in (("pretraining", name == pretrained_on), ("evaluation", name in outputs)) if on)
        lines.append(
            f"| `{name}` | {role or 'unused'} | "
            + " | ".join(str(getattr(source, f.name)) for f in dataclasses.fields(DatasetParams))
            + " |"
        )
    lines.append("")
    data["sources"] = {name: dataclasses.asdict(source) for name, source in sources.items()}
    write_bytes(report_path, "\n".join(lines).encode())
    write_json(data_path, data)
    log.info("report: %d evaluation datasets -> %s", len(outputs), report_path)
    return data


def report_from_params(p: Any, report_path: Path, data_path: Path) -> dict:
    """The dvc stage ``report`` from its params (a ``StageParams`` view): every evaluation dataset."""
    sources = {name: p.datasets[name].materialize() for name in p.datasets}
    pretrained_on = p.pretrain.dataset
    method = {k: getattr(p.pretrain, k) for k in ("method", "modality", "intra_neg", "neg")}
    settings = paper_settings(
        p.model.materialize(),
        p.clip.length,
        p.clip.crop,
        p.frames.height,
        p.frames.width,
        method,
        (sources[pretrained_on].format, sources[pretrained_on].split),
    )
    names = list(p.evaluate.datasets)
    return report_stage(pretrained_on, sources, {n: DatasetPaths(n) for n in names}, settings, report_path, data_path)
