"""The models every evaluation sets side by side: the pretrained ones (``pretrain.models``: IIC
and its baseline without intra-negatives) and a random-init encoder of the same architecture.

One place names them, says how the baseline differs from IIC, and which paired differences
the metrics files carry, so that every stage and the report agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pipeline.schema import PretrainParams

IIC = "iic"  # the method as pretrain: configures it
BASELINE = "baseline"  # the same run with pretrain.baseline's keys changed (no intra-negatives)
RANDOM = "random"  # random init: the floor every pretrained model is measured against

# metrics-file key -> (ours, theirs) of a paired difference ours - theirs on the same resampled videos.
# "paired" keeps its name (IIC - random) so that older metrics files and experiments still read.
PAIRS = {"paired": (IIC, RANDOM), "paired_baseline": (IIC, BASELINE)}


def evaluated(pretrained: Sequence[str]) -> list[str]:
    """The models the evaluation stages compare: the pretrained ones, then random init."""
    return [*pretrained, RANDOM]


def pairs_of(models: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The paired differences ``models`` allow: IIC - random always, IIC - baseline when there is one."""
    return {key: pair for key, pair in PAIRS.items() if set(pair) <= set(models)}


def variant_params(p: PretrainParams, model: str) -> PretrainParams:
    """The pretrain section model ``model`` trains with: IIC's as written, the baseline's with
    ``pretrain.baseline``'s keys changed (so it follows every other setting, the method included)."""
    if model == BASELINE:
        return dataclasses.replace(p, intra_neg=p.baseline.intra_neg)
    return p
