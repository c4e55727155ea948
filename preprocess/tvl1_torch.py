"""TV-L1 optical flow in PyTorch, batched over frame pairs, on a GPU or the CPU.

The same model, parameters and numerical scheme as OpenCV's ``cv2.optflow.DualTVL1OpticalFlow``
(Zach, Pock & Bischof 2007 in Sánchez Pérez's formulation), so that ``motion.backend: torch``
writes the flow ``motion.backend: opencv`` would, up to float rounding:

- pyramid: ``nscales`` levels, each ``scale_step`` times the previous (bilinear resize with
  OpenCV's rounding of the size and its pixel-centre mapping), stopping before a side < 16;
- per level, the dual variables start at zero; ``warps`` times: warp I1 and its centred
  gradient by the current flow (bicubic, Keys a = -0.75, sample positions rounded to 1/32 px
  and zero outside the image, as ``cv2.remap`` does), then up to ``outer_iterations`` x
  (median filter of the flow, ``inner_iterations`` x (thresholding step V, primal step U,
  dual step P)); a pair stops iterating within a warp once its flow moves by less than
  ``epsilon`` per pixel (sum of squared updates <= epsilon^2 * H * W), as OpenCV does per call;
- the flow is upsampled bilinearly to the next finer level and scaled by 1 / scale_step;
- with ``use_initial_flow`` the coarsest level starts from the given flow, downsampled
  level by level and scaled by scale_step (OpenCV overwrites the finer levels' copies).

Every tensor is (B,H,W) float32, B the frame pairs of one call; a converged pair is frozen
by masks while the others iterate, so one call equals B separate OpenCV calls.
Not supported (refused by the params check for this backend): ``gamma`` != 0, OpenCV's
illumination term.

``videos_flow`` batches whole videos: with ``use_initial_flow`` pair t of every video in a
batch runs together, warm-started from pair t-1 as the OpenCV path does video by video;
without it, any pairs batch together.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.schema import TVL1Params

MIN_LEVEL_SIDE = 16  # OpenCV stops the pyramid before a level this small
REMAP_SUBPIXELS = 32  # cv2.remap rounds sample positions to 1/32 px (INTER_BITS = 5)
CUBIC_A = -0.75  # Keys' bicubic kernel as in cv2's INTER_CUBIC
FLOAT_EPSILON = float(torch.finfo(torch.float32).eps)


def pyramid_sizes(height: int, width: int, nscales: int, scale_step: float) -> list[tuple[int, int]]:
    """(H,W) of each level, finest first: OpenCV's round(side * scale_step), stopping before a side < 16."""
    sizes = [(height, width)]
    for _ in range(1, nscales):
        h, w = sizes[-1]
        # cv::resize sizes the output with saturate_cast<int>, which rounds half to even as round() does.
        nh, nw = round(h * scale_step), round(w * scale_step)
        if nh < MIN_LEVEL_SIDE or nw < MIN_LEVEL_SIDE:
            break
        sizes.append((nh, nw))
    return sizes


def _linear_axis(
    n_in: int, n_out: int, inverse_scale: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (lo, hi) and weight of hi along one axis, OpenCV's INTER_LINEAR mapping.

    src = (dst + 0.5) * inverse_scale - 0.5, clamped into the image (replicated border).
    """
    src = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * inverse_scale - 0.5
    lo = torch.floor(src)
    frac = (src - lo).to(torch.float32)
    lo = lo.long()
    frac = torch.where(lo < 0, torch.zeros_like(frac), frac)
    lo = lo.clamp(0, n_in - 1)
    frac = torch.where(lo >= n_in - 1, torch.zeros_like(frac), frac)
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo, hi, frac


def resize_linear(image: torch.Tensor, size: tuple[int, int], inverse_scale: tuple[float, float]) -> torch.Tensor:
    """Bilinear resize of (B,H,W) to (B,h,w) with OpenCV's coordinates.

    inverse_scale: (source px per output px) along (y, x): 1 / fx when cv::resize is given a
    factor, source size / output size when it is given a size.
    """
    _, h_in, w_in = image.shape
    h_out, w_out = size
    x_lo, x_hi, x_frac = _linear_axis(w_in, w_out, inverse_scale[1], image.device)
    y_lo, y_hi, y_frac = _linear_axis(h_in, h_out, inverse_scale[0], image.device)
    # Horizontal pass first, then vertical, as cv::resize does.
    rows = image[:, :, x_lo] * (1 - x_frac) + image[:, :, x_hi] * x_frac
    return rows[:, y_lo, :] * (1 - y_frac)[:, None] + rows[:, y_hi, :] * y_frac[:, None]


def centered_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,H,W) -> (dx, dy): half the central difference, one-sided (replicated edge) at the border."""
    padded = F.pad(image[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return dx, dy


def forward_gradient(field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,H,W) -> (dx, dy): forward differences, zero in the last column (dx) and last row (dy)."""
    dx = F.pad(field[:, :, 1:] - field[:, :, :-1], (0, 1))
    dy = F.pad(field[:, 1:, :] - field[:, :-1, :], (0, 0, 0, 1))
    return dx, dy


def divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence of (px, py), each (B,H,W), with zero outside: minus the adjoint of forward_gradient."""
    return px - F.pad(px[:, :, :-1], (1, 0)) + py - F.pad(py[:, :-1, :], (0, 0, 1, 0))


@functools.lru_cache
def median_network(n: int) -> tuple[tuple[int, int], ...]:
    """Compare-exchange pairs (i, j), i < j, after which position n // 2 of n values holds their median.

    Batcher's odd-even merge sort on n inputs, pruned to the comparators the middle output
    depends on. Elementwise min/max over whole images beats a per-pixel sort (torch.median
    over the window dimension) severalfold on the CPU and needs no sort kernel on the GPU.
    """
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    needed, kept = {n // 2}, []
    for a, b in reversed(pairs):
        if a in needed or b in needed:
            kept.append((a, b))
            needed |= {a, b}
    return tuple(reversed(kept))


def median_blur(field: torch.Tensor, ksize: int) -> torch.Tensor:
    """(B,H,W) median over ksize x ksize windows with a replicated border (cv2.medianBlur)."""
    r = ksize // 2
    _, h, w = field.shape
    padded = F.pad(field[:, None], (r, r, r, r), mode="replicate")[:, 0]
    values = [padded[:, dy : dy + h, dx : dx + w] for dy in range(ksize) for dx in range(ksize)]
    for a, b in median_network(len(values)):
        values[a], values[b] = torch.minimum(values[a], values[b]), torch.maximum(values[a], values[b])
    return values[len(values) // 2].contiguous()


def cubic_weights(frac: torch.Tensor) -> torch.Tensor:
    """Keys' cubic weights of the four taps at offsets -1, 0, 1, 2 for fractional positions ``frac``: (...,) -> (...,4)."""
    a = CUBIC_A
    x0 = frac + 1
    w0 = ((a * x0 - 5 * a) * x0 + 8 * a) * x0 - 4 * a
    w1 = ((a + 2) * frac - (a + 3)) * frac * frac + 1
    x2 = 1 - frac
    w2 = ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1
    return torch.stack([w0, w1, w2, 1 - w0 - w1 - w2], dim=-1)


def remap_cubic(images: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor) -> torch.Tensor:
    """Sample (B,C,H,W) images at (B,H,W) positions bicubically, zero outside: cv2.remap(INTER_CUBIC, BORDER_CONSTANT).

    Positions are rounded to 1/32 px first, as cv2.remap does with float maps.
    """
    b, c, h, w = images.shape
    fixed_x = torch.round(map_x * REMAP_SUBPIXELS).long()
    fixed_y = torch.round(map_y * REMAP_SUBPIXELS).long()
    ix, iy = (
        torch.div(fixed_x, REMAP_SUBPIXELS, rounding_mode="floor"),
        torch.div(fixed_y, REMAP_SUBPIXELS, rounding_mode="floor"),
    )
    wx = cubic_weights((fixed_x - ix * REMAP_SUBPIXELS).float() / REMAP_SUBPIXELS)  # (B,H,W,4)
    wy = cubic_weights((fixed_y - iy * REMAP_SUBPIXELS).float() / REMAP_SUBPIXELS)
    flat = images.reshape(b, c, h * w)
    out = torch.zeros_like(images)
    for j in range(4):
        ty = iy + (j - 1)
        y_inside = (ty >= 0) & (ty < h)
        row_sum = torch.zeros_like(images)
        for k in range(4):
            tx = ix + (k - 1)
            inside = y_inside & (tx >= 0) & (tx < w)
            index = (ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)).reshape(b, 1, h * w).expand(b, c, h * w)
            taps = flat.gather(2, index).view(b, c, h, w)
            row_sum += taps * (wx[..., k] * inside)[:, None]
        out += row_sum * wy[..., j][:, None]
    return out


def _mask_of(active: torch.Tensor) -> torch.Tensor | Literal[False] | None:
    """(B,) flags of the pairs still iterating -> False if none is, None if all are (no masking
    needed, the common case), else a (B,1,1) mask. One device-to-host sync per iteration."""
    n_active = int(active.sum())
    if n_active == 0:
        return False
    return None if n_active == active.numel() else active[:, None, None]


def _masked(keep: torch.Tensor | None, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` where the pair still iterates, ``old`` where it has stopped."""
    return new if keep is None else torch.where(keep, new, old)


@dataclasses.dataclass
class _WarpData:
    """What one warp fixes for its iterations, each (B,H,W): I1's warped gradient and the data term's constants."""

    i1wx: torch.Tensor
    i1wy: torch.Tensor
    rho_c: torch.Tensor  # I1(x + u0) - grad I1 . u0 - I0
    threshold: torch.Tensor  # lambda * theta * |grad I1|^2
    safe_grad: torch.Tensor  # |grad I1|^2, 1 where it is ~0
    data_step_ok: torch.Tensor  # 0 where |grad I1|^2 is ~0: no data step there (OpenCV's float-epsilon guard)


def _inner_iteration(
    u1: torch.Tensor,
    u2: torch.Tensor,
    duals: tuple[torch.Tensor, ...],
    d: _WarpData,
    keep: torch.Tensor | None,
    l_t: float,
    theta: float,
    taut: float,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
    """One V, U, P step for every pair where ``keep`` (B,1,1) is true (all pairs if None).

    Returns the flow (u1, u2), the duals (p11, p12, p21, p22) and each pair's sum of squared
    flow updates (B,). Pure elementwise work: ``torch.compile`` fuses it into a few kernels.
    """
    p11, p12, p21, p22 = duals
    # V: the pointwise thresholding step of the data term.
    rho = d.rho_c + d.i1wx * u1 + d.i1wy * u2
    step = torch.where(
        rho < -d.threshold, l_t, torch.where(rho > d.threshold, -l_t, -rho / d.safe_grad * d.data_step_ok)
    )
    v1, v2 = u1 + step * d.i1wx, u2 + step * d.i1wy
    # U: the primal step.
    new_u1 = v1 + theta * divergence(p11, p12)
    new_u2 = v2 + theta * divergence(p21, p22)
    moved = ((new_u1 - u1) ** 2 + (new_u2 - u2) ** 2).sum(dim=(1, 2))
    u1, u2 = _masked(keep, new_u1, u1), _masked(keep, new_u2, u2)
    # P: the dual step (projected gradient ascent).
    u1x, u1y = forward_gradient(u1)
    u2x, u2y = forward_gradient(u2)
    norm1 = 1 + taut * torch.sqrt(u1x * u1x + u1y * u1y)
    norm2 = 1 + taut * torch.sqrt(u2x * u2x + u2y * u2y)
    duals = (
        _masked(keep, (p11 + taut * u1x) / norm1, p11),
        _masked(keep, (p12 + taut * u1y) / norm1, p12),
        _masked(keep, (p21 + taut * u2x) / norm2, p21),
        _masked(keep, (p22 + taut * u2y) / norm2, p22),
    )
    return u1, u2, duals, moved


# Compiled on first use, with dynamic shapes: one compilation serves every pyramid level and batch.
_compiled_inner_iteration = torch.compile(_inner_iteration, dynamic=True)


def _solve_level(
    i0: torch.Tensor, i1: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor, p: TVL1Params, compiled: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """TV-L1 at one pyramid level: (B,H,W) images and starting flow -> refined flow (OpenCV's procOneScale)."""
    b, h, w = i0.shape
    scaled_epsilon = p.epsilon * p.epsilon * h * w
    l_t, taut, theta = p.lambda_ * p.theta, p.tau / p.theta, p.theta
    iterate = _compiled_inner_iteration if compiled else _inner_iteration
    i1x, i1y = centered_gradient(i1)
    ys = torch.arange(h, device=i0.device, dtype=torch.float32)[None, :, None]
    xs = torch.arange(w, device=i0.device, dtype=torch.float32)[None, None, :]
    duals = tuple(torch.zeros_like(i0) for _ in range(4))
    for _ in range(p.warps):
        warped = remap_cubic(torch.stack([i1, i1x, i1y], dim=1), xs + u1, ys + u2)
        i1w, i1wx, i1wy = warped.unbind(1)
        grad = i1wx * i1wx + i1wy * i1wy
        gradient_ok = grad > FLOAT_EPSILON
        data = _WarpData(
            i1wx,
            i1wy,
            rho_c=i1w - i1wx * u1 - i1wy * u2 - i0,
            threshold=l_t * grad,
            safe_grad=torch.where(gradient_ok, grad, 1.0),
            data_step_ok=gradient_ok.float(),
        )
        active = torch.ones(b, dtype=torch.bool, device=i0.device)
        for _outer in range(p.outer_iterations):
            keep = _mask_of(active)
            if keep is False:
                break
            if p.median_filtering > 1:
                u1 = _masked(keep, median_blur(u1, p.median_filtering), u1)
                u2 = _masked(keep, median_blur(u2, p.median_filtering), u2)
            for _inner in range(p.inner_iterations):
                keep = _mask_of(active)
                if keep is False:
                    break
                u1, u2, duals, moved = iterate(u1, u2, duals, data, keep, l_t, theta, taut)
                active = active & (moved > scaled_epsilon)
    return u1, u2


def tvl1_flow(
    i0: torch.Tensor, i1: torch.Tensor, p: TVL1Params, initial_flow: torch.Tensor | None = None, compiled: bool = False
) -> torch.Tensor:
    """Flow from i0 to i1 for a batch of frame pairs.

    i0, i1: (B,H,W) grey levels in 0..255 (uint8 or float) on one device.
    initial_flow: (B,H,W,2) float32 px, used when ``p.use_initial_flow`` (zero if None).
    compiled: run the inner iteration through ``torch.compile`` (a one-off compilation of
    tens of seconds; then fewer, fused kernels).
    Returns (B,H,W,2) float32 px on the same device: (dx, dy) such that i1(x + u) ~ i0(x).
    """
    if p.gamma != 0:
        raise ValueError("the torch TV-L1 does not implement gamma != 0 (OpenCV's illumination term)")
    if i0.shape != i1.shape or i0.ndim != 3:
        raise ValueError(f"expected two (B,H,W) batches of the same shape, got {tuple(i0.shape)} and {tuple(i1.shape)}")
    i0s, i1s = [i0.float()], [i1.float()]
    _b, h, w = i0.shape
    sizes = pyramid_sizes(h, w, p.nscales, p.scale_step)
    down = (1 / p.scale_step, 1 / p.scale_step)
    for size in sizes[1:]:
        i0s.append(resize_linear(i0s[-1], size, down))
        i1s.append(resize_linear(i1s[-1], size, down))
    u1 = torch.zeros_like(i0s[-1])
    u2 = torch.zeros_like(i0s[-1])
    if p.use_initial_flow and initial_flow is not None:
        u1, u2 = initial_flow[..., 0].float(), initial_flow[..., 1].float()
        for size in sizes[1:]:
            u1 = resize_linear(u1, size, down) * p.scale_step
            u2 = resize_linear(u2, size, down) * p.scale_step
    for level in range(len(sizes) - 1, -1, -1):
        u1, u2 = _solve_level(i0s[level], i1s[level], u1, u2, p, compiled)
        if level == 0:
            break
        finer = sizes[level - 1]
        up = (sizes[level][0] / finer[0], sizes[level][1] / finer[1])
        u1 = resize_linear(u1, finer, up) / p.scale_step
        u2 = resize_linear(u2, finer, up) / p.scale_step
    return torch.stack([u1, u2], dim=-1)


def videos_flow(
    grays: Sequence[np.ndarray], p: TVL1Params, device: torch.device, batch: int, compiled: bool = False
) -> list[np.ndarray]:
    """TV-L1 flow of every consecutive frame pair of several videos of one size, ``batch`` pairs per call.

    grays: videos as (T_i,H,W) uint8. Returns one (T_i,H,W,2) float32 array per video, entry 0
    zero and entry t the flow from frame t-1 to frame t (as ``preprocess.flow.video_flow``).
    """
    flows = [np.zeros((*g.shape, 2), np.float32) for g in grays]
    if p.use_initial_flow:
        # Pair t depends on pair t-1 of the same video, so a batch holds one pair per video.
        for t in range(1, max((len(g) for g in grays), default=0)):
            having = [i for i, g in enumerate(grays) if len(g) > t]
            for start in range(0, len(having), batch):
                chunk = having[start : start + batch]
                flow = _flow_on(
                    device,
                    p,
                    [grays[i][t - 1] for i in chunk],
                    [grays[i][t] for i in chunk],
                    [flows[i][t - 1] for i in chunk],
                    compiled,
                )
                for i, f in zip(chunk, flow, strict=True):
                    flows[i][t] = f
    else:
        pairs = [(i, t) for i, g in enumerate(grays) for t in range(1, len(g))]
        for start in range(0, len(pairs), batch):
            pair_chunk = pairs[start : start + batch]
            flow = _flow_on(
                device,
                p,
                [grays[i][t - 1] for i, t in pair_chunk],
                [grays[i][t] for i, t in pair_chunk],
                None,
                compiled,
            )
            for (i, t), f in zip(pair_chunk, flow, strict=True):
                flows[i][t] = f
    return flows


def _flow_on(
    device: torch.device,
    p: TVL1Params,
    first: list[np.ndarray],
    second: list[np.ndarray],
    initial: list[np.ndarray] | None,
    compiled: bool,
) -> np.ndarray:
    """One batched call: lists of (H,W) frames (and (H,W,2) starting flows) -> (B,H,W,2) float32 on the CPU."""
    i0 = torch.from_numpy(np.stack(first)).to(device)
    i1 = torch.from_numpy(np.stack(second)).to(device)
    init = torch.from_numpy(np.stack(initial)).to(device) if initial is not None else None
    with torch.inference_mode():
        return tvl1_flow(i0, i1, p, init, compiled).cpu().numpy()
