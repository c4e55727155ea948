"""The GPU path, measured in one run: one table of what needs a GPU, beside its goals.

    python bench/gpu_check.py                  # on a machine with a GPU, within ~8 minutes
    python bench/gpu_check.py --cpu-dry-run    # every row's code at tiny sizes on the CPU (CI runs it)

Rows, most important first (a run cut short keeps what it measured): the paper-size IIC
training step (R3D width 64, 16x112x112, bf16, channels-last, torch.compile, batch 64, CMC
with intra-negatives and the paper's K = 1,024 bank negatives) in clips/s
and as a share of the GPU's peak dense bf16 FLOP/s; end-to-end pretraining steps fed from
JPEG-encoded shards of a generated UCF101-like set (1,100 videos at 128x171) by the DataLoader
with the machine's cores as workers, and the share of that time the GPU was busy (CUDA events
around each step); feature extraction clips/s; the PyTorch TV-L1 (motion.backend: torch) in
pairs/s with its endpoint error against OpenCV on real clips; a one-process torchrun start with
NCCL (gloo in the dry run); the CUDA-only tests (pytest -m cuda). Prints what it measured
and the goals beside it; asserts no timing.
``--out FILE`` also writes the table as markdown, rewritten after every row.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import cv2
import numpy as np
import torch
from bench_preprocess import middle_pairs, real_clips, torch_tvl1_rate
from bench_train import backbone_gflops, device_step_rate, feature_rate, loader_step_rate, shard_loader, training_step
from joblib import Parallel, delayed
from storage_settings import storage

from pipeline.params import load_params
from pipeline.runtime import Runtime
from preprocess.decode import decode_frames
from preprocess.flow import endpoint_error, make_tvl1, to_gray, video_flow
from preprocess.residual import residual_frames
from preprocess.shards import ShardReader, ShardWriter, write_manifest

REPO = Path(__file__).resolve().parents[1]
# Peak dense bf16 tensor-core TFLOP/s by device name (vendor data sheets, SXM parts).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
# The GPU goals: clips/s of the paper-size step, end to end as a share of it, features, TV-L1 pairs/s.
GOALS = {"step": 1000.0, "end_to_end_share": 0.8, "features": 4000.0, "tvl1": 2000.0}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What one run measures at: the paper's sizes on a GPU, tiny ones in the CPU dry run."""

    width: int  # stem channels
    length: int  # frames per clip
    crop: int
    height: int  # stored frame size
    frame_width: int
    batch: int
    nce_k: int  # negatives per clip (CMC memory bank)
    steps: int
    videos: int  # in the generated shard set
    frames: int  # per generated video
    shards: int
    tvl1_videos: int
    tvl1_pairs: int  # per video
    compile: bool
    bf16: bool
    channels_last: bool


PAPER = Sizes(
    width=64,
    length=16,
    crop=112,
    height=128,
    frame_width=171,
    batch=64,
    nce_k=1024,
    steps=30,
    videos=1100,
    frames=48,
    shards=16,
    tvl1_videos=256,
    tvl1_pairs=8,
    compile=True,
    bf16=True,
    channels_last=True,
)
DRY_RUN = Sizes(
    width=4,
    length=8,
    crop=24,
    height=32,
    frame_width=40,
    batch=4,
    nce_k=8,
    steps=2,
    videos=40,
    frames=12,
    shards=2,
    tvl1_videos=3,
    tvl1_pairs=2,
    compile=False,
    bf16=False,
    channels_last=False,
)


def _moving_texture(seed: int, frames: int, height: int, width: int) -> np.ndarray:
    """(T,H,W,3) uint8: a smooth random colour texture drifting by a per-video velocity (JPEG-friendly, UCF101-like)."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.random((height * 2, width * 2, 3)).astype(np.float32), (0, 0), 4)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    dy, dx = rng.uniform(-2, 2, 2)
    oy, ox = height // 2, width // 2
    return np.stack(
        [
            big[
                int(oy + t * dy) % height : int(oy + t * dy) % height + height,
                int(ox + t * dx) % width : int(ox + t * dx) % width + width,
            ]
            for t in range(frames)
        ]
    )


def _write_shard(folder: Path, shard_id: int, ids: list[int], s: Sizes) -> list[dict]:
    records = []
    with (
        ShardWriter(folder / "frames" / f"{shard_id}.h5", storage("jpeg")) as frames,
        ShardWriter(
            folder / "motion" / f"{shard_id}.h5", storage("jpeg"), {"flow": "none", "flow_bound": 20.0}
        ) as motion,
    ):
        for i in ids:
            rgb = _moving_texture(i, s.frames, s.height, s.frame_width)
            frames.add(f"g/{i}", "rgb", rgb)
            motion.add(f"g/{i}", "res", residual_frames(rgb))
            records.append({"id": f"g/{i}", "label": i % 101, "frames": s.frames, "split": "train"})
    for kind in ("frames", "motion"):
        write_manifest(folder / kind / f"{shard_id}.h5", folder / kind / f"{shard_id}.json", records, [])
    return records


def generated_shards(folder: Path, s: Sizes) -> ShardReader:
    """A UCF101-like set as JPEG shards (rgb + residual), written by every core."""
    ids = np.array_split(np.arange(s.videos), s.shards)
    Parallel(n_jobs=min(s.shards, os.cpu_count() or 1))(
        delayed(_write_shard)(folder, k, [int(i) for i in chunk], s) for k, chunk in enumerate(ids)
    )
    return ShardReader(folder / "frames", folder / "motion", list(range(s.shards)))


def cuda_tests() -> str:
    """pytest -m cuda: the tests that only a GPU can run, summarised."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr.strip()[-200:]
    return re.sub(r"=+", "", summary).strip() + ("" if run.returncode in (0, 5) else " (FAILED)")


def torchrun_start(backend: str) -> str:
    """A one-process torchrun that joins a ``backend`` process group and all-reduces a tensor."""
    start = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=1",
            str(Path(__file__).resolve()),
            "--collective-worker",
            backend,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    ok = run.returncode == 0 and "all_reduce ok" in run.stdout
    tail = "" if ok else ": " + (run.stderr.strip().splitlines() or ["no output"])[-1][:160]
    return f"{backend} {'ok' if ok else 'FAILED'} in {time.perf_counter() - start:.1f} s{tail}"


def collective_worker(backend: str) -> None:
    from torch import distributed as dist

    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    value = torch.ones(4, device=device) * (dist.get_rank() + 1)
    dist.all_reduce(value)
    assert torch.equal(value.cpu(), torch.full((4,), float(sum(range(1, dist.get_world_size() + 1)))))
    dist.destroy_process_group()
    print("all_reduce ok", flush=True)


def real_tvl1_error(p, device: torch.device, n_clips: int) -> float:
    """Mean endpoint error of the torch TV-L1 on ``device`` against OpenCV (same parameters) on real clips."""
    clips = real_clips(REPO.parent / "shared/realdata")[:n_clips]
    if not clips:
        return float("nan")
    grays = [middle_pairs(decode_frames(clip, 128, 171).frames, pairs=2) for clip in clips]
    _, ours = torch_tvl1_rate(grays, p, device, batch=len(grays))
    return float(
        np.mean([endpoint_error(o[1:], video_flow(g, make_tvl1(p))[1:]) for o, g in zip(ours, grays, strict=True)])
    )


@click.command()
@click.option(
    "--cpu-dry-run", is_flag=True, help="tiny sizes on the CPU: runs every row's code, measures nothing useful"
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="also write the table as markdown here")
@click.option("--collective-worker", "worker_backend", type=click.Choice(["nccl", "gloo"]), default=None, hidden=True)
def main(cpu_dry_run: bool, out: Path | None, worker_backend: str | None) -> None:
    if worker_backend:  # launched by torchrun_start
        collective_worker(worker_backend)
        return
    if not cpu_dry_run and not torch.cuda.is_available():
        raise click.UsageError("no CUDA device here; run with --cpu-dry-run to exercise the code on the CPU")
    s = DRY_RUN if cpu_dry_run else PAPER
    device = torch.device("cpu") if cpu_dry_run else torch.device("cuda", 0)
    name = "CPU (dry run)" if cpu_dry_run else torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    cores = len(os.sched_getaffinity(0))
    p = load_params(REPO / "params.yaml")
    torch.backends.cudnn.benchmark = device.type == "cuda"
    rows: list[tuple[str, str, str]] = []

    def row(check: str, result: str, goal: str = "") -> None:
        rows.append((check, result, goal))
        print(f"{check:58s} {result:48s} {goal}", flush=True)
        if out:  # after every row, so that a run cut short by a time limit still leaves its table
            lines = ["| check | result | goal |", "|---|---|---|", *(f"| {c} | {r} | {g} |" for c, r, g in rows)]
            out.write_text(f"{name}; {cores} CPU cores; torch {torch.__version__}\n\n" + "\n".join(lines) + "\n")

    print(f"{name}; {cores} CPU cores; torch {torch.__version__}\n")

    config = {"arch": "r3d", "width": s.width, "feat_dim": p.pretrain.feat_dim}
    runtime = Runtime(device, bf16=s.bf16, channels_last=s.channels_last, compile=s.compile)
    step_gflops = 3 * 4 * backbone_gflops(config, s.length, s.crop)  # 4 passes with gradients (cmc), backward ~2x
    step, encoder = training_step(
        p, config, runtime, "cmc", s.batch, s.length, s.crop, n_videos=s.videos, nce_k=s.nce_k
    )
    step_rate = device_step_rate(step, device, s.batch, s.length, s.crop, s.steps)
    share = f", {100 * step_rate * step_gflops / 1e3 / peak:.0f} % of peak bf16" if peak else ""
    row(
        f"training step, R3D w{s.width} {s.length}x{s.crop}^2, batch {s.batch}, K {s.nce_k}, "
        f"bf16={s.bf16} cl={s.channels_last} compile={s.compile}",
        f"{step_rate:.0f} clips/s ({step_gflops:.3g} GFLOP/clip{share})",
        f">= {GOALS['step']:.0f} clips/s",
    )

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        reader = generated_shards(Path(tmp), s)
        row(
            f"generated JPEG shards ({s.videos} videos x {s.frames} frames at {s.height}x{s.frame_width})",
            f"written in {time.perf_counter() - start:.0f} s",
        )
        workers = 2 if cpu_dry_run else cores
        loader, sampler = shard_loader(reader, s.length, s.crop, s.batch, workers, device)
        rate, busy = loader_step_rate(step, loader, sampler, device, s.batch, s.steps)
        row(
            f"end to end from the shards ({workers} loader workers)",
            f"{rate:.0f} clips/s = {100 * rate / step_rate:.0f} % of the step; step busy {100 * busy:.0f} %",
            f">= {100 * GOALS['end_to_end_share']:.0f} % of the step",
        )
        rate = feature_rate(
            encoder.backbone, reader, runtime, s.length, s.crop, 4 * s.batch, workers, 8 * s.steps * s.batch
        )
        row(
            "feature extraction from the shards (forward, batch x4)",
            f"{rate:.0f} clips/s",
            f">= {GOALS['features']:.0f} clips/s",
        )
        grays = [
            to_gray(reader.read_clip(v, 0, s.tvl1_pairs + 1, "rgb").transpose(1, 2, 3, 0))
            for v in list(reader.videos)[: s.tvl1_videos]
        ]
        reader.close()
    tvl1_batch = s.tvl1_videos  # with the warm start a call holds one pair per video: all of them at once
    rate, _ = torch_tvl1_rate(grays, p.motion.tvl1, device, tvl1_batch, compiled=s.compile)
    epe = real_tvl1_error(p.motion.tvl1, device, n_clips=2 if cpu_dry_run else 8)
    row(
        f"TV-L1 torch backend, {s.height}x{s.frame_width}, {len(grays)} videos x {s.tvl1_pairs} pairs, batch {tvl1_batch}, "
        f"compile={s.compile}",
        f"{rate:.0f} pairs/s; EPE vs OpenCV {epe:.3f} px",
        f">= {GOALS['tvl1']:.0f} pairs/s, <= 0.1 px",
    )
    row("torchrun, one process", torchrun_start("gloo" if cpu_dry_run else "nccl"), "ok")
    row("CUDA-only tests (pytest -m cuda)", cuda_tests(), "all pass")  # last: the measurements matter more


if __name__ == "__main__":
    main()
