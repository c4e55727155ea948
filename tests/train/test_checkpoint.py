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


def test_training_state_round_trips_unchanged(tmp_path):
    """A resume state holds an optimizer and a scheduler whose milestones are a Counter; a
    rebuilt Counter once turned milestone 2 into (2, 1), so a resumed run never decayed its lr."""
    encoder = build_encoder(CONFIG)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4], 0.2)
    optimizer.step()
    scheduler.step()
    save_checkpoint(tmp_path / "r.pt", {"scheduler": scheduler.state_dict(), "encoder": encoder.state_dict()})
    loaded = torch.load(tmp_path / "r.pt", weights_only=True)
    assert loaded["scheduler"] == scheduler.state_dict()
    assert encoder.state_dict()._metadata == loaded["encoder"]._metadata
