"""MoCo (He et al. 2020) across two views, with IIC's intra-negatives.

A momentum key encoder (an EMA of the shared encoder, ``pretrain.moco_m``) embeds the clips
of both views and their intra-negatives; a FIFO queue of K past keys per view and one per
view's intra-negatives provide the negatives. For view 1 the logits are, divided by the
temperature, with label 0:

    [ q1 . k2 (positive: the view-2 key of the same video),
      q1 . queue2 (K negatives),
      q1 . kn1 (the key of the query's own intra-negative),
      q1 . queue_intra1 (K past intra-negative keys) ]           -> (B, 2K+2)

symmetric for view 2; without intra-negatives [positive, K negatives] -> (B, K+1). Identical
features give log(2K+2) and log(K+1). Queries come from the shared encoder (with gradients);
keys never carry gradients. Under DDP the queues receive the keys of every rank, so they stay
identical on all ranks.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from train.distributed import gather_from_ranks
from train.objective import Encode, MakeNegative, nce_logits


class KeyQueue(nn.Module):
    """(K,D) unit-norm keys, oldest overwritten first."""

    keys: torch.Tensor  # (K,D) buffer
    pointer: torch.Tensor  # () long buffer

    def __init__(self, k: int, dim: int, generator: torch.Generator):
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(k, dim, generator=generator), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Write (N,D) keys at the pointer (wrapping around), N <= K."""
        n, k = keys.shape[0], self.keys.shape[0]
        rows = (self.pointer + torch.arange(n, device=keys.device)) % k
        self.keys[rows] = keys.detach().to(self.keys.dtype)
        self.pointer.copy_((self.pointer + n) % k)


class MoCoObjective(nn.Module):
    """Key encoder and queues; ``logits`` as in the module docstring."""

    def __init__(
        self,
        encoder: nn.Module,
        dim: int,
        k: int,
        temperature: float,
        momentum: float,
        intra_neg: bool,
        generator: torch.Generator,
    ):
        super().__init__()
        self.temperature, self.momentum, self.intra_neg = temperature, momentum, intra_neg
        self.key_encoder = copy.deepcopy(encoder)
        self.key_encoder.requires_grad_(False)
        self.queue1, self.queue2 = KeyQueue(k, dim, generator), KeyQueue(k, dim, generator)
        if intra_neg:
            self.intra1, self.intra2 = KeyQueue(k, dim, generator), KeyQueue(k, dim, generator)

    def after_step(self, encoder: nn.Module) -> None:
        """After each optimizer step: the key encoder follows the query encoder."""
        self.momentum_update(encoder)

    @torch.no_grad()
    def momentum_update(self, encoder: nn.Module) -> None:
        """key <- m * key + (1 - m) * query, parameter by parameter (buffers copied)."""
        for key, query in zip(self.key_encoder.parameters(), encoder.parameters(), strict=True):
            key.mul_(self.momentum).add_(query.detach(), alpha=1 - self.momentum)
        for key_buffer, query_buffer in zip(self.key_encoder.buffers(), encoder.buffers(), strict=True):
            key_buffer.copy_(query_buffer)

    def forward(
        self,
        q1: torch.Tensor,
        q2: torch.Tensor,
        k1: torch.Tensor,
        k2: torch.Tensor,
        kn1: torch.Tensor | None = None,
        kn2: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q*, k*, kn*: (B,D) unit-norm queries, keys and intra-negative keys. Reads the queues, then
        enqueues this batch's keys (gathered from every rank)."""
        b = q1.shape[0]
        # Copies: autograd keeps the negatives for the backward pass, and the push below
        # overwrites the queues in place.
        queue1, queue2 = self.queue1.keys.clone(), self.queue2.keys.clone()  # (K,D)
        intra1 = intra2 = None
        if self.intra_neg:
            assert kn1 is not None and kn2 is not None, "intra_neg: the intra-negatives' keys are needed"
            intra1 = torch.cat([kn1.unsqueeze(1), self.intra1.keys.clone().expand(b, -1, -1)], dim=1)  # (B,1+K,D)
            intra2 = torch.cat([kn2.unsqueeze(1), self.intra2.keys.clone().expand(b, -1, -1)], dim=1)
        logits1 = nce_logits(q1, k2, queue2.expand(b, -1, -1), intra1, self.temperature)  # (B,1+K[+1+K])
        logits2 = nce_logits(q2, k1, queue1.expand(b, -1, -1), intra2, self.temperature)
        self.queue1.push(gather_from_ranks(k1.detach()))
        self.queue2.push(gather_from_ranks(k2.detach()))
        if self.intra_neg:
            assert kn1 is not None and kn2 is not None
            self.intra1.push(gather_from_ranks(kn1.detach()))
            self.intra2.push(gather_from_ranks(kn2.detach()))
        return logits1, logits2, torch.zeros(b, dtype=torch.long, device=q1.device)

    def logits(
        self,
        encode: Encode,
        x1: torch.Tensor,
        x2: torch.Tensor,
        index: torch.Tensor,
        generator: torch.Generator,
        make_negative: MakeNegative | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q1, q2 = encode(x1), encode(x2)  # (B,D) queries, one forward per view
        with torch.no_grad():
            k1, k2 = encode(x1, self.key_encoder), encode(x2, self.key_encoder)  # (B,D) keys
            kn1 = kn2 = None
            if make_negative is not None:
                kn1 = encode(make_negative(x1, generator), self.key_encoder)
                kn2 = encode(make_negative(x2, generator), self.key_encoder)
        return self(q1, q2, k1, k2, kn1, kn2)
