"""Contrastive methods behind one interface: name -> builder of an objective module.

Every objective implements the ``Objective`` protocol of ``train/objective.py``; the layout of
each one's logits is in its module's docstring (``train/cmc.py``, ``train/cmc_upstream.py``,
``train/moco.py``, ``train/simclr.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.schema import PretrainParams
from train.cmc import CMCObjective
from train.cmc_upstream import UpstreamCMCObjective
from train.moco import MoCoObjective
from train.models import Backbone
from train.simclr import SimCLRObjective


def _cmc(encoder: nn.Module, n_videos: int, p: PretrainParams, global_batch: int, g: torch.Generator) -> nn.Module:
    if p.nce_k > n_videos - 1:
        raise ConfigError(
            f"pretrain.nce_k: {p.nce_k} negatives but only {n_videos - 1} other train videos; "
            f"use at most {n_videos - 1}"
        )
    return CMCObjective(n_videos, p.feat_dim, p.nce_k, p.nce_t, p.nce_m, p.intra_neg, g)


def _cmc_upstream(
    encoder: nn.Module, n_videos: int, p: PretrainParams, global_batch: int, g: torch.Generator
) -> nn.Module:
    # The banks hold the backbone's raw pooled features (RAW_FEATURE_METHODS): feat_dim is not used.
    out_dim = cast(Backbone, encoder.backbone).out_dim
    return UpstreamCMCObjective(n_videos, out_dim, p.nce_k, p.nce_t, p.nce_m, p.intra_neg, g)


def _moco(encoder: nn.Module, n_videos: int, p: PretrainParams, global_batch: int, g: torch.Generator) -> nn.Module:
    if p.nce_k < global_batch:
        raise ConfigError(f"pretrain.nce_k: a MoCo queue of {p.nce_k} keys cannot take a batch of {global_batch}")
    return MoCoObjective(encoder, p.feat_dim, p.nce_k, p.nce_t, p.moco_m, p.intra_neg, g)


def _simclr(encoder: nn.Module, n_videos: int, p: PretrainParams, global_batch: int, g: torch.Generator) -> nn.Module:
    return SimCLRObjective(p.nce_t, p.intra_neg)  # in-batch: nce_k and nce_m are not used


# builder(encoder, train videos, pretrain params, global batch size, generator of the initial state)
METHODS: dict[str, Callable[[nn.Module, int, PretrainParams, int, torch.Generator], nn.Module]] = {
    "cmc": _cmc,
    "cmc_upstream": _cmc_upstream,
    "moco": _moco,
    "simclr": _simclr,
}


# Methods fed the backbone's raw pooled features (no projection head, no normalisation), as upstream.
RAW_FEATURE_METHODS = frozenset({"cmc_upstream"})


def build_objective(
    encoder: nn.Module, n_videos: int, p: PretrainParams, global_batch: int, generator: torch.Generator
) -> nn.Module:
    """The objective of ``p.method``; its size checks fail with the key's name."""
    return METHODS[p.method](encoder, n_videos, p, global_batch, generator)
