"""Recognition metrics: clip and video top-k accuracy, and the confusion matrix."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)


def informative_ks(ks: list[int], limit: int, setting: str, counted: str) -> list[int]:
    """The k of ``ks`` below ``limit``: a top-k over ``limit`` classes (or gallery videos) with k at
    least ``limit`` is right for every query by construction, so it is left out of the metrics,
    with a log line naming the ``setting`` and what ``limit`` counts (``counted``)."""
    kept = [k for k in ks if k < limit]
    if len(kept) < len(ks):
        dropped = "/".join(str(k) for k in ks if k >= limit)
        log.info("%s: leaving out top-%s, true by construction with %d %s", setting, dropped, limit, counted)
    return kept


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(N,C) scores, (N,) labels -> (N,) bool: the label is among the k highest scores."""
    k = min(k, scores.shape[1])
    return (scores.topk(k, dim=1).indices == labels.unsqueeze(1)).any(dim=1)


# How a video's score is made from its clips' logits (finetune.clip_scores): the mean of the
# clips' softmax probabilities, or the mean of their logits (upstream BestJuly/IIC's rule). They
# rank differently when clips disagree with unequal confidence: a very confident clip weighs
# more in the mean of logits.
CLIP_SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": lambda logits: logits.softmax(1),
    "logits": lambda logits: logits,
}


def video_scores(clip_scores: torch.Tensor, video_index: torch.Tensor, n_videos: int) -> torch.Tensor:
    """Mean of each video's clip scores: (N,C) clip scores (a ``CLIP_SCORES`` rule of the logits),
    (N,) video of each clip -> (V,C)."""
    sums = torch.zeros(n_videos, clip_scores.shape[1]).index_add_(0, video_index, clip_scores)
    counts = torch.zeros(n_videos).index_add_(0, video_index, torch.ones(len(video_index)))
    if (counts == 0).any():
        log.warning("%d videos have no evaluated clip", int((counts == 0).sum()))
    return sums / counts.clamp(min=1).unsqueeze(1)


def confusion_matrix(predicted: torch.Tensor, actual: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C,C) counts, rows actual, columns predicted."""
    return torch.bincount(actual * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
