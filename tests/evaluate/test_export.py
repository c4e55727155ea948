"""Exported weights load strictly into torchvision and give the same features."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from evaluate.export import export_stage, torchvision_model
from train.checkpoint import build_encoder, save_checkpoint

RETRIEVAL = {
    "iic": {"rgb": {"top1": 0.25, "top5": 0.5}, "res": {"top1": 0.5, "top5": 0.75}, "queries": 4, "gallery": 8}
}
FINETUNE = {"iic": {"video_top1": 0.5}, "random": {"video_top1": 0.25}}


def _export(tmp_path, arch, width):
    torch.manual_seed(0)
    config = {
        "arch": arch,
        "width": width,
        "feat_dim": 8,
        "method": "cmc",
        "view2": "res",
        "clip_length": 16,
        "crop": 112,
        "intra_neg": True,
        "neg": "repeat",
        "train_videos": 48,
        "epochs": 1,
        "batch_size": 8,
        "lr": 0.01,
        "seed": 632,
    }
    encoder = build_encoder(config)
    save_checkpoint(tmp_path / "model.pt", {"config": config, "encoder": encoder.state_dict()})
    report = {
        "datasets": {"demo": {"retrieval": RETRIEVAL, "finetune": FINETUNE}},
        "pretrained_on": ["demo", "pool"],
        "sources": {
            "demo": {"format": "ucf101", "root": "artifacts/demo/demo/videos", "split": 1},
            "pool": {"format": "unlabeled", "root": "/data/pool", "split": 1},
            "other": {"format": "hmdb51", "root": "/data/hmdb51", "split": 2},
        },
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    export_stage(tmp_path / "model.pt", tmp_path / "report.json", tmp_path / "export")
    return encoder


@pytest.mark.parametrize("arch", ["r3d", "r21d_tv", "r3d18"])
def test_width_64_export_loads_strictly_into_torchvision_with_identical_features(tmp_path, arch):
    encoder = _export(tmp_path, arch, 64)
    model = torchvision_model(arch)
    model.load_state_dict(load_file(tmp_path / "export/model.safetensors"), strict=True)
    pth = torchvision_model(arch)
    pth.load_state_dict(torch.load(tmp_path / "export/model.pth", weights_only=True), strict=True)
    x = torch.rand(2, 3, 8, 32, 32)
    model.eval(), pth.eval(), encoder.eval()
    with torch.no_grad():
        ours = encoder.backbone(x)  # (2, 512): global average of conv5
        torch.testing.assert_close(model(x), ours, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pth(x), ours, rtol=1e-5, atol=1e-5)
    card = (tmp_path / "export/README.md").read_text()
    assert "model.fc = torch.nn.Identity()" in card and "`demo` retrieval top-1/5, iic res | 50.0 / 75.0" in card


def test_export_is_byte_stable_and_the_card_says_when_torchvision_does_not_fit(tmp_path):
    _export(tmp_path / "a", "c3d", 8)
    _export(tmp_path / "b", "c3d", 8)
    for name in ("model.safetensors", "model.pth", "README.md"):
        a, b = ((tmp_path / d / "export" / name).read_bytes() for d in "ab")
        assert hashlib.md5(a).digest() == hashlib.md5(b).digest(), name
    card = (tmp_path / "a/export/README.md").read_text()
    assert "torchvision has no equivalent of `c3d`" in card
    assert "`demo` fine-tuned video top-1 | 50.0 (random init: 25.0)" in card
    # The pretraining datasets as the report recorded them; an evaluation-only dataset is not one.
    assert (
        "| pretraining data | `demo` (ucf101 layout, artifacts/demo/demo/videos, split 1), "
        "`pool` (unlabeled layout, /data/pool, split 1), train split, 48 videos, no labels |"
    ) in card
