"""Shared fixtures: the real clips and split lists in ../shared, and the repository params."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.params import load_params
from pipeline.schema import Params

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REALDATA = SHARED / "realdata"
SPLITS = SHARED / "splits"
REAL_CLIPS = sorted(p for p in REALDATA.rglob("*") if p.suffix in (".avi", ".mp4"))


def needs_cuda(test):
    """A test that only a GPU can run: marked ``cuda`` (``bench/gpu_check.py`` runs ``pytest -m cuda``)
    and skipped where there is none; a CPU test covers the same logic."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")(test))


def replace(obj, **changes):
    """dataclasses.replace for nested sections: replace(p, frames=dict(height=32))."""
    updates = {}
    for key, value in changes.items():
        current = getattr(obj, key)
        updates[key] = replace(current, **value) if isinstance(value, dict) else value
    return dataclasses.replace(obj, **updates)


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="session")
def real_clips() -> list[Path]:
    if not REAL_CLIPS:
        pytest.fail(f"no real clips found under {REALDATA}")
    return REAL_CLIPS


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
