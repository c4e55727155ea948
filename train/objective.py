"""What every contrastive method provides (the ``Objective`` protocol) and the pieces they share.

A method (``train/methods.py``: cmc, cmc_upstream, moco, simclr) is an ``nn.Module`` with two calls:
``logits`` turns the clips of both views into (logits view 1, logits view 2, labels) with the
positive at column 0, so that cross-entropy is the loss; ``after_step`` runs after each
optimizer step (MoCo's key encoder follows there). The layout of each method's logits is in
its module's docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

# encode(clips, module=the shared encoder): (N,3,T,H,W) -> features (N,D) float, under the
# runtime's autocast (MoCo passes its key encoder as ``module``). Unit-norm after the projection
# head, except for the methods of ``RAW_FEATURE_METHODS`` (cmc_upstream: the backbone's raw
# pooled features, as upstream feeds its banks).
Encode = Callable[..., torch.Tensor]
# make_negative: clips (B,C,T,H,W) -> their intra-negatives, from an explicit generator.
MakeNegative = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Objective(Protocol):
    """The interface pretraining calls; every method of ``train/methods.py`` implements it."""

    def logits(
        self,
        encode: Encode,
        x1: torch.Tensor,
        x2: torch.Tensor,
        index: torch.Tensor,
        generator: torch.Generator,
        make_negative: MakeNegative | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x1, x2: (B,3,T,H,W) clips of view 1 and 2; index: (B,) their videos' train positions;
        make_negative: None without intra-negatives. Returns (B,L) logits per view and (B,) labels."""
        ...

    def after_step(self, encoder: nn.Module) -> None:
        """Called after each optimizer step with the (unwrapped or DDP) encoder."""
        ...


def nce_logits(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    intra: torch.Tensor | None,
    temperature: float,
) -> torch.Tensor:
    """Logits of one view, positive first.

    anchor: (B,D) unit-norm features of this view.
    positive: (B,D) rows of the other view for the same videos (bank rows or keys).
    negatives: (B,K,D) rows of the other view for other videos.
    intra: (B,K',D) intra-negatives (the clip's own first), or None for the plain method.
    Returns (B, 1+K[+K']).
    """
    pos = (anchor * positive).sum(dim=1, keepdim=True)  # (B,1)
    neg = torch.bmm(negatives, anchor.unsqueeze(2)).squeeze(2)  # (B,K)
    parts = [pos, neg]
    if intra is not None:
        parts.append(torch.bmm(intra, anchor.unsqueeze(2)).squeeze(2))  # (B,K')
    return torch.cat(parts, dim=1) / temperature
