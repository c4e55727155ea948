"""Backbones behind a registry: name -> factory(width) returning a ``Backbone``."""

from __future__ import annotations

from collections.abc import Callable

from train.models.backbone import Backbone
from train.models.c3d import c3d
from train.models.inception3d import i3d, s3d
from train.models.r2plus1d import r21d
from train.models.resnet3d import r3d, r3d18, r21d_tv

BACKBONES: dict[str, Callable[[int], Backbone]] = {
    "r3d": r3d,
    "r21d": r21d,  # the paper's (VCOP's); r21d_tv is torchvision's, which export can load into torchvision
    "r21d_tv": r21d_tv,
    "c3d": c3d,
    "r3d18": r3d18,
    "i3d": i3d,
    "s3d": s3d,
}


def build_backbone(arch: str, width: int) -> Backbone:
    if arch not in BACKBONES:
        raise KeyError(f"unknown backbone {arch!r}; known: {', '.join(BACKBONES)}")
    return BACKBONES[arch](width)
