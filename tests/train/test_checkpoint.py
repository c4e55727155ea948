"""The checkpoint format: byte-reproducible, loaded with weights_only."""
from __future__ import annotations

import hashlib

import torch

from train.checkpoint import build_encoder, load_encoder, save_checkpoint

CONFIG = {"arch": "r3d", "width": 4, "feat_dim": 8}


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_identical_weights_give_a_byte_identical_file(tmp_path):
    """torch.save to a path names the zip's folder after the (random) temporary file: DVC then
    saw a new model.pt after every rerun, and no two machines shared its hash."""
    torch.manual_seed(0)
    encoder = build_encoder(CONFIG)
    save_checkpoint(tmp_path / "a" / "model.pt", {"config": CONFIG, "encoder": encoder.state_dict()})
    save_checkpoint(tmp_path / "b" / "other_name.pt", {"config": CONFIG, "encoder": encoder.state_dict()})
    assert _md5(tmp_path / "a" / "model.pt") == _md5(tmp_path / "b" / "other_name.pt")
    config, loaded = load_encoder(tmp_path / "a" / "model.pt")
    assert config == CONFIG
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
