"""Weighted k-nearest-neighbour classification on frozen features (Wu et al. 2018, InstDisc).

Each test video's k most cosine-similar train videos vote for their class with weight
exp(s / tau): close neighbours count far more than distant ones, and tau sets how much more
(tau -> 0: the nearest neighbour alone; tau -> inf: a plain majority of the k). The defaults in
params.yaml (k 20, tau 0.07) are DINO's and solo-learn's online kNN; InstDisc used k 200 with
the same tau on ImageNet's 1.28M images.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def knn_class_scores(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    gallery_labels: torch.Tensor,
    n_classes: int,
    k: int,
    temperature: float,
) -> torch.Tensor:
    """(Q,D) queries, (G,D) gallery, (G,) labels -> (Q,C) summed vote weights per class.

    The k most similar gallery rows (all of them when G < k) vote exp(cosine / temperature), each
    query's votes scaled by one positive factor: exp((s - s_max) / temperature), with s_max its
    nearest neighbour's similarity. The ranking of classes is that of exp(s / t), but nothing
    overflows and the nearest neighbour always weighs 1, so at any temperature some vote counts
    (exp((s - 1) / t) underflowed to 0 for every neighbour of a query whose nearest was far,
    and an all-zero vote chose class 0).
    """
    similarity = F.normalize(queries.float(), dim=1) @ F.normalize(gallery.float(), dim=1).T  # (Q,G)
    top_similarity, top_index = similarity.topk(min(k, gallery.shape[0]), dim=1)  # (Q,k), descending
    weights = ((top_similarity - top_similarity[:, :1]) / temperature).exp()
    return torch.zeros(len(queries), n_classes).scatter_add_(1, gallery_labels[top_index], weights)
