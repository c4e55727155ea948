"""SimCLR (Chen et al. 2020) across two views, in-batch NT-Xent, with IIC's intra-negatives.

Every clip of the (global) batch is embedded in both views, z1 and z2 (G = global batch).
For anchor z1[i] the logits are, divided by the temperature, with label 0:

    [ z1[i] . z2[i] (positive: the other view of its video),
      z1[i] . z1[j], j != i (G-1),  z1[i] . z2[j], j != i (G-1)   (the rest of the batch),
      z1[i] . n1[j], z1[i] . n2[j], all j (2G: every intra-negative of the batch, its own included) ]

-> (B, 4G-1) with intra-negatives, (B, 2G-1) without; symmetric for z2. Identical features
give log(4G-1) and log(2G-1). Under DDP the negatives span the global batch: embeddings are
gathered with gradients (torch.distributed.nn.functional.all_gather); anchors are this
rank's clips.
"""

from __future__ import annotations

import torch
from torch import nn

from train.distributed import gather_with_grad
from train.objective import Encode, MakeNegative


def ntxent_logits(
    anchor: torch.Tensor,
    own: torch.Tensor,
    other: torch.Tensor,
    intra: torch.Tensor | None,
    offset: int,
    temperature: float,
) -> torch.Tensor:
    """Logits of the anchors of one view, positive first.

    anchor: (B,D) this rank's embeddings of this view; own: (G,D) the global batch of this
    view (anchor = own[offset:offset+B]); other: (G,D) the other view; intra: (G',D) every
    intra-negative of the batch, or None. Returns (B, 2G-1[+G']).
    """
    b, g = anchor.shape[0], own.shape[0]
    rows = torch.arange(b, device=anchor.device) + offset  # each anchor's global index
    sim_own = anchor @ own.T  # (B,G)
    sim_other = anchor @ other.T  # (B,G)
    positive = sim_other.gather(1, rows.unsqueeze(1))  # (B,1)
    keep = torch.ones(b, g, dtype=torch.bool, device=anchor.device)
    keep[torch.arange(b, device=anchor.device), rows] = False  # neither itself nor its positive
    parts = [positive, sim_own[keep].view(b, g - 1), sim_other[keep].view(b, g - 1)]
    if intra is not None:
        parts.append(anchor @ intra.T)  # (B,G')
    return torch.cat(parts, dim=1) / temperature


class SimCLRObjective(nn.Module):
    """No state: ``logits`` as in the module docstring."""

    def __init__(self, temperature: float, intra_neg: bool):
        super().__init__()
        self.temperature, self.intra_neg = temperature, intra_neg

    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        n1: torch.Tensor | None = None,
        n2: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z1, z2: (B,D) unit-norm embeddings of this rank's clips; n1, n2: their intra-negatives."""
        all1, offset = gather_with_grad(z1)
        all2, _ = gather_with_grad(z2)
        intra = None
        if self.intra_neg:
            assert n1 is not None and n2 is not None, "intra_neg: the intra-negatives' embeddings are needed"
            intra = torch.cat([gather_with_grad(n1)[0], gather_with_grad(n2)[0]])
        logits1 = ntxent_logits(z1, all1, all2, intra, offset, self.temperature)  # (B,2G-1[+2G])
        logits2 = ntxent_logits(z2, all2, all1, intra, offset, self.temperature)
        return logits1, logits2, torch.zeros(z1.shape[0], dtype=torch.long, device=z1.device)

    def after_step(self, encoder: nn.Module) -> None:
        """Nothing to update: SimCLR has no state."""

    def logits(
        self,
        encode: Encode,
        x1: torch.Tensor,
        x2: torch.Tensor,
        index: torch.Tensor,
        generator: torch.Generator,
        make_negative: MakeNegative | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if make_negative is not None:  # one forward per view, clips and intra-negatives together
            z1, n1 = encode(torch.cat([x1, make_negative(x1, generator)])).chunk(2)
            z2, n2 = encode(torch.cat([x2, make_negative(x2, generator)])).chunk(2)
            return self(z1, z2, n1, n2)
        return self(encode(x1), encode(x2))
