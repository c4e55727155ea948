"""Video retrieval: test videos query train videos by cosine similarity; top-k accuracy."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def topk_neighbours(queries: torch.Tensor, gallery: torch.Tensor, k: int) -> torch.Tensor:
    """(Q,D), (G,D) -> (Q,k) gallery indices by decreasing cosine similarity."""
    similarity = F.normalize(queries, dim=1) @ F.normalize(gallery, dim=1).T  # (Q,G)
    return similarity.topk(min(k, gallery.shape[0]), dim=1).indices


def topk_hits(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    gallery: torch.Tensor,
    gallery_labels: torch.Tensor,
    ks: list[int],
) -> dict[str, torch.Tensor]:
    """Per query, whether one of its k nearest gallery videos has its class: {"top1": (Q,) bool, ...}.

    Every query counts: Q results for Q queries, nothing dropped or padded.
    """
    neighbours = topk_neighbours(queries, gallery, max(ks))  # (Q,kmax)
    hits = gallery_labels[neighbours] == query_labels.unsqueeze(1)  # (Q,kmax)
    return {f"top{k}": hits[:, :k].any(dim=1) for k in ks}


def topk_accuracy(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    gallery: torch.Tensor,
    gallery_labels: torch.Tensor,
    ks: list[int],
) -> dict[str, float]:
    """Share of queries with at least one of their k nearest gallery videos in their class:
    {"top1": ..., "top5": ...} for each k in ``ks``."""
    hits = topk_hits(queries, query_labels, gallery, gallery_labels, ks)
    return {name: h.float().mean().item() for name, h in hits.items()}


def merge_features(rgb: np.ndarray, view2: np.ndarray) -> np.ndarray:
    """The paper's ``merge``: concatenate the (L2-normalised) RGB and view-2 features."""

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return np.concatenate([unit(rgb), unit(view2)], axis=1)
