"""The PyTorch TV-L1 against OpenCV's DualTVL1OpticalFlow: its building blocks to float rounding,
its flow on real frame pairs, its batching, and the motion stage's torch backend."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.params import validate
from pipeline.runtime import resolve_device
from preprocess.decode import decode_frames
from preprocess.flow import dequantise_flow, endpoint_error, make_tvl1, to_gray, video_flow
from preprocess.motion import compute_motion_shard
from preprocess.shards import ShardReader, ShardWriter, write_manifest
from preprocess.tvl1_torch import (
    centered_gradient,
    cubic_weights,
    divergence,
    forward_gradient,
    median_blur,
    median_network,
    pyramid_sizes,
    remap_cubic,
    resize_linear,
    tvl1_flow,
    videos_flow,
)
from tests.conftest import REAL_CLIPS, needs_cuda, replace
from tests.shards_fixture import storage

CPU = torch.device("cpu")
LARGEST_MOTION = "jump_01"  # hmdb51: the real clip with the largest flow


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))[None]


@pytest.fixture
def image(rng) -> np.ndarray:
    return (rng.random((37, 53)) * 255).astype(np.float32)


@pytest.mark.parametrize("scale", [0.8, 0.7, 0.5])
def test_pyramid_downscale_matches_cv2_resize_with_a_factor(image, scale):
    expected = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    size = pyramid_sizes(*image.shape, nscales=2, scale_step=scale)[1]
    assert size == expected.shape
    ours = resize_linear(_t(image), size, (1 / scale, 1 / scale))[0].numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-3)


def test_flow_upsampling_matches_cv2_resize_to_a_size(image):
    expected = cv2.resize(image, (70, 50), interpolation=cv2.INTER_LINEAR)
    ours = resize_linear(_t(image), (50, 70), (37 / 50, 53 / 70))[0].numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-3)


def test_pyramid_stops_before_a_side_below_16():
    assert pyramid_sizes(128, 171, 5, 0.8) == [(128, 171), (102, 137), (82, 110), (66, 88), (53, 70)]
    assert pyramid_sizes(48, 64, 9, 0.5) == [(48, 64), (24, 32)]  # 12 < 16 stops it


@pytest.mark.parametrize("ksize", [3, 5])
def test_median_blur_matches_cv2(image, ksize):
    np.testing.assert_array_equal(median_blur(_t(image), ksize)[0].numpy(), cv2.medianBlur(image, ksize))


def test_bicubic_remap_matches_cv2_inside_and_outside_the_image(image, rng):
    h, w = image.shape
    # Displacements up to +-6 px put many samples partly or wholly outside the 37x53 image.
    map_x = (np.arange(w)[None, :] + rng.normal(0, 3, (h, w))).astype(np.float32)
    map_y = (np.arange(h)[:, None] + rng.normal(0, 3, (h, w))).astype(np.float32)
    expected = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC)
    ours = remap_cubic(_t(image)[:, None], _t(map_x), _t(map_y))[0, 0].numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-2)


def test_cubic_weights_sum_to_one_and_interpolate_at_the_grid():
    frac = torch.linspace(0, 1, 33)[:-1]
    np.testing.assert_allclose(cubic_weights(frac).sum(-1).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(cubic_weights(torch.zeros(1))[0].numpy(), [0, 1, 0, 0], atol=1e-7)


def test_centered_gradient_of_a_ramp_is_its_slope_inside_and_half_at_the_border():
    ramp = torch.arange(8, dtype=torch.float32)[None, None, :].repeat(1, 6, 1) * 3  # 3 grey levels per px in x
    dx, dy = centered_gradient(ramp)
    assert (dx[0, :, 1:-1] == 3).all() and (dx[0, :, 0] == 1.5).all() and (dx[0, :, -1] == 1.5).all()
    assert (dy == 0).all()


def test_divergence_is_minus_the_adjoint_of_the_forward_gradient(rng):
    """<grad u, p> = -<u, div p>, the pair the primal-dual steps rely on, for every dual p of the
    iteration: p starts at zero and its x part stays zero in the last column (and y in the last
    row) because the forward gradient is zero there."""
    u = torch.from_numpy(rng.normal(size=(2, 9, 11)))
    px, py = (torch.from_numpy(rng.normal(size=(2, 9, 11))) for _ in range(2))
    px[:, :, -1] = 0
    py[:, -1, :] = 0
    ux, uy = forward_gradient(u)
    assert torch.allclose((ux * px + uy * py).sum(), -(u * divergence(px, py)).sum())


def _real_pairs(n_pairs: int) -> dict[str, np.ndarray]:
    """Grey frames (n_pairs + 1) from the middle of every real clip at the paper's 128x171."""
    grays = {}
    for clip in REAL_CLIPS:
        frames = decode_frames(clip, 128, 171).frames
        mid = len(frames) // 2
        grays[clip.stem] = to_gray(frames[mid : mid + n_pairs + 1])
    return grays


def test_flow_matches_opencv_on_every_real_clip(params):
    """The flow goal: mean endpoint error <= 0.1 px at 128x171 and <= 0.5 px on the largest motion, with
    the configured parameters (warm start on the second pair included)."""
    cv2.setNumThreads(1)
    grays = _real_pairs(2)
    ours = videos_flow(list(grays.values()), params.motion.tvl1, CPU, batch=64)
    errors = {}
    for (name, gray), flow in zip(grays.items(), ours, strict=True):
        reference = video_flow(gray, make_tvl1(params.motion.tvl1))
        errors[name] = endpoint_error(flow[1:], reference[1:])
    assert np.mean(list(errors.values())) <= 0.1, errors
    assert errors[LARGEST_MOTION] <= 0.5
    assert max(errors.values()) <= 0.5, errors


def test_a_batch_equals_its_pairs_one_by_one_when_they_stop_at_different_iterations(params):
    """Converged pairs are frozen by masks while the others iterate: batching changes nothing."""
    grays = _real_pairs(1)
    # Still, large and medium motion: with the configured epsilon they stop at different iterations
    # (running them all as long as the slowest moves each one's flow by 0.5-1.7 px).
    picked = [grays[n] for n in ("talk_01", LARGEST_MOTION, "boxing_p01_d2", "tai_chi_01")]
    tvl1 = params.motion.tvl1
    i0 = torch.from_numpy(np.stack([g[0] for g in picked]))
    i1 = torch.from_numpy(np.stack([g[1] for g in picked]))
    batched = tvl1_flow(i0, i1, tvl1)
    for k in range(len(picked)):
        alone = tvl1_flow(i0[k : k + 1], i1[k : k + 1], tvl1)
        torch.testing.assert_close(batched[k : k + 1], alone, atol=1e-4, rtol=0)


@pytest.mark.slow  # compiling takes ~20 s on 2 cores
def test_the_compiled_inner_iteration_gives_the_eager_flow(params):
    grays = _real_pairs(2)
    picked = [grays[n] for n in ("talk_01", LARGEST_MOTION, "boxing_p01_d2")]
    eager = videos_flow(picked, params.motion.tvl1, CPU, batch=8)
    compiled = videos_flow(picked, params.motion.tvl1, CPU, batch=8, compiled=True)
    for a, b in zip(eager, compiled, strict=True):
        # Fused float arithmetic rounds differently; a pair may stop one iteration apart.
        assert endpoint_error(a[1:], b[1:]) <= 0.05


@pytest.mark.parametrize("warm_start", [True, False])
def test_videos_flow_batches_videos_of_different_lengths_as_sequential_calls(params, rng, warm_start):
    tvl1 = replace(params.motion.tvl1, nscales=2, use_initial_flow=warm_start)
    texture = cv2.GaussianBlur(
        rng.random((40, 48)).astype(np.float32), (0, 0), 2
    )  # smooth: a 2 px shift stays trackable
    base = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    videos = [np.stack([np.roll(base, (t, 2 * t), (0, 1)) for t in range(n)]) for n in (4, 2, 3)]
    batched = videos_flow(videos, tvl1, CPU, batch=2)
    for video, flow in zip(videos, batched, strict=True):
        assert flow.shape == (len(video), 40, 48, 2) and (flow[0] == 0).all()
        previous = torch.zeros(1, 40, 48, 2)
        for t in range(1, len(video)):
            alone = tvl1_flow(_t(video[t - 1]), _t(video[t]), tvl1, previous)
            np.testing.assert_allclose(flow[t], alone[0].numpy(), atol=1e-4)
            previous = alone
    # Content moves 2 px right and 1 px down per frame; inside the image (the rolled-in border is
    # another image by construction) the flow is (2, 1).
    assert np.abs(batched[0][1:, 8:-8, 8:-8] - [2, 1]).mean() < 0.3


def test_gamma_is_refused_for_the_torch_backend_not_ignored(params):
    torch_backend = replace(params.motion, backend="torch", tvl1=replace(params.motion.tvl1, gamma=0.1))
    with pytest.raises(ConfigError, match="motion.tvl1.gamma"):
        validate(replace(params, motion=torch_backend))
    with pytest.raises(ValueError, match="gamma"):
        tvl1_flow(torch.zeros(1, 20, 20), torch.zeros(1, 20, 20), torch_backend.tvl1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_asking_for_cuda_without_a_gpu_names_the_setting():
    assert resolve_device("auto", "motion.torch.device") == CPU
    with pytest.raises(ConfigError, match="^motion.torch.device: cuda, but torch sees no CUDA device"):
        resolve_device("cuda", "motion.torch.device")


def test_motion_stage_torch_backend_writes_the_opencv_backend_shard_up_to_flow_rounding(params, tmp_path):
    frames_dir = tmp_path / "frames"
    records = []
    with ShardWriter(frames_dir / "0.h5", storage("raw")) as writer:
        for i, clip in enumerate(REAL_CLIPS[:5]):
            frames = decode_frames(clip, 48, 64).frames[: 3 + i % 3]  # videos of 3, 4 and 5 frames
            writer.add(f"c/{i}", "rgb", frames)
            records.append({"id": f"c/{i}", "path": clip.name, "frames": len(frames)})
    write_manifest(frames_dir / "0.h5", frames_dir / "0.json", records, [])
    readers = {}
    for backend in ("opencv", "torch"):
        motion = replace(params.motion, backend=backend, torch=replace(params.motion.torch, device="cpu", batch=2))
        out = tmp_path / backend
        manifest = compute_motion_shard(
            frames_dir / "0.h5",
            frames_dir / "0.json",
            out / "0.h5",
            out / "0.json",
            motion,
            params.storage,
            params.pool,
        )
        assert manifest["rejects"] == [] and [v["id"] for v in manifest["videos"]] == [r["id"] for r in records]
        with h5py.File(out / "0.h5", "r") as shard:
            assert shard.attrs["flow_backend"] == backend  # which code made the flow travels with it
        readers[backend] = ShardReader(frames_dir, out, [0])
    for record in records:
        n = record["frames"]
        opencv, ours = ({m: readers[b].read_clip(record["id"], 0, n, m) for m in ("res", "u", "v")} for b in readers)
        np.testing.assert_array_equal(ours["res"], opencv["res"])  # the residual does not depend on the backend
        flow = [dequantise_flow(np.stack([d["u"][0], d["v"][0]], -1), params.motion.bound) for d in (ours, opencv)]
        assert endpoint_error(*flow) <= 0.1


@needs_cuda
def test_flow_on_the_gpu_matches_the_cpu(params):
    grays = _real_pairs(2)
    picked = [grays[n] for n in ("talk_01", LARGEST_MOTION, "boxing_p01_d2")]
    on_cpu = videos_flow(picked, params.motion.tvl1, CPU, batch=8)
    on_gpu = videos_flow(picked, params.motion.tvl1, torch.device("cuda"), batch=8)
    for a, b in zip(on_cpu, on_gpu, strict=True):
        # Float rounding only (no matmul, so TF32 plays no part); a pair may stop one iteration apart.
        assert endpoint_error(a[1:], b[1:]) <= 0.05


@pytest.mark.parametrize("n", [9, 25])
def test_median_network_puts_the_median_in_the_middle_including_ties(n, rng):
    values = torch.from_numpy(rng.integers(0, 4, (n, 5000)).astype(np.float32))  # many ties
    columns = list(values.unbind(0))
    for a, b in median_network(n):
        assert a < b
        columns[a], columns[b] = torch.minimum(columns[a], columns[b]), torch.maximum(columns[a], columns[b])
    np.testing.assert_array_equal(columns[n // 2].numpy(), np.median(values.numpy(), axis=0))
