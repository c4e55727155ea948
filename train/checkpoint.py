"""The checkpoint format, defined once: a dict of tensors and plain values.

{"format": 2, "config": {"arch", "width", "feat_dim", "view2", ...}, "encoder": state, ...training
state for resumption}. One encoder serves both views (format 1 held one per view). Loaded with
``weights_only=True``; the model is rebuilt from ``config``, so a checkpoint needs no params.yaml.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.atomic import atomic_path
from train.models import Backbone, build_backbone

FORMAT = 2


class Encoder(nn.Module):
    """Backbone plus a linear projection head, as CMC: (B,3,T,H,W) -> (B,feat_dim) unit-norm.

    The head is used for pretraining only, never for retrieval or fine-tuning. A batch norm
    before the linear layer (tried while building the demo) lets the backbone shrink the
    spread of its pooled features at will, since the head rescales it; the backbone then
    fine-tunes poorly (training loss stayed near chance on the demo).
    """

    def __init__(self, backbone: Backbone, feat_dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, feat_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(x)), dim=1)


def build_encoder(config: dict[str, Any]) -> Encoder:
    return Encoder(build_backbone(config["arch"], config["width"]), config["feat_dim"])


class CheckpointFormatError(ValueError):
    """A checkpoint written in another format version."""


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Atomic save: a run killed while saving keeps the previous checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **checkpoint}, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if checkpoint.get("format") != FORMAT:
        raise CheckpointFormatError(f"{path}: checkpoint format {checkpoint.get('format')!r}, expected {FORMAT}")
    return checkpoint


def load_encoder(path: Path) -> tuple[dict[str, Any], Encoder]:
    """(config, Encoder) rebuilt from a pretraining checkpoint."""
    checkpoint = load_checkpoint(path)
    encoder = build_encoder(checkpoint["config"])
    encoder.load_state_dict(checkpoint["encoder"], strict=True)
    return checkpoint["config"], encoder
