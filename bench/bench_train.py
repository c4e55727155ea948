"""Training and feature-extraction throughput, and model FLOPs per clip, on this machine.

    python bench/bench_train.py                      # the demo sizes from params.yaml, CPU or GPU
    python bench/bench_train.py --paper              # R3D 16x112x112, 64-channel stem, batch 16
    python bench/bench_train.py --paper --batch 64 --bf16 --channels-last --compile   # on a GPU

Measures (1) the full training step with intra-negatives (RGB + view 2 + both intra-negatives,
forward, backward, SGD, bank / queue / key-encoder update) on clips already on the device,
for each contrastive method (cmc, moco, simclr), (2) the configured method's step fed from
the shards through the DataLoader, and (3) feature extraction (forward only). Prints clips/s;
asserts nothing.
Without --shards it writes temporary random shards at the stored size (read speed does not
depend on pixel values).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import torch
from storage_settings import storage
from torch.utils.flop_counter import FlopCounterMode

from pipeline.params import load_params
from pipeline.runtime import Runtime
from pipeline.schema import ModelParams, Params
from preprocess.shards import ShardReader, ShardWriter, write_manifest
from train.checkpoint import build_encoder
from train.data import ClipDataset, EpochSampler, to_model_input
from train.methods import METHODS, build_objective
from train.pretrain import PretrainSetup, batch_loss


def random_shards(folder: Path, n_videos: int, frames: int, height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    records = []
    with (
        ShardWriter(folder / "frames/0.h5", storage("raw")) as fw,
        ShardWriter(folder / "motion/0.h5", storage("raw"), {"flow_bound": 20.0}) as mw,
    ):
        for i in range(n_videos):
            vid = f"c/{i}"
            fw.add(vid, "rgb", rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8))
            mw.add(vid, "res", rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8))
            for m in ("u", "v"):
                mw.add(vid, m, rng.integers(0, 256, (frames, height, width, 1), dtype=np.uint8))
            records.append({"id": vid, "label": 0, "frames": frames, "split": "train"})
    for kind in ("frames", "motion"):
        write_manifest(folder / kind / "0.h5", folder / kind / "0.json", records, [])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def backbone_gflops(config: dict, length: int, crop: int) -> float:
    """Forward GFLOPs of the backbone on one (3,length,crop,crop) clip."""
    encoder = build_encoder(config)
    with FlopCounterMode(display=False) as counter:
        encoder.backbone(torch.zeros(1, 3, length, crop, crop))
    return counter.get_total_flops() / 1e9


def training_step(
    p: Params,
    config: dict,
    runtime: Runtime,
    method: str,
    batch: int,
    length: int,
    crop: int,
    n_videos: int,
    nce_k: int | None = None,
) -> tuple[Callable[[dict], None], torch.nn.Module]:
    """One full IIC training step with intra-negatives (view 2 = residual) for ``method``, and its encoder.

    The step takes a batch {"rgb", "res": (B,3,T,H,W) uint8, "index": (B,) < n_videos} on any device.
    nce_k: negatives per clip (default: params.yaml's, at least the batch, as a MoCo queue needs).
    """
    pretrain = dataclasses.replace(
        p.pretrain,
        method=method,
        modality="res",
        intra_neg=True,
        neg="repeat",
        batch_size=batch,
        nce_k=nce_k or max(batch, p.pretrain.nce_k),
    )
    setup = PretrainSetup(ModelParams(config["arch"], config["width"]), pretrain, length, crop)
    torch.manual_seed(0)
    encoder = runtime.prepare_model(build_encoder(config))
    trained = runtime.maybe_compile(encoder)
    objective = build_objective(encoder, n_videos, pretrain, batch, torch.Generator().manual_seed(0)).to(runtime.device)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator(device=runtime.device).manual_seed(0)

    def step(b: dict) -> None:
        loss, _ = batch_loss(b, setup, trained, objective, runtime, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        objective.after_step(trained)

    return step, encoder


def device_step_rate(
    step: Callable[[dict], None], device: torch.device, batch: int, length: int, crop: int, steps: int, warmup: int = 3
) -> float:
    """Clips/s of ``step`` on random clips already on the device (no loader), after ``warmup`` steps."""
    on_device = {
        "rgb": torch.randint(0, 256, (batch, 3, length, crop, crop), dtype=torch.uint8),
        "res": torch.randint(0, 256, (batch, 3, length, crop, crop), dtype=torch.uint8),
        "index": torch.arange(batch),
    }
    on_device = {k: v.to(device) for k, v in on_device.items()}
    for _ in range(warmup):  # cuDNN autotuning, compilation
        step(on_device)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(on_device)
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def shard_loader(
    reader: ShardReader,
    length: int,
    crop: int,
    batch: int,
    workers: int,
    device: torch.device,
    prefetch: int | None = None,
) -> tuple[torch.utils.data.DataLoader, EpochSampler]:
    """The pretraining DataLoader over every video of ``reader`` (rgb + res clips)."""
    ids = sorted(reader.videos)
    dataset = ClipDataset(reader, ids, ("rgb", "res"), length, crop, train=True, seed=0)
    sampler = EpochSampler(len(ids), 0)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=prefetch if workers else None,
    )
    return loader, sampler


def loader_step_rate(
    step: Callable[[dict], None],
    loader: torch.utils.data.DataLoader,
    sampler: EpochSampler,
    device: torch.device,
    batch: int,
    steps: int,
) -> tuple[float, float]:
    """Clips/s of ``step`` fed by ``loader``, and the share of that wall time the step itself took.

    On CUDA the step's share is its GPU time (CUDA events around each step on the stream), so
    1 - share is the time the GPU waited for data; on the CPU it is the step's wall time.
    The first batch (worker start-up, warm-up) is not timed.
    """
    done, epoch, start, busy = 0, 0, None, 0.0
    events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
    while done < steps * batch:
        sampler.set_epoch(epoch)
        for b in loader:
            if start is None:
                step(b)
                sync(device)
                start = time.perf_counter()
                continue
            if device.type == "cuda":
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                step(b)
                end.record()
                events.append((begin, end))
            else:
                t0 = time.perf_counter()
                step(b)
                busy += time.perf_counter() - t0
            done += batch
            if done >= steps * batch:
                break
        epoch += 1
    sync(device)
    wall = time.perf_counter() - start
    if events:
        busy = sum(b.elapsed_time(e) for b, e in events) / 1000
    return done / wall, busy / wall


def feature_rate(
    backbone: torch.nn.Module,
    reader: ShardReader,
    runtime: Runtime,
    length: int,
    crop: int,
    batch: int,
    workers: int,
    n_clips: int,
) -> float:
    """Clips/s of retrieval-feature extraction (forward only) from the shards, evaluation clips."""
    ids = sorted(reader.videos)
    eval_set = ClipDataset(reader, ids, ("rgb",), length, crop, train=False, seed=0, eval_clips=10)
    eval_loader = torch.utils.data.DataLoader(
        eval_set, batch_size=batch, num_workers=workers, pin_memory=runtime.device.type == "cuda"
    )
    start, n = None, 0
    with torch.no_grad():
        for b in eval_loader:
            with runtime.autocast():
                backbone.retrieval_features(to_model_input(runtime.to_device(b["rgb"])))
            if start is None:  # the first batch includes worker start-up
                sync(runtime.device)
                start = time.perf_counter()
                continue
            n += len(b["rgb"])
            if n >= n_clips:
                break
    sync(runtime.device)
    return n / (time.perf_counter() - start)


@click.command()
@click.option("--paper", is_flag=True, help="the paper's sizes: R3D, width 64, 16x112x112 from 128x171, batch 16")
@click.option("--arch", default=None)
@click.option("--batch", type=int, default=None)
@click.option("--steps", type=int, default=10, show_default=True)
@click.option("--bf16", is_flag=True)
@click.option("--channels-last", is_flag=True)
@click.option("--compile", "use_compile", is_flag=True)
@click.option("--workers", type=int, default=None)
@click.option("--shards", type=click.Path(path_type=Path), default=None, help="folder with frames/ and motion/")
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(sorted(METHODS)),
    help="methods to time on the device (default: all)",
)
def main(paper, arch, batch, steps, bf16, channels_last, use_compile, workers, shards, methods) -> None:
    p = load_params()
    config = {"arch": arch or p.model.arch, "width": 64 if paper else p.model.width, "feat_dim": p.pretrain.feat_dim}
    length, crop = (16, 112) if paper else (p.clip.length, p.clip.crop)
    height, width = (128, 171) if paper else (p.frames.height, p.frames.width)
    batch = batch or (16 if paper else p.pretrain.batch_size)
    workers = p.runtime.workers if workers is None else workers
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    runtime = Runtime(device, bf16=bf16, channels_last=channels_last, compile=use_compile)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"{config['arch']} width {config['width']}, clips {length}x{crop}x{crop}, batch {batch}, "
        f"bf16={bf16} channels_last={channels_last} compile={use_compile}"
    )

    gflops = backbone_gflops(config, length, crop)
    # Per clip, cmc and simclr run 4 encoder passes with gradients (a clip and its intra-negative
    # in each view; backward ~2x forward); moco runs 2 with gradients (the queries) and 4 without
    # (the keys of both views and of both intra-negatives).
    print(
        f"backbone forward: {gflops:.2f} GFLOPs per clip; a training step per clip: cmc and simclr "
        f"~{3 * 4 * gflops:.1f} GFLOPs, moco ~{(3 * 2 + 4) * gflops:.1f} GFLOPs"
    )
    n_videos = max(4 * batch, p.pretrain.nce_k + 1)
    for method in methods or sorted(METHODS):
        step, _ = training_step(p, config, runtime, method, batch, length, crop, n_videos)
        rate = device_step_rate(step, device, batch, length, crop, steps)
        print(f"{method:6s} training step with intra-negatives, clips on the device: {rate:8.1f} clips/s")

    step, encoder = training_step(p, config, runtime, p.pretrain.method, batch, length, crop, n_videos)
    with tempfile.TemporaryDirectory() as tmp:
        folder = shards or Path(tmp)
        if shards is None:
            random_shards(folder, n_videos=max(4 * batch, 32), frames=length + 16, height=height, width=width)
        reader = ShardReader(folder / "frames", folder / "motion", [0])
        loader, sampler = shard_loader(reader, length, crop, batch, workers, device)
        rate, busy = loader_step_rate(step, loader, sampler, device, batch, steps)
        print(
            f"{p.pretrain.method} training step, from the shards ({workers} workers): {rate:8.1f} clips/s "
            f"(the step busy {100 * busy:.0f} % of the time)"
        )
        rate = feature_rate(encoder.backbone, reader, runtime, length, crop, batch, workers, steps * batch * 2)
        print(f"feature extraction, from the shards:          {rate:8.1f} clips/s")


if __name__ == "__main__":
    main()
