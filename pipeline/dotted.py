"""Dotted keys (``pretrain.seed``), walked once for every kind of settings tree."""

from __future__ import annotations

from typing import Any


def dotted(tree: Any, key: str) -> Any:
    """The value at ``key`` ("a.b.c") in nested mappings (params.yaml as loaded, ``dvc exp show``'s
    params) or attributes (a params dataclass, a stage's params view).

    A missing part raises KeyError (mappings) or AttributeError (attributes), naming that part.
    """
    node = tree
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node
