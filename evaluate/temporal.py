"""Temporal sensitivity: what intra-negatives are meant to change in a clip's features.

IIC's intra-negatives teach the encoder that a clip with its temporal order destroyed is not
the clip. An encoder that learned it gives a clip's altered copies features far from the
clip's own; one blind to time gives them the same feature. Two kinds of measure, per test video:

- **similarity** to an altered copy: the mean cosine similarity between each evaluation clip's
  feature and the feature of the same clip with one frame repeated (``repeat``), its chunks
  shuffled (``shuffle``; both from ``train/intra_negatives.py``) or its frames reversed
  (``reverse``). 1 means the encoder cannot tell them apart; lower is more sensitive to time.
- **arrow of time**: a linear probe on frozen features of forward and time-reversed train clips,
  tested on the test clips: the share of a video's clips whose direction it tells right. 0.5 is
  blind to the direction.

Pure functions on (B,C,T,H,W) clips and an ``encode`` callable, so the known answers of simple
encoders are testable without a trained model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from evaluate.linear_probe import fit_linear_probe
from train.intra_negatives import INTRA_NEGATIVES

Encode = Callable[[torch.Tensor], torch.Tensor]  # (B,C,T,H,W) clips -> (B,D) features
Alter = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # clips -> altered clips, same shape

SIMILARITIES = ("repeat", "shuffle", "reverse")  # the measures' names, in the metrics file's order
ARROW = "arrow"


def reverse_time(clips: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,C,T,H,W) -> the same clips played backwards (the generator is unused: no randomness)."""
    return clips.flip(2)


ALTERATIONS: dict[str, Alter] = {
    "repeat": INTRA_NEGATIVES["repeat"],
    "shuffle": INTRA_NEGATIVES["shuffle"],
    "reverse": reverse_time,
}


@torch.no_grad()
def altered_features(
    encode: Encode, clips: torch.Tensor, alterations: dict[str, Alter], generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """((B,D) features of the clips, {name: (B,D) features of their altered copies}), float32."""
    features = encode(clips).float()
    return features, {name: encode(alter(clips, generator)).float() for name, alter in alterations.items()}


def similarity(features: torch.Tensor, altered: torch.Tensor) -> torch.Tensor:
    """(B,D), (B,D) -> (B,) cosine similarity of each clip's feature and its altered copy's."""
    return F.cosine_similarity(features, altered, dim=1)


def per_video_mean(values: torch.Tensor, video_index: torch.Tensor, n_videos: int) -> torch.Tensor:
    """(N,) clip values and (N,) their videos -> (V,) each video's mean (float64); every video needs a clip."""
    sums = torch.zeros(n_videos, dtype=torch.float64).index_add_(0, video_index, values.double())
    counts = torch.zeros(n_videos, dtype=torch.float64).index_add_(
        0, video_index, torch.ones(len(values), dtype=torch.float64)
    )
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} of {n_videos} videos have no clip")
    return sums / counts


def arrow_of_time_accuracy(
    train_forward: torch.Tensor,
    train_reversed: torch.Tensor,
    test_forward: torch.Tensor,
    test_reversed: torch.Tensor,
    test_videos: torch.Tensor,
    n_videos: int,
    weight_decay: float,
    max_iter: int,
) -> torch.Tensor:
    """(V,) per test video, the share of its clips' directions (forward and reversed) a linear probe
    fitted on the train clips tells right.

    train_*: (N,D) features of the same N train clips played forwards and backwards; test_*:
    (M,D) likewise, ``test_videos``: (M,) each test clip's video. Features that do not depend on
    the direction give both copies one prediction, so exactly one of the two is right: 0.5.
    """
    x = torch.cat([train_forward, train_reversed])
    y = torch.cat([torch.ones(len(train_forward)), torch.zeros(len(train_reversed))]).long()  # 1: forward
    probe = fit_linear_probe(x, y, 2, weight_decay, max_iter)
    forward_right = probe.scores(test_forward).argmax(1) == 1
    reversed_right = probe.scores(test_reversed).argmax(1) == 0
    right = torch.cat([forward_right, reversed_right]).double()
    return per_video_mean(right, torch.cat([test_videos, test_videos]), n_videos)
