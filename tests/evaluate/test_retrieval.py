from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluate.retrieval import merge_features, topk_accuracy


def test_hand_built_gallery_with_known_answers():
    # Gallery: 4 videos on the axes; labels 0, 1, 2, 3.
    gallery = torch.eye(4)
    gallery_labels = torch.tensor([0, 1, 2, 3])
    queries = torch.tensor(
        [
            [1.0, 0.1, 0.0, 0.0],  # nearest: video 0 (label 0) -> hit at k=1
            [0.0, 1.0, 0.5, 0.0],  # nearest: 1, then 2; label 2 -> hit only from k=2
            [0.0, 0.1, 0.2, 1.0],  # order 3, 2, 1, 0; label 0 -> hit only at k=4
        ]
    )
    labels = torch.tensor([0, 2, 0])
    result = topk_accuracy(queries, labels, gallery, gallery_labels, [1, 2, 3, 4])
    assert result == pytest.approx({"top1": 1 / 3, "top2": 2 / 3, "top3": 2 / 3, "top4": 1.0})


def test_matches_a_brute_force_loop_and_counts_every_query(rng):
    q, g, d, classes = 37, 53, 16, 5  # odd sizes: nothing must be dropped to fill a batch
    queries, gallery = rng.normal(size=(q, d)), rng.normal(size=(g, d))
    q_labels, g_labels = rng.integers(0, classes, q), rng.integers(0, classes, g)
    ks = [1, 5, 10, 20, 50]
    fast = topk_accuracy(
        torch.tensor(queries), torch.tensor(q_labels), torch.tensor(gallery), torch.tensor(g_labels), ks
    )
    for k in ks:
        hits = 0
        for i in range(q):
            sims = [queries[i] @ gallery[j] / np.linalg.norm(queries[i]) / np.linalg.norm(gallery[j]) for j in range(g)]
            nearest = sorted(range(g), key=lambda j: -sims[j])[:k]
            hits += any(g_labels[j] == q_labels[i] for j in nearest)
        assert fast[f"top{k}"] == pytest.approx(hits / q)


def test_merge_concatenates_unit_features():
    merged = merge_features(np.array([[3.0, 4.0]]), np.array([[0.0, 2.0, 0.0]]))
    np.testing.assert_allclose(merged, [[0.6, 0.8, 0.0, 1.0, 0.0]])
