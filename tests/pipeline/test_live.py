"""DVCLive logs: one row per epoch, a resumed run continues the step count without repeats."""

from __future__ import annotations

import csv
import json

from pipeline.live import EpochLog


def _rows(folder, name):
    with open(folder / "plots" / "metrics" / f"{name}.tsv", newline="") as f:
        return [(int(r["step"]), float(r[name])) for r in csv.DictReader(f, delimiter="\t")]


def test_a_resumed_run_continues_the_steps_and_drops_rows_past_its_checkpoint(tmp_path):
    log = EpochLog(tmp_path)
    for epoch in (1, 2, 3):  # killed after logging epoch 3, with its checkpoint at epoch 2
        log({"epoch": epoch, "loss": 10.0 - epoch, "lr": 0.1}, False)
    log.close()
    resumed = EpochLog(tmp_path)
    for epoch in (3, 4):
        resumed({"epoch": epoch, "loss": 20.0 - epoch, "lr": 0.1}, True)
    resumed.close()
    assert _rows(tmp_path, "loss") == [(0, 9.0), (1, 8.0), (2, 17.0), (3, 16.0)]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["loss"] == 16.0 and summary["step"] == 3


def test_a_fresh_run_starts_a_new_history(tmp_path):
    first = EpochLog(tmp_path)
    first({"epoch": 1, "loss": 1.0}, False)
    first.close()
    second = EpochLog(tmp_path)
    second({"epoch": 1, "loss": 2.0}, False)
    second.confusion(["a", "b"], ["a", "a"])
    second.close()
    assert _rows(tmp_path, "loss") == [(0, 2.0)]
    confusion = json.loads((tmp_path / "plots/sklearn/confusion.json").read_text())
    assert confusion == [{"actual": "a", "predicted": "a"}, {"actual": "b", "predicted": "a"}]
