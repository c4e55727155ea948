"""Live training logs through DVCLive: per-epoch metrics that `dvc exp show`, `dvc plots`,
VS Code and Studio read while a stage runs.

One folder per training run (``artifacts/dvclive/pretrain``, ``.../finetune/iic``): DVCLive's
``metrics.json`` (the latest values) and ``plots/metrics/<name>.tsv`` (one row per epoch,
``step`` = epoch - 1). A resumed run continues the step count; rows a killed run logged past
its last checkpoint are dropped first, so every step appears once.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from dvclive import Live

log = logging.getLogger(__name__)


def drop_steps_from(folder: Path, first_step: int) -> None:
    """Remove rows with step >= ``first_step`` from every metric history under ``folder``."""
    for tsv in (folder / "plots" / "metrics").rglob("*.tsv") if (folder / "plots").is_dir() else ():
        with open(tsv, newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        header, body = rows[0], rows[1:]
        step = header.index("step")
        kept = [r for r in body if int(r[step]) < first_step]
        if len(kept) != len(body):
            with open(tsv, "w", newline="") as f:
                csv.writer(f, delimiter="\t", lineterminator="\n").writerows([header, *kept])


class EpochLog:
    """Log one row per epoch to a DVCLive folder; opened on the first row.

    Call with the epoch's row ({"epoch": 1-based, name: value, ...}) and whether the run
    resumed from a checkpoint (then the history before that epoch is kept).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.live: Live | None = None

    def __call__(self, row: dict[str, float], resumed: bool) -> None:
        step = int(row["epoch"]) - 1
        if self.live is None:
            if resumed:
                drop_steps_from(self.folder, step)
            self.live = Live(str(self.folder), resume=resumed, dvcyaml=None, save_dvc_exp=False, report=None)
        self.live.step = step
        for name, value in row.items():
            if name != "epoch":
                self.live.log_metric(name, value)
        self.live.next_step()

    def confusion(self, actual: list[str], predicted: list[str], name: str = "confusion") -> None:
        """The test confusion (class names, one entry per video) as a DVCLive plot."""
        if self.live is None:
            self.live = Live(str(self.folder), dvcyaml=None, save_dvc_exp=False, report=None)
        self.live.log_sklearn_plot("confusion_matrix", actual, predicted, name=name)

    def close(self) -> None:
        if self.live is not None:
            self.live.end()
