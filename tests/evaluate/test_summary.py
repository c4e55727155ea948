"""The headline lines after `dvc repro`: the right numbers, never wider than a terminal line."""

from __future__ import annotations

import json

from evaluate.summary import WIDTH, summary_lines
from tests.conftest import REPO


def _report(name: str, kinds: list[str]) -> dict:
    def topk(value):
        return {"top1": value, "top5": 1.0}

    retrieval = {
        model: {**{kind: topk(value) for kind in kinds}, "queries": 24, "gallery": 48}
        for model, value in (("iic", 0.25), ("random", 0.125))
    }
    finetune = {"iic": {"video_top1": 0.5}, "random": {"video_top1": 0.1666666}}
    return {"pretrained_on": "demo", "datasets": {name: {"retrieval": retrieval, "finetune": finetune}}}


def test_the_summary_shows_iic_beside_random_init():
    lines = summary_lines(_report("demo", ["rgb", "res", "merge"]))
    assert "    retrieval rgb 25.0 / 12.5   res 25.0 / 12.5   merge 25.0 / 12.5" in lines
    assert "    fine-tuned video 50.0 / 16.7" in lines
    assert "  demo (24 test videos)" in lines
    assert lines[-1].startswith("Full report: artifacts/report.md")


def test_the_frozen_feature_protocols_have_their_own_lines():
    report = _report("demo", ["rgb", "merge"])
    entry = report["datasets"]["demo"]
    entry["knn"] = {
        "iic": {"rgb": {"top1": 0.2}, "merge": {"top1": 0.3}},
        "random": {"rgb": {"top1": 0.1}, "merge": {"top1": 0.4}},
    }
    entry["linear"] = {
        "iic": {"rgb": {"top1": 0.5}, "merge": {"top1": 0.6}},
        "random": {"rgb": {"top1": 0.7}, "merge": {"top1": 0.8}},
    }
    lines = summary_lines(report)
    assert "    kNN rgb 20.0 / 10.0   merge 30.0 / 40.0" in lines
    assert "    linear rgb 50.0 / 70.0   merge 60.0 / 80.0" in lines


def test_long_names_wrap_within_a_terminal_line():
    lines = summary_lines(_report("a_very_long_dataset_name_" * 4, ["rgb", "a_long_view_two_name_" * 2, "merge"]))
    assert max(map(len, lines)) <= WIDTH
    assert any("merge 25.0 / 12.5" in line for line in lines)


def test_the_committed_report_fits():
    report = json.loads((REPO / "artifacts/report.json").read_text())
    assert max(map(len, summary_lines(report))) <= WIDTH
