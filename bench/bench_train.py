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
from pathlib import Path

import click
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.params import ModelParams, load_params
from pipeline.runtime import Runtime
from preprocess.shards import ShardReader, ShardWriter, write_manifest
from train.checkpoint import build_encoder
from train.data import ClipDataset, EpochSampler, to_model_input
from train.methods import METHODS, build_objective
from train.pretrain import PretrainSetup, batch_loss


def random_shards(folder: Path, n_videos: int, frames: int, height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    records = []
    with ShardWriter(folder / "frames/0.h5", "raw", 90) as fw, ShardWriter(folder / "motion/0.h5", "raw", 90, {"flow_bound": 20.0}) as mw:
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
@click.option("--method", "methods", multiple=True, type=click.Choice(sorted(METHODS)),
              help="methods to time on the device (default: all)")
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
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{config['arch']} width {config['width']}, clips {length}x{crop}x{crop}, batch {batch}, "
          f"bf16={bf16} channels_last={channels_last} compile={use_compile}")

    encoder = build_encoder(config)
    with FlopCounterMode(display=False) as counter:
        encoder.backbone(torch.zeros(1, 3, length, crop, crop))
    gflops = counter.get_total_flops() / 1e9
    # Per clip, cmc and simclr run 4 encoder passes with gradients (a clip and its intra-negative
    # in each view; backward ~2x forward); moco runs 2 with gradients (the queries) and 4 without
    # (the keys of both views and of both intra-negatives).
    print(f"backbone forward: {gflops:.2f} GFLOPs per clip; a training step per clip: cmc and simclr "
          f"~{3 * 4 * gflops:.1f} GFLOPs, moco ~{(3 * 2 + 4) * gflops:.1f} GFLOPs")

    on_device = {"rgb": torch.randint(0, 256, (batch, 3, length, crop, crop), dtype=torch.uint8),
                 "res": torch.randint(0, 256, (batch, 3, length, crop, crop), dtype=torch.uint8),
                 "index": torch.arange(batch)}
    on_device = {k: v.to(device) for k, v in on_device.items()}
    n_videos = max(4 * batch, p.pretrain.nce_k + 1)

    def make_step(method: str):
        pretrain = dataclasses.replace(p.pretrain, method=method, modality="res", intra_neg=True, neg="repeat",
                                       batch_size=batch, nce_k=max(batch, p.pretrain.nce_k))
        setup = PretrainSetup(ModelParams(config["arch"], config["width"]), pretrain, length, crop)
        torch.manual_seed(0)
        encoder = runtime.prepare_model(build_encoder(config))
        trained = runtime.maybe_compile(encoder)
        objective = build_objective(encoder, n_videos, pretrain, batch, torch.Generator().manual_seed(0)).to(device)
        optimizer = torch.optim.SGD(encoder.parameters(), lr=0.01, momentum=0.9)
        generator = torch.Generator(device=device).manual_seed(0)

        def step(b):
            loss, _ = batch_loss(b, setup, trained, objective, runtime, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            objective.after_step(trained)

        return step

    for method in methods or sorted(METHODS):
        step = make_step(method)
        for _ in range(3):  # warm-up (cuDNN autotuning, compilation)
            step(on_device)
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step(on_device)
        sync(device)
        print(f"{method:6s} training step with intra-negatives, clips on the device: "
              f"{steps * batch / (time.perf_counter() - start):8.1f} clips/s")

    step = make_step(p.pretrain.method)
    with tempfile.TemporaryDirectory() as tmp:
        folder = shards or Path(tmp)
        if shards is None:
            random_shards(folder, n_videos=max(4 * batch, 32), frames=length + 16, height=height, width=width)
        reader = ShardReader(folder / "frames", folder / "motion", [0])
        ids = sorted(reader.videos)
        dataset = ClipDataset(reader, ids, ("rgb", "res"), length, crop, train=True, seed=0)
        sampler = EpochSampler(len(ids), 0)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                                             drop_last=True, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
        done, epoch, start = 0, 0, None
        while done < steps * batch:
            sampler.set_epoch(epoch)
            for b in loader:
                if start is None:  # the first batch includes worker start-up
                    step(b)
                    sync(device)
                    start = time.perf_counter()
                    continue
                step(b)
                done += batch
                if done >= steps * batch:
                    break
            epoch += 1
        sync(device)
        print(f"{p.pretrain.method} training step, from the shards ({workers} workers): "
              f"{done / (time.perf_counter() - start):8.1f} clips/s")

        backbone = encoder.backbone
        eval_set = ClipDataset(reader, ids, ("rgb",), length, crop, train=False, seed=0, eval_clips=10)
        eval_loader = torch.utils.data.DataLoader(eval_set, batch_size=batch, num_workers=workers)
        start, n = time.perf_counter(), 0
        with torch.no_grad():
            for b in eval_loader:
                with runtime.autocast():
                    backbone.retrieval_features(to_model_input(runtime.to_device(b["rgb"])))
                n += len(b["rgb"])
                if n >= steps * batch * 2:
                    break
        sync(device)
        print(f"feature extraction, from the shards:          {n / (time.perf_counter() - start):8.1f} clips/s")


if __name__ == "__main__":
    main()
