"""Read ``params.yaml`` into the typed schema (``pipeline/schema.py``), strictly.

Unknown keys, wrong types, choices outside a ``Literal`` and values outside a field's range
fail at start with the dotted name of the key, before a stage writes anything, so a typo in
``params.yaml`` or in ``dvc exp run -S`` never silently falls back to a default or overwrites a
good output. Every setting is read from ``params.yaml``: the schema has no defaults.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from pipeline.errors import ConfigError
from pipeline.schema import Params, yaml_key
from pipeline.torchrun import parse_endpoint

__all__ = ["ConfigError", "build", "load_params", "validate"]


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


# Keys that were replaced: a params file that still has one gets told what to write instead.
REPLACED = {
    "pretrain.dataset": "replaced by pretrain.datasets, a list of dataset keys: write `datasets: [{value}]`",
}

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
    fields = {yaml_key(f): f for f in dataclasses.fields(cls)}
    for key in raw:
        if f"{prefix}{key}" in REPLACED:
            raise ConfigError(f"{prefix}{key}: " + REPLACED[f"{prefix}{key}"].format(value=raw[key]))
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
        elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
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
    for name in p.pretrain.datasets:
        if name not in p.datasets:
            raise ConfigError(f"pretrain.datasets: {name!r} is not one of datasets ({', '.join(p.datasets)})")
    if len(set(p.pretrain.datasets)) != len(p.pretrain.datasets):
        raise ConfigError(f"pretrain.datasets: a dataset is listed twice in {p.pretrain.datasets}")
    for name in p.evaluate.datasets:
        if name not in p.datasets:
            raise ConfigError(f"evaluate.datasets: {name!r} is not one of datasets ({', '.join(p.datasets)})")
    for name in p.evaluate.datasets:
        if p.datasets[name].format == "unlabeled":
            raise ConfigError(
                f"evaluate.datasets: {name} is unlabeled (datasets.{name}.format): it can be pretrained "
                "on but has no classes to retrieve or fine-tune by; remove it from evaluate.datasets"
            )
    if len(set(p.evaluate.datasets)) != len(p.evaluate.datasets):
        raise ConfigError(f"evaluate.datasets: a dataset is listed twice in {p.evaluate.datasets}")
    if p.shards.ids != list(range(len(p.shards.ids))):
        raise ConfigError(f"shards.ids: must be 0..N-1 in order, got {p.shards.ids}")
    n_jobs = [("frames.n_jobs", p.frames.n_jobs), ("motion.n_jobs", p.motion.n_jobs)]
    n_jobs += [(f"demo.{name}.n_jobs", demo.n_jobs) for name, demo in p.demo.items()]
    for key, jobs in n_jobs:
        if jobs == 0:
            raise ConfigError(f"{key}: 0 workers; use a positive number or -1 for every core")
    if p.motion.flow == "none":
        for key, modality in (("pretrain.modality", p.pretrain.modality), ("finetune.modality", p.finetune.modality)):
            if modality in ("u", "v"):
                raise ConfigError(f"{key}: {modality} is a flow channel, but motion.flow is none (no flow is computed)")
    models = p.pretrain.models
    if "iic" not in models or len(set(models)) != len(models):
        raise ConfigError(f"pretrain.models: must name iic once (and baseline at most once), got {models}")
    if "baseline" in models and p.pretrain.baseline.intra_neg == p.pretrain.intra_neg:
        raise ConfigError(
            f"pretrain.baseline.intra_neg: {p.pretrain.baseline.intra_neg} as in pretrain.intra_neg, so the "
            "baseline would be IIC itself; set pretrain.intra_neg: true, or drop baseline from pretrain.models"
        )
    views = ("rgb", p.pretrain.modality, "merge")
    if p.gallery.feature not in views:
        raise ConfigError(
            f"gallery.feature: {p.gallery.feature!r} is not a feature the features stage writes: "
            f"rgb, {p.pretrain.modality} (pretrain.modality) or merge"
        )
    parse_endpoint(p.launch.rdzv_endpoint)
    if p.motion.backend == "torch" and p.motion.tvl1.gamma != 0:
        raise ConfigError(
            "motion.tvl1.gamma: the torch backend does not implement OpenCV's illumination term; "
            "use 0 or motion.backend: opencv"
        )
    if p.clip.crop > min(p.frames.height, p.frames.width):
        raise ConfigError(f"clip.crop: {p.clip.crop} exceeds the stored frame size")
    if p.frames.min_frames < p.clip.length:
        raise ConfigError("frames.min_frames: must be at least clip.length so one clip fits")
    if p.pretrain.neg == "shuffle" and p.clip.length % 4:
        raise ConfigError("pretrain.neg: shuffle cuts the clip in 4 chunks; clip.length must divide by 4")
    if p.pretrain.lr_steps != sorted(set(p.pretrain.lr_steps)):
        raise ConfigError(f"pretrain.lr_steps: must increase, got {p.pretrain.lr_steps}")
    for key, ks in (("retrieve.topk", p.retrieve.topk), ("knn.topk", p.knn.topk), ("linear.topk", p.linear.topk)):
        if len(set(ks)) != len(ks):
            raise ConfigError(f"{key}: listed twice in {ks}")
    if p.monitor.dataset not in p.datasets:
        raise ConfigError(f"monitor.dataset: {p.monitor.dataset!r} is not one of datasets ({', '.join(p.datasets)})")
    if p.datasets[p.monitor.dataset].format == "unlabeled":
        raise ConfigError(
            f"monitor.dataset: {p.monitor.dataset} is unlabeled; the monitor classifies its test split by its "
            f"train split: name a labelled dataset, e.g. an evaluation dataset ({', '.join(p.evaluate.datasets)})"
        )
