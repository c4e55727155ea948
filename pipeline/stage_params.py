"""What one stage may read: a view of the params that allows only the keys its dvc.yaml entry lists.

DVC reruns a stage when a param listed under its ``params:`` changes, and only then; a stage
that read an unlisted key would go stale without DVC noticing. ``StageParams`` refuses such
a read at once and records every key read, so a test can check that nothing listed goes unread.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.errors import ConfigError
from pipeline.schema import yaml_key

__all__ = ["StageParams", "leaf_keys"]


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

    def __getitem__(self, name: str) -> StageParams:
        """One named section of a mapping (``p.datasets["ucf101"]``)."""
        if not isinstance(self._obj, dict):
            raise TypeError(f"{self._prefix.rstrip('.')} is a section, not a mapping of names")
        if name not in self._obj:
            raise ConfigError(f"{self._prefix}{name}: no such entry (known: {', '.join(self._obj)})")
        return StageParams(self._obj[name], self._allowed, self._accessed, f"{self._prefix}{name}.")

    def __iter__(self):
        """The names of a mapping, as a dict iterates (``for name in p.datasets``)."""
        return iter(self.keys())

    def keys(self) -> list[str]:
        """The names of a mapping (``p.datasets.keys()``)."""
        if not isinstance(self._obj, dict):
            raise TypeError(f"{self._prefix.rstrip('.')} is a section, not a mapping of names")
        return list(self._obj)

    def materialize(self, unread: tuple[str, ...] = ()) -> Any:
        """The section as its plain frozen dataclass, every key read through this view except the
        fields named in ``unread``: copied as they are, for a stage that must not rerun when they
        change (``pretrain.models``: dropping the baseline must not retrain IIC)."""
        values = {}
        for field in dataclasses.fields(self._obj):
            if field.name in unread:
                values[field.name] = getattr(self._obj, field.name)
                continue
            value = getattr(self, field.name)
            values[field.name] = value.materialize() if isinstance(value, StageParams) else value
        return type(self._obj)(**values)


def leaf_keys(obj: Any, prefix: str = "") -> set[str]:
    """Dotted names of every leaf setting under a dataclass (``lambda_`` as ``lambda``)."""
    keys = set()
    for field in dataclasses.fields(obj):
        key = f"{prefix}{yaml_key(field)}"
        value = getattr(obj, field.name)
        if isinstance(value, dict):
            for name, section in value.items():
                keys |= leaf_keys(section, f"{key}.{name}.")
        else:
            keys |= leaf_keys(value, key + ".") if dataclasses.is_dataclass(value) else {key}
    return keys
