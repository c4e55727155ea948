"""The checkpoint format, defined once: a dict of tensors and plain values.

{"format": 1, "config": {"arch", "width", "feat_dim", "view2", ...}, "encoders": {"view1": state,
"view2": state}, ...training state for resumption}. Loaded with ``weights_only=True``; the
model is rebuilt from ``config``, so a checkpoint needs no params.yaml to be used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.atomic import atomic_path
from train.models import Backbone, build_backbone

FORMAT = 1


class Encoder(nn.Module):
    """Backbone plus a projection head; ``forward`` gives (B,feat_dim) unit-norm features.

    The head batch-normalises the pooled conv5 vector before its linear layer. Pooled
    post-ReLU features of different videos start almost parallel (cosine 0.9-0.99 at
    initialisation), so at temperature 0.07 every logit is alike and training sinks into
    the collapsed solution (all features equal, loss log(K+1)); centring them first lets
    the contrast start. The head is used for pretraining only, never for retrieval.
    """

    def __init__(self, backbone: Backbone, feat_dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.BatchNorm1d(backbone.out_dim), nn.Linear(backbone.out_dim, feat_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(x)), dim=1)


def build_encoder(config: dict[str, Any]) -> Encoder:
    return Encoder(build_backbone(config["arch"], config["width"]), config["feat_dim"])


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Atomic save: a run killed while saving keeps the previous checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **checkpoint}, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {checkpoint.get('format')!r}, expected {FORMAT}")
    return checkpoint


def load_encoders(path: Path) -> tuple[dict[str, Any], dict[str, Encoder]]:
    """(config, {"view1": Encoder, "view2": Encoder}) rebuilt from a pretraining checkpoint."""
    checkpoint = load_checkpoint(path)
    encoders = {}
    for view, state in checkpoint["encoders"].items():
        encoder = build_encoder(checkpoint["config"])
        encoder.load_state_dict(state, strict=True)
        encoders[view] = encoder
    return checkpoint["config"], encoders
