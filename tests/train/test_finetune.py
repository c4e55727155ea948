from __future__ import annotations

import dataclasses

import pytest
import torch

from evaluate.recognition import finetune_stage
from pipeline.errors import ConfigError, InputError
from pipeline.runtime import Runtime
from pipeline.schema import ClipParams, FinetuneParams, IntervalsParams, RuntimeParams
from preprocess.formats import video_group
from preprocess.shards import ShardReader
from tests.shards_fixture import make_tiny_shards
from train.checkpoint import build_encoder, load_backbone_strict
from train.finetune import finetune, selection_key
from train.models import build_backbone
from train.validation import split_validation

CPU = Runtime(torch.device("cpu"), bf16=False, channels_last=False, compile=False)
CONFIG = {"arch": "r3d", "width": 4, "feat_dim": 8}


def test_strict_loading_accepts_an_encoder_and_rejects_mismatches():
    encoder = build_encoder(CONFIG)
    backbone = build_backbone("r3d", 4)
    load_backbone_strict(backbone, encoder.state_dict())
    assert torch.equal(backbone.stem[0].weight, encoder.backbone.stem[0].weight)
    missing = {k: v for k, v in encoder.state_dict().items() if "layer4" not in k}
    # Each mismatch is one line a person can act on, never a KeyError or a torch traceback.
    with pytest.raises(InputError, match="does not fit a VideoResNet.*Missing key") as missing_key:
        load_backbone_strict(build_backbone("r3d", 4), missing)
    assert "\n" not in str(missing_key.value)
    with pytest.raises(InputError, match="size mismatch"):  # a different width: shapes differ
        load_backbone_strict(build_backbone("r3d", 8), encoder.state_dict())
    with pytest.raises(InputError, match=r"keys no backbone has: \['extra.weight'\]"):
        load_backbone_strict(build_backbone("r3d", 4), {**encoder.state_dict(), "extra.weight": torch.zeros(1)})


def test_validation_split_is_disjoint_and_seeded():
    ids = [f"v{i}" for i in range(20)]  # no group in the names: groups of one
    fit, val = split_validation(ids, 5, seed=1)
    assert len(val) == 5 and set(fit) | set(val) == set(ids) and not set(fit) & set(val)
    assert split_validation(ids, 5, seed=1) == (fit, val)
    assert split_validation(ids, 5, seed=2) != (fit, val)
    with pytest.raises(ConfigError, match=r"finetune\.val_videos: 20 must be between 1 and 19"):
        split_validation(ids, 20, seed=1)


def test_validation_holds_out_whole_groups():
    ids = [f"{c}/v_{c}_g{g:02d}_c{k:02d}" for c in ("Jump", "Run", "Swim") for g in range(8, 14) for k in (1, 2)]
    fit, val = split_validation(ids, 7, seed=0)
    assert len(val) == 12  # two groups of 6: the second one takes it past 7
    assert {video_group(v) for v in fit}.isdisjoint({video_group(v) for v in val})
    assert sorted(fit + val) == sorted(ids)
    with pytest.raises(ConfigError, match=r"finetune\.val_videos: 31 leaves no training video"):
        split_validation(ids, 31, seed=0)  # 6 groups of 6: holding out 31 takes them all


def test_selection_prefers_accuracy_then_loss_or_the_loss_alone():
    # (val loss, val accuracy) per epoch: the loss rises while the accuracy rises.
    epochs = [(1.79, 1 / 6), (2.5, 3 / 6), (2.2, 3 / 6), (3.0, 2 / 6)]

    def best(rule):
        return min(range(len(epochs)), key=lambda i: selection_key(*epochs[i], rule))

    assert best("accuracy") == 2  # the best accuracy; of the tied epochs the lower loss
    assert best("loss") == 0


def test_params_refuse_a_selection_rule_selection_key_does_not_know(tmp_path):
    """selection_key has no branch for an unknown rule: the schema's choices are its only guard."""
    import yaml

    from pipeline.params import load_params
    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["finetune"]["select_by"] = "f1"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"finetune\.select_by"):
        load_params(tmp_path / "params.yaml")


def test_video_group_reads_ucf101_names_and_falls_back_to_the_video():
    assert video_group("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01") == "g08"
    assert video_group("Archery/v_Archery_g08_c03.avi") == "g08"  # one group number across classes
    hmdb = "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0"
    assert video_group(hmdb) == hmdb


SETUP = FinetuneParams(
    modality="rgb",
    dropout=0.5,
    clip_scores="softmax",
    epochs=2,
    batch_size=3,
    lr=0.01,
    momentum=0.9,
    weight_decay=5e-4,
    val_videos=2,
    select_by="accuracy",
    plateau_factor=0.1,
    plateau_patience=1,
    min_lr=1e-5,
    seed=0,
)


@pytest.mark.parametrize("clip_scores", ["softmax", "logits"])
def test_finetune_tests_every_video_at_video_level(tmp_path, clip_scores):
    folder = make_tiny_shards(tmp_path)
    reader = ShardReader(folder / "frames", folder / "motion", [0])
    clip = ClipParams(length=16, crop=24, eval_clips=3)
    result = finetune(
        reader,
        dataclasses.replace(SETUP, clip_scores=clip_scores),
        clip,
        CONFIG,
        build_encoder(CONFIG).state_dict(),
        CPU,
        workers=0,
        n_classes=3,
        name="t",
        sync_batchnorm=True,
    )
    metrics = result["metrics"]
    assert metrics["test_videos"] == 4 == len(result["predicted"])
    for key in ("clip_top1", "video_top1"):
        assert 0 <= metrics[key] <= 1
    # 3 classes: the label is always within the top 5, so top-5 is left out as no result.
    assert "video_top5" not in metrics and "clip_top5" not in metrics and set(result["video_hits"]) == {"video_top1"}
    assert len(result["history"]) == 2


@pytest.mark.parametrize("arch", ["i3d", "s3d", "c3d", "r21d", "r3d18"])
def test_every_backbone_loads_strictly_from_its_encoder(arch):
    encoder = build_encoder({"arch": arch, "width": 8, "feat_dim": 8})
    backbone = build_backbone(arch, 8)
    load_backbone_strict(backbone, encoder.state_dict())
    for key, value in encoder.backbone.state_dict().items():
        assert torch.equal(backbone.state_dict()[key], value)
    with pytest.raises(InputError):  # another architecture's weights never load silently
        load_backbone_strict(build_backbone("s3d" if arch == "i3d" else "i3d", 8), encoder.state_dict())


def test_a_validation_part_larger_than_the_train_split_fails_before_anything_runs(tmp_path):
    """Checked as soon as the verified list is open: no checkpoint read, no model, no output."""
    folder = make_tiny_shards(tmp_path)
    reader = ShardReader(folder / "frames", folder / "motion", [0])
    runtime = RuntimeParams("cpu", False, False, False, False, False, 0)
    metrics = tmp_path / "finetune.json"
    with pytest.raises(ConfigError, match=r"^finetune\.val_videos: 100 must be between 1 and 7 "):
        finetune_stage(
            tmp_path / "no-model.pt",  # never opened
            reader,
            dataclasses.replace(SETUP, val_videos=100),
            ClipParams(length=16, crop=24, eval_clips=3),
            runtime,
            IntervalsParams(1000, 0, 0.95),
            metrics,
            lambda name: tmp_path / "live" / name,
            sync_batchnorm=True,
        )
    assert not metrics.exists() and not (tmp_path / "live").exists()
