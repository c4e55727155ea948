"""The published numbers a run can be set beside, each with what selects it and where it comes from.

Tao, Wang, Yamasaki, ACM MM 2020, R3D pretrained on UCF101 split 1, and upstream BestJuly/IIC's
README (which repeats the paper's tables and adds its released model's single-view retrieval).
A number belongs beside ours only when every setting that changes it matches: the shared
evaluation protocol (network, frame and clip size, clips per video), the pretraining protocol
for a pretrained row, the fine-tuning protocol for a recognition row (input view, no dropout,
the mean of the clips' logits, selection by validation loss, lr 0.001 for 150 epochs), and the
row's own settings (intra-negative kind, view 2). ``differences`` names each one that does not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# Official split 1: (train videos, test videos) of the datasets the paper reports.
OFFICIAL_SPLIT1 = {"ucf101": (9537, 3783), "hmdb51": (3570, 1530)}

PAPER_TABLE = "paper, retrieval table (UCF101 split 1); also upstream README"
PAPER_RECOGNITION = "paper, recognition table; also upstream README"
UPSTREAM_RELEASED = "upstream README, its released model"

# Every number is measured with these: frozen features and fine-tuning alike.
EVALUATION = {
    "model.arch": "r3d",
    "model.width": 64,
    "frames.height": 128,
    "frames.width": 171,
    "clip.length": 16,
    "clip.crop": 112,
    "clip.eval_clips": 10,
}
# A pretrained row was pretrained so (upstream's train_ssl.py defaults and the paper).
PRETRAINING = {
    "pretrained on": [("ucf101", 1)],  # (format, split) of each pretraining dataset
    "pretrain.method": "cmc",
    "pretrain.nce_k": 1024,
    "pretrain.epochs": 240,
    "pretrain.batch_size": 16,
    "pretrain.lr_steps": [45, 90, 125, 160],
}
# A recognition row was fine-tuned so (upstream's ft_classify.py).
FINETUNING = {
    "finetune.dropout": 0.0,
    "finetune.clip_scores": "logits",
    "finetune.select_by": "loss",
    "finetune.lr": 0.001,
    "finetune.epochs": 150,
    "finetune.batch_size": 16,
}


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One published number set: ``values`` by our metric name (top1 ... or video_top1), in %."""

    name: str  # the row as its source names it
    source: str
    dataset: str  # ucf101 | hmdb51
    protocol: str  # retrieval | finetune
    model: str  # our model it sits beside: iic | random
    feature: str | None  # retrieval: rgb, the view-2 modality or merge; None for recognition
    settings: dict[str, Any]  # what selects this row beyond the protocols
    values: dict[str, float]
    note: str = ""

    def required(self) -> dict[str, Any]:
        """Every setting this number depends on, with the value it was measured at."""
        needed = dict(EVALUATION)
        if self.model == "iic":
            needed |= PRETRAINING
        if self.protocol == "finetune":
            needed |= FINETUNING
        return needed | self.settings


def _ours(neg: str, view: str, intra_neg: bool = True) -> dict[str, Any]:
    return {"pretrain.intra_neg": intra_neg, "pretrain.neg": neg, "pretrain.modality": view}


def _topk(*values: float) -> dict[str, float]:
    return dict(zip(("top1", "top5", "top10", "top20", "top50"), values, strict=False))


ROWS: tuple[PaperRow, ...] = (
    PaperRow("R3D (random)", PAPER_TABLE, "ucf101", "retrieval", "random", "rgb", {},
             _topk(9.9, 18.9, 26.0, 35.5, 51.9)),
    PaperRow("CMC", "upstream README, retrieval table (CMC reimplemented by upstream)", "ucf101", "retrieval", "iic",
             "rgb", _ours("repeat", "res", intra_neg=False) | {"pretrain.neg": None},
             _topk(26.4, 37.7, 45.1, 53.2, 66.3),
             note="the README does not state CMC's view 2 or features; residuals and RGB features assumed"),
    PaperRow("Ours (repeat + res)", PAPER_TABLE + " (merged: --merge=True)", "ucf101", "retrieval", "iic", "merge",
             _ours("repeat", "res"), _topk(36.5, 54.1, 62.9, 72.4, 83.4)),
    PaperRow("Ours (repeat + res), res only", UPSTREAM_RELEASED, "ucf101", "retrieval", "iic", "res",
             _ours("repeat", "res"), _topk(33.4)),
    PaperRow("Ours (repeat + res), rgb only", UPSTREAM_RELEASED, "ucf101", "retrieval", "iic", "rgb",
             _ours("repeat", "res"), _topk(34.8)),
    PaperRow("Ours (repeat + u)", PAPER_TABLE, "ucf101", "retrieval", "iic", "merge", _ours("repeat", "u"),
             _topk(41.8, 60.4, 69.5, 78.4, 87.7)),
    PaperRow("Ours (shuffle + res)", PAPER_TABLE, "ucf101", "retrieval", "iic", "merge", _ours("shuffle", "res"),
             _topk(34.6, 53.0, 62.3, 71.7, 82.4)),
    PaperRow("Ours (shuffle + v)", PAPER_TABLE, "ucf101", "retrieval", "iic", "merge", _ours("shuffle", "v"),
             _topk(42.4, 60.9, 69.2, 77.1, 86.5)),
    *(
        PaperRow(name, PAPER_RECOGNITION, dataset, "finetune", "iic", None,
                 _ours(neg, view) | {"finetune.modality": view}, {"video_top1": value})
        for name, neg, view, ucf, hmdb in (
            ("Ours (repeat + res)", "repeat", "res", 72.8, 35.3),
            ("Ours (repeat + u)", "repeat", "u", 72.7, 36.8),
            ("Ours (shuffle + res)", "shuffle", "res", 74.4, 38.3),
            ("Ours (shuffle + v)", "shuffle", "v", 67.0, 34.0),
        )
        for dataset, value in (("ucf101", ucf), ("hmdb51", hmdb))
    ),
    PaperRow("Ours (repeat + res), released fine-tuned model", UPSTREAM_RELEASED + " (tested with --modality=res)",
             "ucf101", "finetune", "iic", None, _ours("repeat", "res") | {"finetune.modality": "res"},
             {"video_top1": 72.7}),
)  # fmt: skip


def differences(row: PaperRow, run: dict[str, Any]) -> list[str]:
    """Every setting of ``run`` (dotted key -> value) that differs from what ``row`` was measured at.

    A setting the row leaves open (``None``, e.g. the intra-negative kind of a run without
    intra-negatives) is not compared.
    """
    return [
        f"{key}: {run.get(key)!r} (row: {wanted!r})"
        for key, wanted in row.required().items()
        if wanted is not None and run.get(key) != wanted
    ]


def official_split1(dataset_format: str, split: int, retrieval: dict) -> bool:
    """Whether an evaluation dataset is UCF101 or HMDB51 official split 1 (format, split, video counts)."""
    sizes = retrieval.get("iic", {})
    return split == 1 and (sizes.get("gallery"), sizes.get("queries")) == OFFICIAL_SPLIT1.get(dataset_format)


def rows_for(dataset_format: str) -> list[PaperRow]:
    return [row for row in ROWS if row.dataset == dataset_format]
