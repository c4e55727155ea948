"""Every artifact path, defined once. All paths are relative to the repository root."""
from __future__ import annotations

from pathlib import Path

ARTIFACTS = Path("artifacts")
SCRATCH = ARTIFACTS / ".tmp"  # temporary files of atomic writes: no stage depends on it

DEMO_VIDEOS = ARTIFACTS / "demo" / "videos"
DEMO_LISTS = ARTIFACTS / "demo" / "lists"

DATASET = ARTIFACTS / "dataset"
INDEX = DATASET / "index.json"  # every accepted video, all shards
DATASET_REJECTS = DATASET / "rejects.json"
SHARD_LISTS = DATASET / "shards"  # one video list per shard, so one new video touches one shard

FRAMES = ARTIFACTS / "frames"
MOTION = ARTIFACTS / "motion"

VERIFIED = ARTIFACTS / "verified"
VERIFIED_VIDEOS = VERIFIED / "videos.json"  # the usable videos and the checksum of every shard
VERIFIED_REJECTS = VERIFIED / "rejects.json"  # every stage's rejects, with the stage and reason

PRETRAIN = ARTIFACTS / "pretrain"
PRETRAIN_CHECKPOINT = PRETRAIN / "model.pt"
PRETRAIN_RESUME = ARTIFACTS / "pretrain_resume"  # not a dvc output: it must survive reruns and clones
DVCLIVE = ARTIFACTS / "dvclive"  # live training logs (DVCLive): metrics.json and plots/ per run
PRETRAIN_LIVE = DVCLIVE / "pretrain"

FEATURES = ARTIFACTS / "features"

METRICS = ARTIFACTS / "metrics"
RETRIEVAL_METRICS = METRICS / "retrieval.json"
FINETUNE_METRICS = METRICS / "finetune.json"
PLOTS = ARTIFACTS / "plots"
RETRIEVAL_PLOT = PLOTS / "retrieval_topk.csv"

EXPORT = ARTIFACTS / "export"  # model.safetensors, model.pth, config.json, README.md (the model card)

PREVIEW = ARTIFACTS / "preview"


def shard_list(shard_id: int) -> Path:
    return SHARD_LISTS / f"{shard_id}.json"


def frames_shard(shard_id: int) -> Path:
    return FRAMES / f"{shard_id}.h5"


def frames_manifest(shard_id: int) -> Path:
    return FRAMES / f"{shard_id}.json"


def motion_shard(shard_id: int) -> Path:
    return MOTION / f"{shard_id}.h5"


def motion_manifest(shard_id: int) -> Path:
    return MOTION / f"{shard_id}.json"


def features_file(model_name: str) -> Path:
    """Per-video features of one model ("iic" or "random")."""
    return FEATURES / f"{model_name}.npz"


def finetune_live(model_name: str) -> Path:
    """DVCLive folder of one fine-tuning run ("iic" or "random")."""
    return DVCLIVE / "finetune" / model_name
