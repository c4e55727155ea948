import math

import pytest
import torch

from evaluate.knn import knn_class_scores


def _unit(*angles_deg):
    """2-D unit vectors at these angles: cosine similarities are known exactly."""
    a = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([a.cos(), a.sin()], dim=1)


def test_votes_are_exp_similarity_over_temperature_summed_per_class():
    query = _unit(0)
    gallery = _unit(10, 20, 60, 170)  # cosines 0.985, 0.940, 0.5, -0.985
    labels = torch.tensor([0, 1, 1, 2])
    t = 0.5
    scores = knn_class_scores(query, gallery, labels, 3, k=3, temperature=t)
    cos = torch.cos(torch.tensor([10.0, 20.0, 60.0]) * math.pi / 180)
    expected = torch.tensor([cos[0] / t, math.log(math.exp(cos[1] / t) + math.exp(cos[2] / t)), -math.inf]).exp()
    # Rescaled by the common factor exp(-1/t): the same ranking and ratios.
    assert torch.allclose(scores[0] / scores[0].sum(), expected / expected.sum(), atol=1e-6)
    assert scores[0, 2] == 0  # the 4th neighbour is outside k = 3


def test_temperature_trades_nearest_against_majority():
    query = _unit(0)
    gallery = _unit(5, 30, 32)  # one close neighbour of class 0, two farther ones of class 1
    labels = torch.tensor([0, 1, 1])
    sharp = knn_class_scores(query, gallery, labels, 2, k=3, temperature=0.01).argmax(1)
    flat = knn_class_scores(query, gallery, labels, 2, k=3, temperature=100.0).argmax(1)
    assert sharp.item() == 0 and flat.item() == 1


def test_k_of_one_is_nearest_neighbour_retrieval_and_k_past_the_gallery_takes_all():
    torch.manual_seed(0)
    queries, gallery = torch.randn(50, 8), torch.randn(30, 8)
    labels = torch.randint(0, 4, (30,))
    nearest = (torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(gallery, dim=1).T).argmax(
        1
    )
    scores = knn_class_scores(queries, gallery, labels, 4, k=1, temperature=0.07)
    assert torch.equal(scores.argmax(1), labels[nearest])
    everything = knn_class_scores(queries, gallery, labels, 4, k=1000, temperature=1e6)
    counts = torch.bincount(labels, minlength=4).float()
    assert torch.allclose(
        everything / everything.sum(1, keepdim=True), (counts / counts.sum()).expand(50, 4), atol=1e-4
    )


@pytest.mark.parametrize("t", [0.01, 0.07])
def test_small_temperatures_do_not_overflow(t):
    scores = knn_class_scores(_unit(0), _unit(0, 1), torch.tensor([0, 1]), 2, k=2, temperature=t)
    assert torch.isfinite(scores).all() and scores[0, 0] > scores[0, 1] > 0


@pytest.mark.parametrize("t", [1e-4, 1e-6])
def test_a_tiny_temperature_is_the_nearest_neighbour_even_when_every_neighbour_is_far(t):
    """exp((s - 1)/t) underflowed to 0 for every neighbour of a query whose nearest had cosine
    0.9: the all-zero vote then picked class 0, and kNN top-1 came out 0.833 instead of 1."""
    query = _unit(0, 180)
    gallery = _unit(25, 60, 205, 240)  # query 0: nearest class 2 (cos 0.906); query 1: nearest class 1
    labels = torch.tensor([2, 0, 1, 0])
    scores = knn_class_scores(query, gallery, labels, 3, k=4, temperature=t)
    assert scores.argmax(1).tolist() == [2, 1]
    assert torch.isfinite(scores).all() and (scores.max(1).values == 1).all()  # the nearest weighs 1
