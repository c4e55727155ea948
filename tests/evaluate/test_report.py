"""The experiment report: every evaluation dataset, and the paper's numbers only beside a comparable run."""

from __future__ import annotations

import json

import pytest

from evaluate.paper import OFFICIAL_SPLIT1
from evaluate.report import report_stage
from pipeline.errors import InputError
from pipeline.paths import DatasetPaths
from pipeline.schema import DatasetParams

# A run at the paper's settings as the README's command sets them (RUN_KEYS of evaluate/report.py).
PAPER_RUN = {
    "model.arch": "r3d",
    "model.width": 64,
    "frames.height": 128,
    "frames.width": 171,
    "clip.length": 16,
    "clip.crop": 112,
    "clip.eval_clips": 10,
    "pretrain.method": "cmc",
    "pretrain.modality": "res",
    "pretrain.intra_neg": True,
    "pretrain.neg": "repeat",
    "pretrain.nce_k": 1024,
    "pretrain.epochs": 240,
    "pretrain.batch_size": 16,
    "pretrain.lr_steps": [45, 90, 125, 160],
    "finetune.dropout": 0.0,
    "finetune.clip_scores": "logits",
    "finetune.select_by": "loss",
    "finetune.lr": 0.001,
    "finetune.epochs": 150,
    "finetune.batch_size": 16,
    "finetune.modality": "res",
    "knn.k": 20,
    "knn.temperature": 0.07,
    "intervals.level": 0.95,
    "pretrain.models": ["iic"],
    "pretrain.baseline.intra_neg": False,
    "pretrained on": [("ucf101", 1)],
}


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
    interval = {"low": top1 / 2, "high": min(1.0, 1.5 * top1)}
    paired = {"diff": 0.0, "low": -0.1, "high": 0.1}
    retrieval |= {
        "intervals": {m: {k: {"top1": interval, "top5": interval} for k in ("rgb", "res", "merge")} for m in finetune},
        "paired": {k: {"top1": paired, "top5": paired} for k in ("rgb", "res", "merge")},
    }
    finetune |= {
        "intervals": {m: {"video_top1": interval, "video_top5": interval} for m in ("iic", "random")},
        "paired": {"video_top1": {"diff": 0.1, "low": 0.02, "high": 0.2}, "video_top5": paired},
    }
    frozen = {
        m: {k: {**scores, "weight_decay": 0.1} for k in ("rgb", "res", "merge")}
        | {"test_videos": queries, "train_videos": gallery}
        for m in ("iic", "random")
    }
    frozen |= {"intervals": retrieval["intervals"], "paired": retrieval["paired"]}
    measures = {"repeat": 0.9, "shuffle": 0.95, "reverse": 0.97, "arrow": 0.5}
    temporal = {m: {"rgb": measures, "test_videos": queries, "train_videos": gallery} for m in ("iic", "random")}
    temporal |= {
        "intervals": {m: {"rgb": {k: interval for k in measures}} for m in ("iic", "random")},
        "paired": {"rgb": {k: paired for k in measures}},
    }
    for path, data in (
        (folder.temporal_metrics, temporal),
        (folder.retrieval_metrics, retrieval),
        (folder.knn_metrics, frozen),
        (folder.linear_metrics, frozen),
        (folder.finetune_metrics, finetune),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


def _run(**changes):
    return PAPER_RUN | {key.replace("__", "."): value for key, value in changes.items()}


def _rows(data, dataset):
    return {(e["row"], e["protocol"]): e for e in data["datasets"][dataset]["paper"]}


def test_every_paper_number_sits_beside_the_features_it_was_measured_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ucf, hmdb, demo = DatasetPaths("ucf101"), DatasetPaths("hmdb51"), DatasetPaths("demo")
    _metrics(ucf, *OFFICIAL_SPLIT1["ucf101"], 0.4)
    _metrics(hmdb, *OFFICIAL_SPLIT1["hmdb51"], 0.2)
    _metrics(demo, 48, 24, 0.25)  # ucf101 format, but not UCF101
    sources = {"ucf101": _source("ucf101"), "hmdb51": _source("hmdb51"), "demo": _source("ucf101")}
    outputs = {"ucf101": ucf, "hmdb51": hmdb, "demo": demo}
    data = report_stage("ucf101", sources, outputs, _run(), tmp_path / "r.md", tmp_path / "r.json")
    ucf_rows = _rows(data, "ucf101")
    merged = ucf_rows[("Ours (repeat + res)", "retrieval")]
    assert merged["feature"] == "merge" and merged["paper"]["top1"] == 36.5 and merged["comparable"]
    assert merged["ours"] == {"top1": 40.0, "top5": 80.0}  # our merge features, in %
    assert ucf_rows[("Ours (repeat + res), res only", "retrieval")]["paper"] == {"top1": 33.4}
    assert ucf_rows[("Ours (repeat + res), rgb only", "retrieval")]["feature"] == "rgb"
    assert ucf_rows[("R3D (random)", "retrieval")]["model"] == "random"
    assert ucf_rows[("Ours (repeat + res)", "finetune")]["paper"] == {"video_top1": 72.8}
    # A row selected by other settings is listed, with what selects it, and not set beside ours.
    u_row = ucf_rows[("Ours (repeat + u)", "retrieval")]
    assert not u_row["comparable"] and u_row["ours"] is None
    assert u_row["differences"] == ["pretrain.modality: 'res' (row: 'u')"]
    assert _rows(data, "hmdb51")[("Ours (shuffle + res)", "finetune")]["differences"] == [
        "pretrain.neg: 'repeat' (row: 'shuffle')"
    ]
    assert "paper" not in data["datasets"]["demo"]
    report = (tmp_path / "r.md").read_text()
    for entry in data["datasets"]["ucf101"]["paper"]:  # every number shown names its row and source
        assert f"| {entry['row']} | {entry['source']} |" in report
    assert "a video scores the mean of its 10 clips' logits (upstream's rule)" in report
    assert "this run differs in: nothing." in report
    assert "`demo` (ucf101 format, split 1) is not one, so none is set beside it" in report
    # Intervals beside every number IIC is compared on, and a verdict only from the paired one.
    assert "| retrieval merge top-1 | 40.0 [20.0, 60.0] | 40.0 [20.0, 60.0] | +0.0 [-10.0, +10.0] | level |" in report
    assert "| fine-tuned video top1 | 40.0 [20.0, 60.0] | 40.0 [20.0, 60.0] | +10.0 [+2.0, +20.0] | ahead |" in report


@pytest.mark.parametrize(
    "change, difference",
    [
        ({"finetune__modality": "rgb"}, "finetune.modality: 'rgb' (row: 'res')"),
        ({"finetune__dropout": 0.5}, "finetune.dropout: 0.5 (row: 0.0)"),
        ({"finetune__clip_scores": "softmax"}, "finetune.clip_scores: 'softmax' (row: 'logits')"),
        ({"finetune__select_by": "accuracy"}, "finetune.select_by: 'accuracy' (row: 'loss')"),
        ({"finetune__lr": 0.01}, "finetune.lr: 0.01 (row: 0.001)"),
        ({"finetune__epochs": 30}, "finetune.epochs: 30 (row: 150)"),
    ],
)
def test_a_fine_tune_is_comparable_only_with_every_setting_that_changes_its_number(tmp_path, monkeypatch, change,
                                                                                   difference):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    ucf = DatasetPaths("ucf101")
    _metrics(ucf, *OFFICIAL_SPLIT1["ucf101"], 0.4)
    data = report_stage("ucf101", {"ucf101": _source("ucf101")}, {"ucf101": ucf}, _run(**change),
                        tmp_path / "r.md", tmp_path / "r.json")  # fmt: skip
    rows = _rows(data, "ucf101")
    assert rows[("Ours (repeat + res)", "finetune")]["differences"] == [difference]
    assert rows[("Ours (repeat + res)", "retrieval")]["comparable"]  # frozen features do not fine-tune


@pytest.mark.parametrize(
    "change, difference",
    [
        ({"model__width": 16}, "model.width: 16 (row: 64)"),
        ({"clip__crop": 40}, "clip.crop: 40 (row: 112)"),
        ({"clip__length": 8}, "clip.length: 8 (row: 16)"),
        ({"pretrain__nce_k": 32}, "pretrain.nce_k: 32 (row: 1024)"),
        ({"pretrained on": [("ucf101", 2)]}, "pretrained on: [('ucf101', 2)] (row: [('ucf101', 1)])"),
        (
            {"pretrained on": [("ucf101", 1), ("unlabeled", 1)]},
            "pretrained on: [('ucf101', 1), ('unlabeled', 1)] (row: [('ucf101', 1)])",
        ),
    ],
)
def test_retrieval_is_comparable_only_at_the_papers_sizes_and_pretraining(tmp_path, monkeypatch, change, difference):
    monkeypatch.chdir(tmp_path)
    ucf = DatasetPaths("ucf101")
    _metrics(ucf, *OFFICIAL_SPLIT1["ucf101"], 0.4)
    run = PAPER_RUN | {k.replace("__", "."): v for k, v in change.items()}
    data = report_stage("ucf101", {"ucf101": _source("ucf101")}, {"ucf101": ucf}, run, tmp_path / "r.md",
                        tmp_path / "r.json")  # fmt: skip
    assert difference in _rows(data, "ucf101")[("Ours (repeat + res)", "retrieval")]["differences"]
    assert f"this run differs in: {difference}" in (tmp_path / "r.md").read_text()


def test_the_readmes_paper_settings_are_the_papers_protocol(tmp_path):
    """The README's `dvc exp run -S ...` command, applied to params.yaml, gives a run that the
    report calls the paper's protocol: res fine-tuning without dropout, logits averaged."""
    import re

    import yaml

    from evaluate.paper import differences
    from evaluate.report import REFERENCE_ROW, run_settings
    from pipeline.params import load_params
    from pipeline.stage import declared_params
    from pipeline.stage_params import StageParams
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    command = re.search(r"```bash\n(dvc exp run -S frames\.height=128.*?)```", readme, re.S).group(1)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in re.findall(r"-S '?([\w.]+)=([^' \\\n]+)'?", command):
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    assert raw["finetune"]["modality"] == "res" and raw["finetune"]["dropout"] == 0.0
    assert raw["finetune"]["clip_scores"] == "logits"
    raw["datasets"]["demo"]["format"] = "ucf101"  # as the README's UCF101 entry
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    p = StageParams(load_params(path), declared_params("report", REPO / "dvc.yaml", None, path), set())
    assert differences(REFERENCE_ROW, run_settings(p, [p.datasets["demo"].materialize()])) == []


def test_metrics_without_intervals_name_the_file_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = DatasetPaths("demo")
    _metrics(demo, 48, 24, 0.25)
    old = json.loads(demo.retrieval_metrics.read_text())
    del old["intervals"], old["paired"]  # as the retrieve stage wrote it before intervals
    demo.retrieval_metrics.write_text(json.dumps(old))
    with pytest.raises(InputError, match=r"retrieval\.json: written without intervals by an older stage"):
        report_stage(
            "demo", {"demo": _source("ucf101")}, {"demo": demo}, _run(), tmp_path / "r.md", tmp_path / "r.json"
        )


def test_a_missing_evaluation_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"artifacts/metrics/demo/retrieval\.json: missing"):
        report_stage("demo", {"demo": _source("ucf101")}, {"demo": DatasetPaths("demo")}, _run(), tmp_path / "r.md",
                     tmp_path / "r.json")  # fmt: skip


def _drop_key(node, key):
    """``node`` with every dict entry named ``key`` removed, at any depth (a topk that left it out)."""
    if isinstance(node, dict):
        return {k: _drop_key(v, key) for k, v in node.items() if k != key}
    return node


def test_each_stage_is_reported_by_its_own_smallest_k(tmp_path, monkeypatch):
    """retrieve.topk: [5, 10] (no 1) crashed the report with KeyError 'top1'; knn.topk [1, 2] with
    linear.topk [1] crashed it with KeyError 'top2'; fine-tuning over fewer than 6 classes has no
    video top-5. Each now shows what its stage measured."""
    monkeypatch.chdir(tmp_path)
    demo = DatasetPaths("demo")
    _metrics(demo, 48, 24, 0.25)
    for path, edit in (
        (demo.retrieval_metrics, lambda d: _drop_key(d, "top1")),
        (demo.linear_metrics, lambda d: _drop_key(d, "top5")),
        (demo.finetune_metrics, lambda d: _drop_key(_drop_key(d, "video_top5"), "clip_top5")),
    ):
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    report_stage("demo", {"demo": _source("ucf101")}, {"demo": demo}, _run(), tmp_path / "r.md", tmp_path / "r.json")
    report = (tmp_path / "r.md").read_text()
    assert "| retrieval rgb top-5 |" in report and "| kNN rgb top-1 |" in report
    assert "| model | features | kNN top1 | kNN top5 | linear top1 | linear weight decay |" in report
    assert "| fine-tuned from | clip top-1 | video top-1 |" in report
    from evaluate.summary import summary_lines

    lines = summary_lines(json.loads((tmp_path / "r.json").read_text()))
    assert any(line.startswith("    retrieval (top-5) rgb 50.0 / 50.0") for line in lines), lines


def _with_baseline(folder: DatasetPaths, ahead: float) -> None:
    """Add a baseline beside IIC to every metrics file: IIC - baseline is ``ahead`` with an interval
    above zero on every measure, and the temporal similarities lower for IIC."""
    for path in (folder.retrieval_metrics, folder.knn_metrics, folder.linear_metrics, folder.finetune_metrics,
                 folder.temporal_metrics):  # fmt: skip
        data = json.loads(path.read_text())
        data["baseline"] = data["random"]
        data["intervals"]["baseline"] = data["intervals"]["random"]
        data["paired_baseline"] = json.loads(
            json.dumps(data["paired"]),
            object_hook=lambda d: {"diff": ahead, "low": ahead / 2, "high": ahead * 2} if "diff" in d else d,
        )
        path.write_text(json.dumps(data))


def test_the_report_says_where_intra_negatives_put_iic_ahead_of_its_baseline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = DatasetPaths("demo")
    _metrics(demo, 48, 24, 0.25)
    _with_baseline(demo, 0.1)
    run = _run(pretrain__models=["iic", "baseline"])
    data = report_stage(
        "demo", {"demo": _source("ucf101")}, {"demo": demo}, run, tmp_path / "r.md", tmp_path / "r.json"
    )
    report = (tmp_path / "r.md").read_text()
    assert (
        "| measure | IIC | baseline | random init | IIC - random | verdict | IIC - baseline | intra-negatives |"
        in report
    )
    said = data["datasets"]["demo"]["intra_negatives"]
    assert said["retrieval rgb top-1"] == "ahead" and said["fine-tuned video top1"] == "ahead"
    assert said["temporal reverse"] == "higher" and said["temporal arrow"] == "ahead"  # a positive difference
    assert "**Intra-negatives** (IIC - baseline" in report and "*arrow*: arrow of time" in report
    assert "its baseline (the same pretraining with intra_neg false)" in report
    from evaluate.summary import summary_lines

    lines = summary_lines(json.loads((tmp_path / "r.json").read_text()))
    assert lines[0].endswith("Top-1 %, IIC / baseline / random init:")
    assert any(line.startswith("    intra-negatives ahead on") for line in lines), lines


def test_without_a_baseline_the_report_says_intra_negatives_were_not_measured(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = DatasetPaths("demo")
    _metrics(demo, 48, 24, 0.25)
    data = report_stage(
        "demo", {"demo": _source("ucf101")}, {"demo": demo}, _run(), tmp_path / "r.md", tmp_path / "r.json"
    )
    assert "intra_negatives" not in data["datasets"]["demo"]
    assert "No baseline was pretrained (pretrain.models)" in (tmp_path / "r.md").read_text()


def test_the_frozen_feature_line_names_the_smallest_class_when_the_metrics_count_it():
    from evaluate.report import _per_class

    assert _per_class({"train_videos": 120, "train_videos_per_class_min": 20}) == " (at least 20 of each class)"
    assert _per_class({"train_videos": 120}) == ""  # metrics of older code
