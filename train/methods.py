"""Contrastive methods behind one interface: name -> builder of an objective module.

Every objective has ``logits(encode, x1, x2, index, generator, make_negative)`` returning
(logits view 1, logits view 2, labels) with the positive at column 0 (cross-entropy is the
loss); the layout of each is in its module's docstring (``train/contrast.py`` for cmc,
``train/moco.py``, ``train/simclr.py``). ``make_negative`` is None without intra-negatives.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.params import PretrainParams
from train.contrast import IICObjective
from train.moco import MoCoObjective
from train.simclr import SimCLRObjective


def _cmc(encoder: nn.Module, n_videos: int, p: PretrainParams, global_batch: int, g: torch.Generator) -> nn.Module:
    if p.nce_k > n_videos - 1:
        raise ConfigError(f"pretrain.nce_k: {p.nce_k} negatives but only {n_videos - 1} other train videos; "
                          f"use at most {n_videos - 1}")
    return IICObjective(n_videos, p.feat_dim, p.nce_k, p.nce_t, p.nce_m, p.intra_neg, g)


def _moco(encoder: nn.Module, n_videos: int, p: PretrainParams, global_batch: int, g: torch.Generator) -> nn.Module:
    if p.nce_k < global_batch:
        raise ConfigError(f"pretrain.nce_k: a MoCo queue of {p.nce_k} keys cannot take a batch of {global_batch}")
    return MoCoObjective(encoder, p.feat_dim, p.nce_k, p.nce_t, p.moco_m, p.intra_neg, g)


def _simclr(encoder: nn.Module, n_videos: int, p: PretrainParams, global_batch: int, g: torch.Generator) -> nn.Module:
    return SimCLRObjective(p.nce_t, p.intra_neg)  # in-batch: nce_k and nce_m are not used


# builder(encoder, train videos, pretrain params, global batch size, generator of the initial state)
METHODS: dict[str, Callable[[nn.Module, int, PretrainParams, int, torch.Generator], nn.Module]] = {
    "cmc": _cmc,
    "moco": _moco,
    "simclr": _simclr,
}


def build_objective(encoder: nn.Module, n_videos: int, p: PretrainParams, global_batch: int,
                    generator: torch.Generator) -> nn.Module:
    """The objective of ``p.method``; its size checks fail with the key's name."""
    return METHODS[p.method](encoder, n_videos, p, global_batch, generator)
