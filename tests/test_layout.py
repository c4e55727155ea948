"""Packages depend one way, as the data flows: evaluate/ reads what train/ makes, never back."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

# package -> the packages it must not import (pipeline/ is the ground: it imports none of them,
# except its CLI, which is the roof and calls every stage).
FORBIDDEN = {
    "preprocess": {"train", "evaluate"},
    "train": {"evaluate"},
    "pipeline": {"preprocess", "train", "evaluate"},
}


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_downstream_of_it(package):
    found = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in (REPO / package).rglob("*.py")
        if path.name != "cli.py"
        for name in _imports(path) & FORBIDDEN[package]
    }
    assert found == set()
