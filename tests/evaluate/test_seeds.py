import pytest

from evaluate.seeds import SEED_KEYS, seed_runs, seed_table
from pipeline.errors import InputError


def _params(seed):
    params: dict = {}
    for key in SEED_KEYS:
        section, leaf = key.split(".")
        params.setdefault(section, {})[leaf] = seed
    params["intervals"] = {"level": 0.95}
    return {"params.yaml": {"data": params}}


def _metrics(iic, random, low, high):
    paired = {"diff": iic - random, "low": low, "high": high}
    retrieval = {
        "iic": {"rgb": {"top1": iic}},
        "random": {"rgb": {"top1": random}},
        "paired": {"rgb": {"top1": paired}},
    }
    finetune = {"iic": {"video_top1": iic}, "random": {"video_top1": random}, "paired": {"video_top1": paired}}
    return {
        "artifacts/metrics/demo/retrieval.json": {"data": retrieval},
        "artifacts/metrics/demo/finetune.json": {"data": finetune},
        "artifacts/dvclive/pretrain/metrics.json": {"data": {"loss": 1.0}},
    }


def _entry(rev, name, seed, metrics, timestamp=None, experiments=None):
    data = {"rev": rev, "timestamp": timestamp, "params": _params(seed), "metrics": metrics}
    return {"rev": rev, "name": name, "data": data, "error": None, "experiments": experiments}


def _exp_show():
    """The shape of DVC 3's `dvc exp show --json`: the workspace, the commit and its experiments."""
    experiments = [
        {"revs": [_entry("b" * 40, "exp-one", 1, _metrics(0.30, 0.20, 0.02, 0.18), "2026-01-02T00:00:00")]},
        {"revs": [_entry("c" * 40, "exp-two", 2, _metrics(0.10, 0.30, -0.35, -0.05), "2026-01-03T00:00:00")]},
        {"revs": [_entry("d" * 40, "exp-old", 2, _metrics(0.90, 0.10, 0.5, 0.9), "2026-01-01T00:00:00")]},
    ]
    return [
        _entry("workspace", None, 632, _metrics(0.50, 0.50, -0.1, 0.1)),
        _entry("a" * 40, "main", 632, _metrics(0.40, 0.40, -0.1, 0.1), "2026-01-01T00:00:00", experiments),
    ]


def test_one_run_per_seed_experiments_first_and_the_newest_of_a_seed():
    runs = seed_runs(_exp_show())
    assert [(r.seed, r.name) for r in runs] == [(1, "exp-one"), (2, "exp-two"), (632, "main")]


def test_the_table_has_mean_and_sd_per_model_and_each_seeds_paired_difference():
    table = seed_table(seed_runs(_exp_show()))
    lines = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| demo |")}
    # IIC 30, 10, 40 -> mean 26.7, sd 15.3; random 20, 30, 40 -> 30.0 +- 10.0.
    rgb = lines["retrieval rgb top-1"]
    assert "| 26.7 ± 15.3 | 30.0 ± 10.0 |" in rgb
    assert "| +10.0 + | -20.0 - | +0.0 = | -3.3 |" in rgb  # each seed's verdict from its paired interval
    assert "fine-tuned video top1" in lines
    assert "3 seeds (1, 2, 632)" in table


def test_a_run_whose_seed_keys_disagree_is_refused_naming_it_whole():
    """The workspace was named "workspa" (cut as if it were a commit sha)."""
    mixed = _entry("workspace", None, 1, _metrics(0.1, 0.1, -0.1, 0.1))
    mixed["data"]["params"]["params.yaml"]["data"]["finetune"]["seed"] = 5
    with pytest.raises(InputError, match="^workspace: its seeds differ"):
        seed_runs([mixed])


def test_nothing_to_aggregate_says_how_to_run_the_seeds():
    with pytest.raises(InputError, match="README: Seeds"):
        seed_table([])


def test_a_run_of_older_code_is_left_out_and_the_others_kept(caplog):
    """An experiment from before linear.seed existed ended the whole table in a KeyError."""
    shown = _exp_show()
    old = shown[1]["experiments"][0]["revs"][0]
    del old["data"]["params"]["params.yaml"]["data"]["linear"]
    runs = seed_runs(shown)
    assert [(r.seed, r.name) for r in runs] == [(2, "exp-two"), (632, "main")]
    assert "exp-one: left out, its params have no linear (a run of older code)" in caplog.text


def test_retrieval_metrics_without_paired_differences_drop_only_that_measure():
    shown = _exp_show()
    old = shown[1]["experiments"][0]["revs"][0]["data"]["metrics"]["artifacts/metrics/demo/retrieval.json"]["data"]
    del old["paired"]
    table = seed_table(seed_runs(shown))
    assert "fine-tuned video top1" in table  # the measures every run has are all there
    assert "3 seeds (1, 2, 632)" in table


def test_the_interval_level_is_the_runs_not_a_fixed_95():
    shown = _exp_show()
    for entry in (shown[0], shown[1], *(e["revs"][0] for e in shown[1]["experiments"])):
        entry["data"]["params"]["params.yaml"]["data"]["intervals"]["level"] = 0.9
    assert "paired 90% interval" in seed_table(seed_runs(shown))


def test_a_truncated_exp_json_is_one_line_naming_the_file(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main

    path = tmp_path / "exp.json"
    path.write_text('[{"rev": "workspace", "data": {"params"')
    result = CliRunner().invoke(main, ["seeds", "--exp-json", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: not JSON")
    assert "Traceback" not in result.output


def test_every_temporal_probe_is_a_row_with_each_seeds_paired_difference():
    """The temporal probes (temporal.json) have no headline: all four are rows, in points."""
    shown = _exp_show()
    runs = [shown[0], shown[1], *(e["revs"][0] for e in shown[1]["experiments"])]
    for entry, reverse_iic in zip(runs, (0.95, 0.90, 0.80, 0.70, 0.99), strict=True):
        probes = {"repeat": 0.9, "shuffle": 0.9, "reverse": 0.9, "arrow": 0.5}
        paired = {m: {"diff": 0.0, "low": -0.01, "high": 0.01} for m in probes}
        paired["reverse"] = {"diff": reverse_iic - 0.9, "low": reverse_iic - 0.91, "high": reverse_iic - 0.89}
        temporal = {
            "iic": {"rgb": {**probes, "reverse": reverse_iic}},
            "random": {"rgb": probes},
            "paired": {"rgb": paired},
        }
        entry["data"]["metrics"]["artifacts/metrics/demo/temporal.json"] = {"data": temporal}
    table = seed_table(seed_runs(shown))
    lines = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| demo |")}
    assert {"temporal rgb repeat sim", "temporal rgb shuffle sim", "temporal rgb arrow of time"} <= set(lines)
    # Seeds 1, 2, 632 are exp-one (0.80), exp-two (0.70) and the commit (0.90): mean 80.0, sd 10.0.
    assert "| 80.0 ± 10.0 | 90.0 ± 0.0 | -10.0 - | -20.0 - | +0.0 = | -10.0 |" in lines["temporal rgb reverse sim"]


def test_a_queued_or_running_experiment_is_left_out(caplog):
    """A running experiment's entry carries the commit's metrics: it counted as its seed's result."""
    shown = _exp_show()
    running = _entry("workspace", "exp-three", 3, _metrics(0.40, 0.40, -0.1, 0.1))
    shown[1]["experiments"].append({"executor": {"state": "running"}, "name": "exp-three", "revs": [running]})
    shown[1]["experiments"].append({"executor": {"state": "queued"}, "name": "exp-four", "revs": []})
    shown[1]["experiments"][0]["executor"] = {"state": "success"}
    runs = seed_runs(shown)
    assert [(r.seed, r.name) for r in runs] == [(1, "exp-one"), (2, "exp-two"), (632, "main")]
    assert "exp-three: left out, its run is running" in caplog.text
