"""Every artifact path, defined once. All paths are relative to the repository root.

Per-dataset artifacts live under the dataset's name (a key of ``datasets`` in params.yaml), so
each dataset's stages have their own outputs and DVC reruns one dataset's stages alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

ARTIFACTS = Path("artifacts")
SCRATCH = ARTIFACTS / ".tmp"  # temporary files of atomic writes: no stage depends on it

DEMO = ARTIFACTS / "demo"  # <name>/videos and <name>/lists: the procedural demo datasets
DATA = ARTIFACTS / "data"  # <name>/{dataset,frames,motion,verified,features}

PRETRAIN_DATA = ARTIFACTS / "pretrain_data"  # <dataset>/videos.json: the verified lists pretraining reads
PRETRAIN = ARTIFACTS / "pretrain"  # <model>/model.pt per pretrained model (pretrain.models)
PRETRAIN_RESUME = ARTIFACTS / "pretrain_resume"  # not a dvc output: it must survive reruns and clones
DVCLIVE = ARTIFACTS / "dvclive"  # live training logs (DVCLive): metrics.json and plots/ per run


def pretrain_data(dataset: str) -> Path:
    """The copy of ``dataset``'s verified list that pretraining reads (pretrain.datasets)."""
    return PRETRAIN_DATA / dataset / "videos.json"


def pretrain_checkpoint(model: str) -> Path:
    """The final checkpoint of pretrained model ``model`` ("iic" or "baseline")."""
    return PRETRAIN / model / "model.pt"


def pretrain_resume(model: str) -> Path:
    """The resume state of an unfinished pretraining of ``model``."""
    return PRETRAIN_RESUME / model / "last.pt"


def pretrain_live(model: str) -> Path:
    """DVCLive folder of the pretraining of ``model``: its loss and learning curve."""
    return DVCLIVE / "pretrain" / model


METRICS = ARTIFACTS / "metrics"  # <name>/retrieval.json, knn.json, linear.json, finetune.json
PLOTS = ARTIFACTS / "plots"  # <name>/retrieval_topk.csv, <name>/retrieval_gallery.png

REPORT = ARTIFACTS / "report.md"  # every evaluated dataset beside the paper's numbers
REPORT_DATA = ARTIFACTS / "report.json"  # the same numbers, for the model card and scripts

EXPORT = ARTIFACTS / "export"  # model.safetensors, model.pth, config.json, README.md (the model card)

PREVIEW = ARTIFACTS / "preview"


def shard_file(folder: Path, shard_id: int) -> Path:
    """The HDF5 file of shard ``shard_id`` in a frames or motion folder."""
    return Path(folder) / f"{shard_id}.h5"


def shard_manifest(folder: Path, shard_id: int) -> Path:
    """The manifest (JSON) beside ``shard_file(folder, shard_id)``."""
    return Path(folder) / f"{shard_id}.json"


def shard_id_of(path: Path) -> int | None:
    """The shard id of a shard file or manifest (``3.h5``, ``3.json``); None for any other file."""
    stem, _, suffix = Path(path).name.partition(".")
    return int(stem) if suffix in ("h5", "json") and stem.isdigit() else None


def demo_videos(name: str) -> Path:
    return DEMO / name / "videos"


def demo_lists(name: str) -> Path:
    return DEMO / name / "lists"


@dataclasses.dataclass(frozen=True)
class DatasetPaths:
    """The artifacts of one named dataset."""

    name: str

    @property
    def root(self) -> Path:
        return DATA / self.name

    @property
    def index(self) -> Path:  # every accepted video, all shards
        return self.root / "dataset" / "index.json"

    @property
    def dataset_rejects(self) -> Path:
        return self.root / "dataset" / "rejects.json"

    def shard_list(self, shard_id: int) -> Path:  # one list per shard: one new video touches one shard
        return self.root / "dataset" / "shards" / f"{shard_id}.json"

    @property
    def frames(self) -> Path:
        return self.root / "frames"

    @property
    def motion(self) -> Path:
        return self.root / "motion"

    def frames_shard(self, shard_id: int) -> Path:
        return shard_file(self.frames, shard_id)

    def frames_manifest(self, shard_id: int) -> Path:
        return shard_manifest(self.frames, shard_id)

    def motion_shard(self, shard_id: int) -> Path:
        return shard_file(self.motion, shard_id)

    def motion_manifest(self, shard_id: int) -> Path:
        return shard_manifest(self.motion, shard_id)

    @property
    def verified_videos(self) -> Path:  # the usable videos and the checksum of every shard
        return self.root / "verified" / "videos.json"

    @property
    def verified_rejects(self) -> Path:  # every stage's rejects, with the stage and reason
        return self.root / "verified" / "rejects.json"

    def features_file(self, model_name: str) -> Path:
        """Per-video features of one model ("iic", "baseline" or "random")."""
        return self.root / "features" / f"{model_name}.npz"

    @property
    def retrieval_metrics(self) -> Path:
        return METRICS / self.name / "retrieval.json"

    @property
    def knn_metrics(self) -> Path:
        return METRICS / self.name / "knn.json"

    @property
    def linear_metrics(self) -> Path:
        return METRICS / self.name / "linear.json"

    @property
    def finetune_metrics(self) -> Path:
        return METRICS / self.name / "finetune.json"

    @property
    def temporal_metrics(self) -> Path:
        return METRICS / self.name / "temporal.json"

    @property
    def retrieval_gallery(self) -> Path:
        return PLOTS / self.name / "retrieval_gallery.png"

    @property
    def retrieval_plot(self) -> Path:
        return PLOTS / self.name / "retrieval_topk.csv"

    @property
    def finetune_lives(self) -> Path:
        """Every fine-tuning run's DVCLive folder of this dataset, one per model (an output of finetune@D)."""
        return DVCLIVE / "finetune" / self.name

    def finetune_live(self, model_name: str) -> Path:
        """DVCLive folder of one fine-tuning run ("iic", "baseline" or "random")."""
        return self.finetune_lives / model_name


def dataset(name: str) -> DatasetPaths:
    return DatasetPaths(name)


def dataset_of(path: Path) -> str | None:
    """The dataset an artifact path belongs to (``artifacts/data/<name>/...``), or None."""
    parts = Path(path).parts
    for i in range(len(parts) - 2):
        if parts[i] == ARTIFACTS.name and parts[i + 1] == DATA.name:
            return parts[i + 2]
    return None


def stage_of(path: Path, kind: str, shard_id: int | str | None = None) -> str:
    """The dvc stage that writes ``path``: ``verify@ucf101``, ``frames@ucf101-3`` (``frames@3``
    outside the per-dataset layout), for messages that say what to rerun."""
    name = dataset_of(path)
    entry = "-".join(str(p) for p in (name, shard_id) if p is not None)
    return f"{kind}@{entry}" if entry else kind
