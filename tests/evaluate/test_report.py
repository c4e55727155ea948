"""The experiment report: every evaluation dataset, and the paper's numbers only beside a comparable run."""

from __future__ import annotations

import json

import pytest

from evaluate.report import OFFICIAL_SPLIT1, paper_settings, report_stage
from pipeline.errors import InputError
from pipeline.paths import DatasetPaths
from pipeline.schema import DatasetParams, ModelParams

PAPER_METHOD = {"method": "cmc", "modality": "res", "intra_neg": True, "neg": "repeat"}


def _source(fmt: str) -> DatasetParams:
    return DatasetParams(
        format=fmt,
        root=f"/data/{fmt}",
        lists=f"/data/{fmt}/lists",
        split=1,
        test_ratio=0.3,
        split_seed=0,
        max_reject_share=0.05,
    )


def _metrics(folder: DatasetPaths, gallery: int, queries: int, top1: float) -> None:
    scores = {"top1": top1, "top5": min(1.0, 2 * top1)}
    retrieval = {
        m: {"rgb": scores, "res": scores, "merge": scores, "queries": queries, "gallery": gallery}
        for m in ("iic", "random")
    }
    finetune = {
        m: {
            "clip_top1": top1,
            "clip_top5": 0.9,
            "video_top1": top1,
            "video_top5": 0.9,
            "best_epoch": 3,
            "test_videos": queries,
        }
        for m in ("iic", "random")
    }
    for path, data in ((folder.retrieval_metrics, retrieval), (folder.finetune_metrics, finetune)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


def _paper_run(**changes):
    model = ModelParams(arch=changes.pop("arch", "r3d"), width=changes.pop("width", 64))
    return paper_settings(model, 16, 112, 128, 171, {**PAPER_METHOD, **changes}, ("ucf101", 1))


def test_paper_settings_name_each_difference():
    assert _paper_run().comparable
    differs = _paper_run(width=16, intra_neg=False)
    assert not differs.comparable
    assert differs.differences == ("model.width: 16 (paper: 64)", "pretrain.intra_neg: False (paper: True)")


def test_the_paper_column_appears_only_for_official_split_1_with_the_papers_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ucf, hmdb, demo = DatasetPaths("ucf101"), DatasetPaths("hmdb51"), DatasetPaths("demo")
    _metrics(ucf, *OFFICIAL_SPLIT1["ucf101"], 0.4)
    _metrics(hmdb, *OFFICIAL_SPLIT1["hmdb51"], 0.2)
    _metrics(demo, 48, 24, 0.25)  # ucf101 format, but not UCF101
    sources = {"ucf101": _source("ucf101"), "hmdb51": _source("hmdb51"), "demo": _source("ucf101")}
    outputs = {"ucf101": ucf, "hmdb51": hmdb, "demo": demo}
    data = report_stage("ucf101", sources, outputs, _paper_run(), tmp_path / "r.md", tmp_path / "r.json")
    assert data["datasets"]["ucf101"]["paper"]["retrieval_top1"] == {"random": 9.9, "iic": 36.5}
    assert data["datasets"]["hmdb51"]["paper"] == {"finetune_top1": {"iic": 35.3}}
    assert "paper" not in data["datasets"]["demo"]
    report = (tmp_path / "r.md").read_text()
    assert "| paper, iic (R3D) | | 72.8 | |" in report and "| paper, iic (R3D) | | 35.3 | |" in report
    assert "| iic | rgb | 40.0 | 80.0 |" in report
    assert "| `demo` | evaluation | ucf101 |" in report and "| `ucf101` | pretraining, evaluation |" in report

    other = report_stage("ucf101", sources, outputs, _paper_run(width=16), tmp_path / "o.md", tmp_path / "o.json")
    assert not any("paper" in d for d in other["datasets"].values())
    assert "differs in: model.width: 16 (paper: 64)" in (tmp_path / "o.md").read_text()


def test_a_missing_evaluation_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"artifacts/metrics/demo/retrieval\.json: missing"):
        report_stage(
            "demo",
            {"demo": _source("ucf101")},
            {"demo": DatasetPaths("demo")},
            _paper_run(),
            tmp_path / "r.md",
            tmp_path / "r.json",
        )
