"""The checkpoint format, defined once: a dict of tensors and plain values.

{"format": 2, "config": {"arch", "width", "feat_dim", "view2", ...}, "encoder": state, ...training
state for resumption}. One encoder serves both views (format 1 held one per view). Loaded with
``weights_only=True``; the model is rebuilt from ``config``, so a checkpoint needs no params.yaml.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.atomic import write_bytes
from pipeline.errors import InputError
from train.models import Backbone, build_backbone

FORMAT = 2


class Encoder(nn.Module):
    """Backbone plus a linear projection head, as CMC: (B,3,T,H,W) -> (B,feat_dim) unit-norm.

    The head is used for pretraining only, never for retrieval or fine-tuning. A batch norm
    before the linear layer (tried while building the demo) lets the backbone shrink the
    spread of its pooled features at will, since the head rescales it; the backbone then
    fine-tunes poorly (training loss stayed near chance on the demo).
    """

    def __init__(self, backbone: Backbone, feat_dim: int | None):
        super().__init__()
        self.backbone = backbone
        # None: the backbone's raw pooled features, as upstream BestJuly/IIC feeds its banks.
        self.head = nn.Linear(backbone.out_dim, feat_dim) if feat_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            return self.backbone(x)
        return F.normalize(self.head(self.backbone(x)), dim=1)


def build_encoder(config: dict[str, Any]) -> Encoder:
    """The encoder a checkpoint's config describes: with a projection head unless ``projection_head`` is false."""
    head = config.get(
        "projection_head", True
    )  # False for methods fed raw features (train.methods); older configs had one
    return Encoder(build_backbone(config["arch"], config["width"]), config["feat_dim"] if head else None)


class CheckpointFormatError(InputError, ValueError):
    """A checkpoint written in another format version: rerun the stage that wrote it."""


def checkpoint_bytes(checkpoint: dict[str, Any]) -> bytes:
    """The serialised checkpoint: identical weights and config give identical bytes.

    ``torch.save`` to a path names the zip's inner folder after the file, and the atomic
    write's temporary name is random; saving to memory names it ``archive`` every time, so
    DVC sees the same hash on every machine and after an exact resume.
    """
    buffer = io.BytesIO()
    torch.save(_canonical({"format": FORMAT, **checkpoint}), buffer)
    return buffer.getvalue()


def _canonical(obj: Any) -> Any:
    """The same structure with every string interned.

    Pickle writes a string once per *object*: curves carried over from a resume state hold
    other string objects than freshly built rows, and the bytes would differ although the
    values do not. Interning makes equal strings one object, so equal values pickle alike.
    """
    if isinstance(obj, dict):
        # .copy() keeps the type (a scheduler's Counter of milestones, a state dict's OrderedDict);
        # a constructor would not: Counter(pairs) counts the pairs.
        copy = obj.copy()
        copy.clear()
        for key, value in obj.items():
            copy[_canonical(key)] = _canonical(value)
        if hasattr(obj, "_metadata"):  # a module state dict: its per-module versions
            copy._metadata = _canonical(obj._metadata)  # type: ignore[attr-defined]
        return copy
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_canonical(v) for v in obj)
    if isinstance(obj, str):
        return sys.intern(obj)
    return obj


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Atomic save: a run killed while saving keeps the previous checkpoint."""
    write_bytes(path, checkpoint_bytes(checkpoint))


BACKBONE_PREFIX = "backbone."


def backbone_state(encoder_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``backbone.*`` tensors of an encoder state dict, prefix removed, contiguous (safetensors
    needs it): what fine-tuning and the export load. The projection head (``head.*``) is left out."""
    return {
        k.removeprefix(BACKBONE_PREFIX): v.contiguous()
        for k, v in encoder_state.items()
        if k.startswith(BACKBONE_PREFIX)
    }


def load_backbone_strict(backbone: Backbone, encoder_state: dict[str, torch.Tensor]) -> None:
    """Load the ``backbone.*`` part of an encoder state dict into ``backbone``; any mismatch (a key
    besides the head's, a missing key, another shape) is an InputError: the pretrained weights
    are of another backbone than the one being built."""
    leftover = sorted(k for k in encoder_state if not k.startswith(BACKBONE_PREFIX) and not k.startswith("head."))
    if leftover:
        raise InputError(f"the pretrained encoder has keys no backbone has: {leftover[:3]}; rerun `dvc repro pretrain`")
    try:
        backbone.load_state_dict(backbone_state(encoder_state), strict=True)
    except RuntimeError as exc:  # torch lists every missing, unexpected or misshapen key
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[1:3]) if len(first) > 1 else first[0]
        raise InputError(
            f"the pretrained encoder does not fit a {type(backbone).__name__} of this config: {detail[:300]}"
        ) from exc


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if checkpoint.get("format") != FORMAT:
        raise CheckpointFormatError(
            f"{path}: checkpoint format {checkpoint.get('format')!r}, this code reads format {FORMAT}; "
            f"rerun `dvc repro -f pretrain` to rebuild it"
        )
    return checkpoint


def load_encoder(path: Path) -> tuple[dict[str, Any], Encoder]:
    """(config, Encoder) rebuilt from a pretraining checkpoint."""
    checkpoint = load_checkpoint(path)
    encoder = build_encoder(checkpoint["config"])
    encoder.load_state_dict(checkpoint["encoder"], strict=True)
    return checkpoint["config"], encoder
