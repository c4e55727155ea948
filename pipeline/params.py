"""Typed, strict view of ``params.yaml``: one frozen dataclass per section.

Unknown keys, wrong types, choices outside a ``Literal`` and values outside a field's range
fail at start with the dotted name of the key, before a stage writes anything, so a typo in
``params.yaml`` or in ``dvc exp run -S`` never silently falls back to a default or overwrites a
good output. The code holds no defaults: every setting is read from ``params.yaml``.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from pipeline.errors import ConfigError

__all__ = ["ConfigError", "Params", "StageParams", "build", "leaf_keys", "load_params"]


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed interval of a number, attached to a field as ``Annotated[float, Range(...)]``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: low itself is not allowed
    high_open: bool = False

    def check(self, value: float, key: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        if not (low_ok and high_ok):
            raise ConfigError(f"{key}: {value!r} is outside {self}")

    def __str__(self) -> str:
        low = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        high = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return f"{low}, {high}"


Count = Annotated[int, Range(low=1)]  # epochs, batch sizes, sizes: at least 1
NonNegativeInt = Annotated[int, Range(low=0)]
Positive = Annotated[float, Range(low=0, low_open=True)]
NonNegative = Annotated[float, Range(low=0)]
Share = Annotated[float, Range(low=0, high=1)]
Fraction = Annotated[float, Range(low=0, high=1, high_open=True)]  # momenta, dropout: in [0, 1)
Jobs = Annotated[int, Range(low=-1)]  # joblib: -1 is every core, 0 is refused below

Arch = Literal["r3d", "r21d", "c3d", "r3d18", "i3d", "s3d"]
Modality = Literal["rgb", "res", "u", "v"]
IntraNegative = Literal["repeat", "shuffle"]
Method = Literal["cmc", "moco", "simclr"]


@dataclasses.dataclass(frozen=True)
class DatasetParams:
    """Where the videos and their lists are, and in which layout."""

    format: Literal["ucf101", "hmdb51", "list", "folder", "kinetics_csv", "unlabeled"]  # preprocess/formats.py
    root: str  # the videos
    lists: str  # the lists folder (ucf101, hmdb51, list), the CSV (kinetics_csv), or the root (folder, unlabeled)
    split: Annotated[int, Range(low=1, high=3)]  # official split 1, 2 or 3 (ucf101, hmdb51)
    test_ratio: Annotated[float, Range(low=0, high=1, low_open=True, high_open=True)]  # folder: groups drawn for test
    split_seed: int  # folder: the seed of that draw
    max_reject_share: Share  # fail when more than this share of the dataset's videos is rejected


@dataclasses.dataclass(frozen=True)
class DemoParams:
    """One procedural demo dataset (classes differ by motion only)."""

    layout: Literal["ucf101", "hmdb51"]  # which official list format the generator writes
    seed: int  # appearances (backgrounds, objects, placements) and speeds
    motions: list[str]  # the classes, in label order: names of preprocess.demo.MOTIONS
    videos: Count  # video i has class i % len(motions): +1 adds exactly one video
    clips_per_group: Count
    test_every: Annotated[int, Range(low=2)]  # every test_every-th group goes to the test split
    frames: Count
    height: Count
    width: Count
    fps: Count


@dataclasses.dataclass(frozen=True)
class ShardsParams:
    """Shard ids: one dvc stage per id; the shard count is len(ids)."""

    ids: list[NonNegativeInt]


@dataclasses.dataclass(frozen=True)
class FramesParams:
    height: Count  # stored frame height (the paper: 128)
    width: Count  # stored frame width (the paper: 171)
    min_frames: Count  # shorter videos are rejected: one clip must fit
    n_jobs: Jobs  # joblib worker processes for decoding
    decode_timeout: Positive  # seconds: a video whose ffmpeg decode takes longer is rejected


@dataclasses.dataclass(frozen=True)
class StorageParams:
    """How frames, residuals and flow are stored in the HDF5 shards."""

    encoding: Literal["raw", "lzf", "jpeg"]  # jpeg: encoded frames; lzf: HDF5 filter
    jpeg_quality: Annotated[int, Range(low=1, high=100)]


@dataclasses.dataclass(frozen=True)
class TVL1Params:
    """cv2.optflow.DualTVL1OpticalFlow_create arguments."""

    tau: float
    lambda_: float
    theta: float
    nscales: int
    warps: int
    epsilon: float
    inner_iterations: int
    outer_iterations: int
    scale_step: float
    gamma: float
    median_filtering: int
    use_initial_flow: bool  # warm-start each pair from the previous pair's flow


@dataclasses.dataclass(frozen=True)
class TorchFlowParams:
    """Where and how wide the PyTorch TV-L1 (motion.backend: torch) runs."""

    device: Literal["auto", "cpu", "cuda"]  # auto: the GPU when there is one
    batch: Count  # frame pairs per call; with tvl1.use_initial_flow also the videos read at once
    compile: bool  # torch.compile the inner iteration (a one-off compilation per stage process)


@dataclasses.dataclass(frozen=True)
class MotionParams:
    flow: Literal["tvl1", "none"]  # none: residuals only (no u/v view), no TV-L1 cost
    backend: Literal["opencv", "torch"]  # opencv: one video per pool worker; torch: batched pairs, GPU or CPU
    bound: Positive  # flow is clipped to +-bound pixels before uint8 quantisation
    n_jobs: Jobs  # opencv: joblib worker processes; torch on the CPU: intra-op threads
    tvl1: TVL1Params
    torch: TorchFlowParams


@dataclasses.dataclass(frozen=True)
class PoolParams:
    """Where the frames and motion stages run their per-video tasks (outputs do not depend on it)."""

    backend: Literal["loky", "dask"]  # loky: local processes; dask: a dask.distributed cluster
    scheduler: str  # dask: the scheduler's address, e.g. tcp://10.0.0.5:8786; loky: ignored
    connect_timeout: Positive  # seconds to wait for the scheduler


@dataclasses.dataclass(frozen=True)
class ClipParams:
    length: Count  # frames per clip (the paper: 16)
    crop: Count  # square crop side (the paper: 112)
    eval_clips: Count  # evenly spaced clips per video for features and video-level testing


@dataclasses.dataclass(frozen=True)
class ModelParams:
    arch: Arch
    width: Count  # stem channels (the paper: 64)


@dataclasses.dataclass(frozen=True)
class RuntimeParams:
    device: Literal["auto", "cpu", "cuda"]
    bf16: bool  # autocast to bfloat16 on CUDA
    channels_last: bool  # channels_last_3d memory format on CUDA
    cudnn_benchmark: bool
    compile: bool  # torch.compile the encoders
    workers: NonNegativeInt  # data-loader worker processes


@dataclasses.dataclass(frozen=True)
class PretrainParams:
    dataset: str  # a key of datasets: pretraining reads its train split
    method: Method  # the contrastive method (train/methods.py)
    modality: Modality  # view 2
    intra_neg: bool  # false: the plain CMC baseline
    neg: IntraNegative
    nce_k: Count  # cmc: negatives per anchor, at most train videos - 1; moco: queue length; simclr: unused
    nce_t: Positive
    nce_m: Fraction  # cmc: memory-bank momentum
    moco_m: Fraction  # moco: key-encoder EMA momentum
    feat_dim: Count
    epochs: Count
    batch_size: Count
    lr: Positive
    momentum: Fraction
    weight_decay: NonNegative
    lr_steps: list[Count]
    lr_decay: Annotated[float, Range(low=0, high=1, low_open=True)]
    seed: int
    checkpoint_every: Count  # epochs between resumable checkpoints


@dataclasses.dataclass(frozen=True)
class FeaturesParams:
    batch_size: Count
    random_init_seed: int


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    datasets: list[str]  # keys of datasets: features, retrieval and fine-tuning run on each


@dataclasses.dataclass(frozen=True)
class RetrieveParams:
    topk: list[Count]


@dataclasses.dataclass(frozen=True)
class FinetuneParams:
    modality: Modality  # input of the fine-tuned network
    dropout: Fraction  # before the new linear classifier
    epochs: Count
    batch_size: Count
    lr: Positive
    momentum: Fraction
    weight_decay: NonNegative
    val_videos: Count  # train videos held out for model selection (whole groups)
    select_by: Literal["accuracy", "loss"]  # the kept epoch has the best validation accuracy or loss
    plateau_factor: Annotated[float, Range(low=0, high=1, low_open=True, high_open=True)]
    plateau_patience: NonNegativeInt
    min_lr: NonNegative
    seed: int


@dataclasses.dataclass(frozen=True)
class Params:
    datasets: dict[str, DatasetParams]  # every dataset of the experiment, by name
    demo: dict[str, DemoParams]  # the procedural demo datasets, by name
    evaluate: EvaluateParams
    shards: ShardsParams
    frames: FramesParams
    storage: StorageParams
    pool: PoolParams
    motion: MotionParams
    clip: ClipParams
    model: ModelParams
    runtime: RuntimeParams
    pretrain: PretrainParams
    features: FeaturesParams
    retrieve: RetrieveParams
    finetune: FinetuneParams


def _yaml_key(field: dataclasses.Field) -> str:
    # "lambda" is a Python keyword; the dataclass field carries a trailing underscore.
    return field.name.rstrip("_")


def _check_scalar(value: Any, expected: Any, key: str) -> Any:
    origin = typing.get_origin(expected)
    if origin is Annotated:
        base, *constraints = typing.get_args(expected)
        value = _check_scalar(value, base, key)
        for constraint in constraints:
            constraint.check(value, key)
        return value
    if origin is Literal:
        allowed = typing.get_args(expected)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if not value:
            raise ConfigError(f"{key}: must not be empty")
        return [_check_scalar(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        expected = next(t for t in options if t is not type(None))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"{key}: expected {expected.__name__}, got {value!r}")
    return value


NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # dataset names: in stage names and artifact paths


def _build_map(value_type: type, raw: Any, key: str) -> dict[str, Any]:
    """A ``name: section`` mapping (``datasets``, ``demo``): names are lower-case identifiers."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{key}: expected a non-empty mapping of names to sections, got {raw!r}")
    for name in raw:
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(f"{key}: {name!r} is not a valid name (lower-case letters, digits, _; a letter first)")
    return {name: build(value_type, section, f"{key}.{name}.") for name, section in raw.items()}


def build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, failing on unknown, missing or mistyped keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'params'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {_yaml_key(f): f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(fields))})")
    values = {}
    for key, field in fields.items():
        dotted = f"{prefix}{key}"
        if key not in raw:
            raise ConfigError(f"missing key {dotted}")
        hint = hints[field.name]
        if typing.get_origin(hint) is dict:
            values[field.name] = _build_map(typing.get_args(hint)[1], raw[key], dotted)
        elif dataclasses.is_dataclass(hint):
            values[field.name] = build(hint, raw[key], dotted + ".")
        else:
            values[field.name] = _check_scalar(raw[key], hint, dotted)
    return cls(**values)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole params.yaml."""
    with open(path) as f:
        raw = yaml.safe_load(f)
    params = build(Params, raw, "")
    validate(params)
    return params


def validate(p: Params) -> None:
    """Cross-field checks that a field's type and range alone cannot express."""
    if p.pretrain.dataset not in p.datasets:
        raise ConfigError(f"pretrain.dataset: {p.pretrain.dataset!r} is not one of datasets ({', '.join(p.datasets)})")
    for name in p.evaluate.datasets:
        if name not in p.datasets:
            raise ConfigError(f"evaluate.datasets: {name!r} is not one of datasets ({', '.join(p.datasets)})")
    for name in p.evaluate.datasets:
        if p.datasets[name].format == "unlabeled":
            raise ConfigError(f"evaluate.datasets: {name} is unlabeled (datasets.{name}.format): it can be pretrained "
                              "on but has no classes to retrieve or fine-tune by; remove it from evaluate.datasets")
    if len(set(p.evaluate.datasets)) != len(p.evaluate.datasets):
        raise ConfigError(f"evaluate.datasets: a dataset is listed twice in {p.evaluate.datasets}")
    if p.shards.ids != list(range(len(p.shards.ids))):
        raise ConfigError(f"shards.ids: must be 0..N-1 in order, got {p.shards.ids}")
    for key, jobs in (("frames.n_jobs", p.frames.n_jobs), ("motion.n_jobs", p.motion.n_jobs)):
        if jobs == 0:
            raise ConfigError(f"{key}: 0 workers; use a positive number or -1 for every core")
    if p.motion.flow == "none":
        for key, modality in (("pretrain.modality", p.pretrain.modality), ("finetune.modality", p.finetune.modality)):
            if modality in ("u", "v"):
                raise ConfigError(f"{key}: {modality} is a flow channel, but motion.flow is none (no flow is computed)")
    if p.motion.backend == "torch" and p.motion.tvl1.gamma != 0:
        raise ConfigError("motion.tvl1.gamma: the torch backend does not implement OpenCV's illumination term; "
                          "use 0 or motion.backend: opencv")
    if p.clip.crop > min(p.frames.height, p.frames.width):
        raise ConfigError(f"clip.crop: {p.clip.crop} exceeds the stored frame size")
    if p.frames.min_frames < p.clip.length:
        raise ConfigError("frames.min_frames: must be at least clip.length so one clip fits")
    if p.pretrain.neg == "shuffle" and p.clip.length % 4:
        raise ConfigError("pretrain.neg: shuffle cuts the clip in 4 chunks; clip.length must divide by 4")
    if p.pretrain.lr_steps != sorted(set(p.pretrain.lr_steps)):
        raise ConfigError(f"pretrain.lr_steps: must increase, got {p.pretrain.lr_steps}")
    if len(set(p.retrieve.topk)) != len(p.retrieve.topk):
        raise ConfigError(f"retrieve.topk: listed twice in {p.retrieve.topk}")


class StageParams:
    """Read-only view of Params that lets a stage read only the keys dvc.yaml lists for it.

    Reading an unlisted key fails at once (DVC would not rerun the stage when it changes);
    every key read is recorded, so a test can check that nothing listed goes unread.
    """

    def __init__(self, obj: Any, allowed: frozenset[str], accessed: set[str], prefix: str = ""):
        self._obj, self._allowed, self._accessed, self._prefix = obj, allowed, accessed, prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        key = f"{self._prefix}{name.rstrip('_')}"
        value = getattr(self._obj, name)
        if dataclasses.is_dataclass(value) or isinstance(value, dict):
            return StageParams(value, self._allowed, self._accessed, key + ".")
        if not any(key == a or key.startswith(a + ".") for a in self._allowed):
            raise ConfigError(f"this stage reads {key}, which its params: list in dvc.yaml does not name")
        self._accessed.add(key)
        return value

    def __getitem__(self, name: str) -> "StageParams":
        """One named section of a mapping (``p.datasets["ucf101"]``)."""
        if not isinstance(self._obj, dict):
            raise TypeError(f"{self._prefix.rstrip('.')} is a section, not a mapping of names")
        if name not in self._obj:
            raise ConfigError(f"{self._prefix}{name}: no such entry (known: {', '.join(self._obj)})")
        return StageParams(self._obj[name], self._allowed, self._accessed, f"{self._prefix}{name}.")

    def keys(self) -> list[str]:
        """The names of a mapping (``p.datasets.keys()``)."""
        if not isinstance(self._obj, dict):
            raise TypeError(f"{self._prefix.rstrip('.')} is a section, not a mapping of names")
        return list(self._obj)

    def materialize(self) -> Any:
        """The section as its plain frozen dataclass, every key read through this view."""
        values = {}
        for field in dataclasses.fields(self._obj):
            value = getattr(self, field.name)
            values[field.name] = value.materialize() if isinstance(value, StageParams) else value
        return type(self._obj)(**values)


def leaf_keys(obj: Any, prefix: str = "") -> set[str]:
    """Dotted names of every leaf setting under a dataclass (``lambda_`` as ``lambda``)."""
    keys = set()
    for field in dataclasses.fields(obj):
        key = f"{prefix}{_yaml_key(field)}"
        value = getattr(obj, field.name)
        if isinstance(value, dict):
            for name, section in value.items():
                keys |= leaf_keys(section, f"{key}.{name}.")
        else:
            keys |= leaf_keys(value, key + ".") if dataclasses.is_dataclass(value) else {key}
    return keys
