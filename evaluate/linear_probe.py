"""A linear probe: multinomial logistic regression on frozen, standardised features.

The objective is convex (cross-entropy plus an L2 penalty on the weights, not the bias), so
full-batch L-BFGS from zero reaches the one optimum whatever the seed: the probe measures the
features, not an optimiser's luck. Its weight decay is chosen on held-out validation groups of
the train split only; the test split is scored once, by the probe refitted on the whole train split.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class LinearProbe:
    """mean, std: (D,) of the fit features; weight: (C,D); bias: (C,). Float64."""

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """(N,D) -> (N,C) logits."""
        z = (features.double() - self.mean) / self.std
        return z @ self.weight.T + self.bias


def probe_objective(
    z: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, weight_decay: float
) -> torch.Tensor:
    """Mean cross-entropy of (N,D) standardised features plus weight_decay / 2 * ||weight||^2."""
    return F.cross_entropy(z @ weight.T + bias, labels) + 0.5 * weight_decay * weight.pow(2).sum()


def fit_linear_probe(
    features: torch.Tensor, labels: torch.Tensor, n_classes: int, weight_decay: float, max_iter: int
) -> LinearProbe:
    """Fit on (N,D) features and (N,) labels: standardise by their own mean and std, then
    minimise ``probe_objective`` by L-BFGS (strong Wolfe line search) from zero weights."""
    x = features.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)  # a constant feature: left at 0
    z = (x - mean) / std
    weight = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = probe_objective(z, labels, weight, bias, weight_decay)
        loss.backward()
        return loss

    optimizer.step(closure)
    return LinearProbe(mean, std, weight.detach(), bias.detach())


def choose_weight_decay(
    fit: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    n_classes: int,
    weight_decays: list[float],
    max_iter: int,
) -> tuple[float, dict[float, float]]:
    """The weight decay of best validation accuracy and every candidate's accuracy.

    fit, val: (features (N,D), labels (N,)). Ties go to the larger weight decay: the simpler
    model, which a small validation part cannot tell apart from the more flexible one.
    """
    accuracy = {}
    for wd in weight_decays:
        probe = fit_linear_probe(fit[0], fit[1], n_classes, wd, max_iter)
        accuracy[wd] = (probe.scores(val[0]).argmax(1) == val[1]).double().mean().item()
    best = max(weight_decays, key=lambda wd: (accuracy[wd], wd))
    return best, accuracy
