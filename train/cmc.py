"""Method ``cmc``: CMC's memory banks with IIC's intra-negatives (softmax InfoNCE over a memory bank).

For view 1 the logits are [positive from the view-2 bank, K negatives from the view-2 bank,
the clip's own intra-negative, K intra-negatives from view 1's intra-negative bank], all
divided by the temperature; the label is 0. Symmetric for view 2. Without intra-negatives
this is CMC: [positive, K negatives]. Identical features give a loss of log(2K+2) and
log(K+1) respectively.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from train.distributed import gather_from_ranks
from train.objective import Encode, MakeNegative, nce_logits


class MemoryBank(nn.Module):
    """(N,D) rows, one per training video, updated with momentum; unit-norm once updated.

    ``on_sphere``: start from CMC's uniform rows projected onto the unit sphere (ours), or from
    the uniform rows themselves, as CMC and upstream BestJuly/IIC do, whose norm is about 1 too.
    """

    rows: torch.Tensor  # (N,D) buffer

    def __init__(self, n: int, dim: int, generator: torch.Generator, on_sphere: bool = True):
        super().__init__()
        std = 1.0 / (dim / 3) ** 0.5  # CMC's initialisation
        rows = torch.rand(n, dim, generator=generator) * 2 * std - std
        self.register_buffer("rows", F.normalize(rows, dim=1) if on_sphere else rows)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return self.rows[index]

    @torch.no_grad()
    def update(self, index: torch.Tensor, features: torch.Tensor, momentum: float) -> None:
        """rows[index] <- normalize(m * rows[index] + (1 - m) * features); other rows untouched."""
        mixed = self.rows[index] * momentum + features.detach().to(self.rows.dtype) * (1 - momentum)
        self.rows[index] = F.normalize(mixed, dim=1)


def draw_negatives(index: torch.Tensor, n_rows: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(B,) positive rows -> (B,K) rows drawn uniformly from the other n_rows - 1 rows.

    CMC draws from all rows; excluding the positive matters on small datasets, where a
    draw of K from N rows would otherwise repeat the positive as a "negative" K/N times.
    """
    draws = torch.randint(n_rows - 1, (index.shape[0], k), generator=generator, device=generator.device)
    draws = draws.to(index.device)
    return draws + (draws >= index.unsqueeze(1)).long()  # skip the positive's own row


class CMCObjective(nn.Module):
    """The ``Objective`` of method cmc (``train/objective.py``). Banks for view 1, view 2 and (with intra-negatives) one intra-negative bank per view.

    ``forward`` returns (logits_view1, logits_view2, labels) and then updates the banks: every
    bank is read before it is written, so a video's positive is never its own current feature.
    """

    def __init__(
        self,
        n_videos: int,
        dim: int,
        k: int,
        temperature: float,
        momentum: float,
        intra_neg: bool,
        generator: torch.Generator,
    ):
        super().__init__()
        self.k, self.temperature, self.momentum, self.intra_neg = k, temperature, momentum, intra_neg
        self.view1 = MemoryBank(n_videos, dim, generator)
        self.view2 = MemoryBank(n_videos, dim, generator)
        if intra_neg:
            self.intra1 = MemoryBank(n_videos, dim, generator)
            self.intra2 = MemoryBank(n_videos, dim, generator)

    def forward(
        self,
        f1: torch.Tensor,
        f2: torch.Tensor,
        index: torch.Tensor,
        generator: torch.Generator,
        n1: torch.Tensor | None = None,
        n2: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """f1, f2: (B,D) unit-norm view features; n1, n2: (B,D) their intra-negatives; index: (B,)."""
        b = f1.shape[0]
        n_rows = self.view1.rows.shape[0]
        negatives = draw_negatives(index, n_rows, self.k, generator)  # (B,K)
        intra1 = intra2 = None
        if self.intra_neg:
            assert n1 is not None and n2 is not None, "intra_neg: the intra-negatives' features are needed"
            intra_index = draw_negatives(index, n_rows, self.k, generator)  # (B,K)
            intra1 = torch.cat([n1.unsqueeze(1), self.intra1[intra_index]], dim=1)  # (B,1+K,D)
            intra2 = torch.cat([n2.unsqueeze(1), self.intra2[intra_index]], dim=1)
        logits1 = nce_logits(f1, self.view2[index], self.view2[negatives], intra1, self.temperature)
        logits2 = nce_logits(f2, self.view1[index], self.view1[negatives], intra2, self.temperature)
        all_index = gather_from_ranks(index)
        self.view1.update(all_index, gather_from_ranks(f1.detach()), self.momentum)
        self.view2.update(all_index, gather_from_ranks(f2.detach()), self.momentum)
        if self.intra_neg:
            assert n1 is not None and n2 is not None
            self.intra1.update(all_index, gather_from_ranks(n1.detach()), self.momentum)
            self.intra2.update(all_index, gather_from_ranks(n2.detach()), self.momentum)
        labels = torch.zeros(b, dtype=torch.long, device=f1.device)
        return logits1, logits2, labels

    def after_step(self, encoder: nn.Module) -> None:
        """Nothing to update after the optimizer step: the banks are updated in ``forward``."""

    def logits(
        self,
        encode: Encode,
        x1: torch.Tensor,
        x2: torch.Tensor,
        index: torch.Tensor,
        generator: torch.Generator,
        make_negative: MakeNegative | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clips of both views -> logits and labels (the ``Objective`` protocol).

        One forward per view, as upstream does, so that batch norm sees one modality at a
        time; a view's clips and their intra-negatives go together (one larger batch).
        """
        n1: torch.Tensor | None = None
        n2: torch.Tensor | None = None
        if make_negative is not None:
            f1, n1 = encode(torch.cat([x1, make_negative(x1, generator)])).chunk(2)
            f2, n2 = encode(torch.cat([x2, make_negative(x2, generator)])).chunk(2)
        else:
            f1, f2 = encode(x1), encode(x2)  # (B,D) each
        return self(f1, f2, index, generator, n1, n2)  # (B,1+K[+1+K]) each
