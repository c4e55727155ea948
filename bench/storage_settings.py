"""params.yaml's storage settings with the encoding a benchmark compares."""

from __future__ import annotations

import dataclasses

from pipeline.params import load_params
from pipeline.schema import StorageParams


def storage(encoding: str) -> StorageParams:
    """params.yaml's ``storage`` (JPEG quality, H.264 settings) with ``encoding`` instead of its own."""
    return dataclasses.replace(load_params().storage, encoding=encoding)
