"""Typed, strict view of ``params.yaml``: one frozen dataclass per section.

Unknown keys and wrong types fail at start with the dotted name of the key, so a typo in
``params.yaml`` or in ``dvc exp run -S`` never silently falls back to a default. The code
holds no defaults: every setting is read from ``params.yaml``.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A params.yaml key is unknown, missing or of the wrong type."""


@dataclasses.dataclass(frozen=True)
class DatasetParams:
    """Where the videos and the split lists are (UCF101 layout)."""

    root: str  # <root>/<Class>/<video>
    lists: str  # folder with classInd.txt, trainlistNN.txt, testlistNN.txt
    split: int  # 1, 2 or 3
    max_reject_share: float  # a stage fails when more than this share of videos is rejected


@dataclasses.dataclass(frozen=True)
class DemoParams:
    """The procedural demo dataset (classes differ by motion only)."""

    seed: int
    classes: int
    videos: int
    clips_per_group: int
    test_every: int  # every test_every-th group goes to the test split
    frames: int
    height: int
    width: int
    fps: int


@dataclasses.dataclass(frozen=True)
class ShardsParams:
    """Shard ids: one dvc stage per id; the shard count is len(ids)."""

    ids: list[int]


@dataclasses.dataclass(frozen=True)
class FramesParams:
    height: int  # stored frame height (the paper: 128)
    width: int  # stored frame width (the paper: 171)
    min_frames: int  # shorter videos are rejected: one clip must fit
    n_jobs: int  # joblib worker processes for decoding


@dataclasses.dataclass(frozen=True)
class StorageParams:
    """How frames, residuals and flow are stored in the HDF5 shards."""

    encoding: str  # raw | lzf (HDF5 filter) | jpeg (encoded frames)
    jpeg_quality: int


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
class MotionParams:
    bound: float  # flow is clipped to +-bound pixels before uint8 quantisation
    n_jobs: int  # joblib worker processes
    tvl1: TVL1Params


@dataclasses.dataclass(frozen=True)
class ClipParams:
    length: int  # frames per clip (the paper: 16)
    crop: int  # square crop side (the paper: 112)
    eval_clips: int  # evenly spaced clips per video for features and video-level testing


@dataclasses.dataclass(frozen=True)
class ModelParams:
    arch: str  # r3d | r21d | c3d | r3d18
    width: int  # stem channels (the paper: 64)


@dataclasses.dataclass(frozen=True)
class RuntimeParams:
    device: str  # auto | cpu | cuda
    bf16: bool  # autocast to bfloat16 on CUDA
    channels_last: bool  # channels_last_3d memory format on CUDA
    cudnn_benchmark: bool
    compile: bool  # torch.compile the encoders
    workers: int  # data-loader worker processes


@dataclasses.dataclass(frozen=True)
class PretrainParams:
    modality: str  # view 2: res | u | v | rgb
    intra_neg: bool  # false: the plain CMC baseline
    neg: str  # repeat | shuffle
    nce_k: int
    nce_t: float
    nce_m: float
    feat_dim: int
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    lr_steps: list[int]
    lr_decay: float
    seed: int
    checkpoint_every: int  # epochs between resumable checkpoints


@dataclasses.dataclass(frozen=True)
class FeaturesParams:
    batch_size: int
    random_init_seed: int


@dataclasses.dataclass(frozen=True)
class RetrieveParams:
    topk: list[int]


@dataclasses.dataclass(frozen=True)
class FinetuneParams:
    modality: str  # input of the fine-tuned network: rgb | res | u | v
    dropout: float  # before the new linear classifier
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    val_videos: int  # train videos held out for model selection (whole groups)
    select_by: str  # the kept epoch has the best validation: accuracy | loss
    plateau_factor: float
    plateau_patience: int
    min_lr: float
    seed: int


@dataclasses.dataclass(frozen=True)
class Params:
    dataset: DatasetParams
    demo: DemoParams
    shards: ShardsParams
    frames: FramesParams
    storage: StorageParams
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
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
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


def build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, failing on unknown, missing or mistyped keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'params'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
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
        if dataclasses.is_dataclass(hint):
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
    """Cross-field checks that types alone cannot express."""
    choices = {
        "storage.encoding": (p.storage.encoding, ("raw", "lzf", "jpeg")),
        "model.arch": (p.model.arch, ("r3d", "r21d", "c3d", "r3d18")),
        "runtime.device": (p.runtime.device, ("auto", "cpu", "cuda")),
        "pretrain.modality": (p.pretrain.modality, ("res", "u", "v", "rgb")),
        "pretrain.neg": (p.pretrain.neg, ("repeat", "shuffle")),
        "finetune.modality": (p.finetune.modality, ("rgb", "res", "u", "v")),
        "finetune.select_by": (p.finetune.select_by, ("accuracy", "loss")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    if p.shards.ids != list(range(len(p.shards.ids))) or not p.shards.ids:
        raise ConfigError(f"shards.ids: must be 0..N-1 in order, got {p.shards.ids}")
    if p.clip.crop > min(p.frames.height, p.frames.width):
        raise ConfigError(f"clip.crop: {p.clip.crop} exceeds the stored frame size")
    if p.frames.min_frames < p.clip.length:
        raise ConfigError("frames.min_frames: must be at least clip.length so one clip fits")
    if p.pretrain.neg == "shuffle" and p.clip.length % 4:
        raise ConfigError("pretrain.neg: shuffle cuts the clip in 4 chunks; clip.length must divide by 4")


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
        if dataclasses.is_dataclass(value):
            return StageParams(value, self._allowed, self._accessed, key + ".")
        if not any(key == a or key.startswith(a + ".") for a in self._allowed):
            raise ConfigError(f"this stage reads {key}, which its params: list in dvc.yaml does not name")
        self._accessed.add(key)
        return value

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
        keys |= leaf_keys(value, key + ".") if dataclasses.is_dataclass(value) else {key}
    return keys
