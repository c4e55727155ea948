"""Method ``cmc_upstream``: upstream BestJuly/IIC's objective (``lib/NCEAverage.py``), exactly.

Beside ``cmc`` (``train/cmc.py``) so that a user can measure what our four deliberate changes
do. Upstream draws one set of rows ``idx`` (B,K+1) uniformly from all N videos, column 0 set to
the clip's own video (so the positive may also be drawn as a negative), and for view 1 the
logits are, divided by the temperature, with label 0:

    [ f1 . bank2[idx]  (the positive, then K rows of the view-2 bank),
      f1 . intra[idx]  (the same rows of the one intra-negative bank: column 0 is the clip's
                        own stored intra-negative, not its current one) ]      -> (B, 2K+2)

and for view 2 [f2 . bank1[idx], f2 . intra[idx]]; without intra-negatives [f . bank[idx]]
-> (B, K+1). The intra-negatives are RGB only (view 1's clip with its time destroyed); the
features are the backbone's raw pooled output (no head, no normalisation: ``RAW_FEATURE_METHODS``);
each bank row is updated as normalize(m * row + (1 - m) * feature), and the banks start from
CMC's uniform rows, not on the sphere. Identical features give log(2K+2) and log(K+1).
"""

from __future__ import annotations

import torch
from torch import nn

from train.cmc import MemoryBank
from train.distributed import gather_from_ranks
from train.objective import Encode, MakeNegative


def draw_with_positive(index: torch.Tensor, n_rows: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(B,) positive rows -> (B,1+K): the positive, then K rows drawn uniformly from all n_rows
    (upstream's AliasMethod over uniform weights), the positive's own row included."""
    draws = torch.randint(n_rows, (index.shape[0], k), generator=generator, device=generator.device)
    return torch.cat([index.unsqueeze(1), draws.to(index.device)], dim=1)


def upstream_logits(
    anchor: torch.Tensor, other_rows: torch.Tensor, intra_rows: torch.Tensor | None, temperature: float
) -> torch.Tensor:
    """anchor (B,D); other_rows, intra_rows (B,1+K,D) bank rows at idx -> (B,1+K[+1+K]) logits."""
    rows = other_rows if intra_rows is None else torch.cat([other_rows, intra_rows], dim=1)
    return torch.bmm(rows, anchor.unsqueeze(2)).squeeze(2) / temperature


class UpstreamCMCObjective(nn.Module):
    """Banks for view 1 and view 2 and, with intra-negatives, one bank of RGB intra-negatives."""

    def __init__(self, n_videos: int, dim: int, k: int, temperature: float, momentum: float, intra_neg: bool,
                 generator: torch.Generator):  # fmt: skip
        super().__init__()
        self.k, self.temperature, self.momentum, self.intra_neg = k, temperature, momentum, intra_neg
        self.view1 = MemoryBank(n_videos, dim, generator, on_sphere=False)
        self.view2 = MemoryBank(n_videos, dim, generator, on_sphere=False)
        if intra_neg:
            self.intra = MemoryBank(n_videos, dim, generator, on_sphere=False)

    def forward(
        self, f1: torch.Tensor, f2: torch.Tensor, index: torch.Tensor, generator: torch.Generator,
        n1: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """f1, f2: (B,D) raw view features; n1: (B,D) raw features of view 1's intra-negatives; index: (B,)."""
        idx = draw_with_positive(index, self.view1.rows.shape[0], self.k, generator)  # (B,1+K)
        intra = self.intra[idx] if self.intra_neg else None  # (B,1+K,D): the same rows
        logits1 = upstream_logits(f1, self.view2[idx], intra, self.temperature)  # (B,1+K[+1+K])
        logits2 = upstream_logits(f2, self.view1[idx], intra, self.temperature)
        all_index = gather_from_ranks(index)
        self.view1.update(all_index, gather_from_ranks(f1.detach()), self.momentum)
        self.view2.update(all_index, gather_from_ranks(f2.detach()), self.momentum)
        if self.intra_neg:
            assert n1 is not None, "intra_neg: the intra-negatives' features are needed"
            self.intra.update(all_index, gather_from_ranks(n1.detach()), self.momentum)
        return logits1, logits2, torch.zeros(f1.shape[0], dtype=torch.long, device=f1.device)

    def after_step(self, encoder: nn.Module) -> None:
        """Nothing to update after the optimizer step: the banks are updated in ``forward``."""

    def logits(
        self, encode: Encode, x1: torch.Tensor, x2: torch.Tensor, index: torch.Tensor,
        generator: torch.Generator, make_negative: MakeNegative | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Three forwards, as upstream: RGB, view 2, and RGB's intra-negatives (the ``Objective`` protocol)."""
        f1, f2 = encode(x1), encode(x2)  # (B,D) each
        n1 = encode(make_negative(x1, generator)) if make_negative is not None else None
        return self(f1, f2, index, generator, n1)
