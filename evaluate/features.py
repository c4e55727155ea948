"""Per-video features: mean over evenly spaced clips of the last conv block's pooled map.

Under torchrun the features stage shares the videos out (every world-th to each rank) and
gathers them in order; rank 0 writes the same file one process would.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline import variants
from pipeline.atomic import atomic_path
from pipeline.errors import NonFiniteError
from pipeline.runtime import Runtime
from pipeline.schema import ClipParams, FeaturesParams, RuntimeParams
from preprocess.shards import ShardReader
from train.checkpoint import Encoder, build_encoder, load_encoder
from train.data import ClipDataset, to_model_input
from train.distributed import gather_shares, process_group, rank_and_world, rank_share

log = logging.getLogger(__name__)


@torch.no_grad()
def video_features(
    encoder: Encoder,
    reader: ShardReader,
    video_ids: list[str],
    modality: str,
    length: int,
    crop: int,
    n_clips: int,
    batch_size: int,
    workers: int,
    runtime: Runtime,
) -> np.ndarray:
    """(N,D) float32 features, row i for video_ids[i]: the mean of its ``n_clips`` clip features.

    Clips are accumulated per video by index, so every video counts whatever the batch size.
    """
    dataset = ClipDataset(reader, video_ids, (modality,), length, crop, train=False, seed=0, eval_clips=n_clips)
    # Its own generator: iterating a loader draws a seed, and the pretraining monitor calls this
    # between epochs, where a draw from the global generator would change training.
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, generator=torch.Generator().manual_seed(0)
    )
    model = encoder.backbone.to(runtime.device).eval()
    sums: torch.Tensor | None = None
    counts = torch.zeros(len(video_ids))
    for batch in tqdm(loader, desc=f"features {modality}", leave=False):
        with runtime.autocast():
            feats = model.retrieval_features(to_model_input(runtime.to_device(batch[modality]))).float().cpu()
        if sums is None:
            sums = torch.zeros(len(video_ids), feats.shape[1])
        sums.index_add_(0, batch["index"], feats)
        counts.index_add_(0, batch["index"], torch.ones(len(feats)))
    if sums is None or not torch.all(counts == n_clips):
        raise RuntimeError(f"expected {n_clips} clips per video, got counts {counts.unique().tolist()}")  # a bug
    features = (sums / counts.unsqueeze(1)).numpy().astype(np.float32)
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        raise NonFiniteError(
            f"{modality} features of {int(bad.sum())} of {len(video_ids)} videos are not finite "
            f"(e.g. {video_ids[int(np.argmax(bad))]}): the model's weights hold NaN or inf"
        )
    return features


def extract_all(
    encoder: Encoder,
    view2: str,
    reader: ShardReader,
    length: int,
    crop: int,
    n_clips: int,
    batch_size: int,
    workers: int,
    runtime: Runtime,
    out: Path,
) -> dict[str, np.ndarray]:
    """Features of both views (the one encoder on RGB and on ``view2``) for every video, as one .npz.

    Under torchrun each rank computes its share of the videos; every rank returns them all and
    rank 0 writes ``out``.
    """
    start = time.perf_counter()
    ids = sorted(reader.videos)
    share = [ids[i] for i in rank_share(len(ids))]

    def features_of(modality: str) -> np.ndarray:
        mine = video_features(encoder, reader, share, modality, length, crop, n_clips, batch_size, workers, runtime)
        return gather_shares(torch.from_numpy(mine), len(ids)).numpy()

    result: dict[str, Any] = {
        "ids": np.array(ids),
        "labels": np.array([reader.videos[v]["label"] for v in ids], np.int64),
        "split": np.array([reader.videos[v]["split"] for v in ids]),
        "rgb": features_of("rgb"),
        "view2": features_of(view2),
        "view2_modality": np.array(view2),
    }
    if rank_and_world()[0] == 0:
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, **result)
    log.info(
        "features: %d videos x %d clips, rgb %s + %s %s in %.0fs -> %s",
        len(ids),
        n_clips,
        result["rgb"].shape[1],
        view2,
        result["view2"].shape[1],
        time.perf_counter() - start,
        out,
    )
    return result


def evaluation_encoders(
    checkpoints: dict[str, Path], random_init_seed: int
) -> tuple[dict[str, Any], dict[str, Encoder]]:
    """(iic's config, {model: encoder}) for every pretrained checkpoint ({model: path}) and for
    random init: the same architecture as IIC, seeded by ``random_init_seed`` (one random-init
    encoder for the features and the temporal stages alike)."""
    configs, encoders = {}, {}
    for model, path in checkpoints.items():
        configs[model], encoders[model] = load_encoder(path)
    config = configs[variants.IIC]
    torch.manual_seed(random_init_seed)
    encoders[variants.RANDOM] = build_encoder(config)
    return config, encoders


def features_stage(
    checkpoints: dict[str, Path],
    reader: ShardReader,
    clip: ClipParams,
    features: FeaturesParams,
    runtime_params: RuntimeParams,
    out: dict[str, Path],
) -> None:
    """The dvc stage ``features``: every pretrained encoder's features and a random-init encoder's.

    checkpoints: {model: model.pt} of the pretrained models; out: {model: .npz} of those and
    "random". Under torchrun the ranks share the videos out.
    """
    with process_group(runtime_params) as runtime:
        config, encoders = evaluation_encoders(checkpoints, features.random_init_seed)
        for name, encoder in encoders.items():
            extract_all(
                encoder,
                config["view2"],
                reader,
                clip.length,
                clip.crop,
                clip.eval_clips,
                features.batch_size,
                runtime_params.workers,
                runtime,
                out[name],
            )
