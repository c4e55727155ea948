from __future__ import annotations

import pytest
import yaml

from pipeline.params import ConfigError, Params, StageParams, build, leaf_keys, load_params
from tests.conftest import REPO


def _raw():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_load(params):
    assert params.motion.tvl1.lambda_ == 0.15
    assert "motion.tvl1.lambda" in leaf_keys(params)


def test_unknown_key_fails_with_its_name():
    raw = _raw()
    raw["pretrain"]["epoch"] = 3
    with pytest.raises(ConfigError, match="pretrain.epoch"):
        build(Params, raw, "")


def test_wrong_type_fails_with_its_name():
    raw = _raw()
    raw["pretrain"]["intra_neg"] = "no"
    with pytest.raises(ConfigError, match="pretrain.intra_neg"):
        build(Params, raw, "")
    raw = _raw()
    raw["clip"]["length"] = 16.5
    with pytest.raises(ConfigError, match="clip.length"):
        build(Params, raw, "")


def test_missing_key_and_bad_choice_fail(tmp_path):
    raw = _raw()
    del raw["motion"]["tvl1"]["warps"]
    with pytest.raises(ConfigError, match="motion.tvl1.warps"):
        build(Params, raw, "")
    raw = _raw()
    raw["model"]["arch"] = "resnet50"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="model.arch"):
        load_params(path)


def test_stage_view_refuses_unlisted_keys_and_records_reads(params):
    read: set[str] = set()
    view = StageParams(params, frozenset({"frames", "motion.tvl1.lambda"}), read)
    assert view.frames.height == params.frames.height
    assert view.motion.tvl1.lambda_ == 0.15
    with pytest.raises(ConfigError, match="motion.bound"):
        view.motion.bound
    assert read == {"frames.height", "motion.tvl1.lambda"}
