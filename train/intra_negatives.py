"""Intra-negatives: clips of the same video with their temporal information destroyed.

Pure tensor functions on a whole (B,C,T,H,W) batch at once, on the batch's device, with an
explicit generator (no per-sample Python loop).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def repeat_frame(clips: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random frame per clip repeated T times: (B,C,T,H,W) -> (B,C,T,H,W)."""
    b, _, t = clips.shape[:3]
    frame = torch.randint(t, (b,), generator=generator, device=generator.device).to(clips.device)
    picked = clips[torch.arange(b, device=clips.device), :, frame]  # (B,C,H,W)
    return picked.unsqueeze(2).expand_as(clips).contiguous()


def shuffle_chunks(clips: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Cut each clip into 4 chunks along T and swap two distinct chunks: (B,C,T,H,W) -> same."""
    b, _, t = clips.shape[:3]
    if t % 4:
        raise ValueError(f"shuffle needs a clip length divisible by 4, got {t}")
    chunk = t // 4
    device = generator.device
    first = torch.randint(4, (b,), generator=generator, device=device)
    second = (first + torch.randint(1, 4, (b,), generator=generator, device=device)) % 4  # never equal
    order = torch.arange(4, device=device).repeat(b, 1)  # (B,4)
    rows = torch.arange(b, device=device)
    order[rows, first], order[rows, second] = second, first
    frames = (order.unsqueeze(2) * chunk + torch.arange(chunk, device=device)).reshape(b, t)  # (B,T)
    index = frames.to(clips.device).view(b, 1, t, 1, 1).expand_as(clips)
    return clips.gather(2, index)


INTRA_NEGATIVES: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "repeat": repeat_frame,
    "shuffle": shuffle_chunks,
}
