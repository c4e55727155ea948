"""Plumbing shared by every CLI command: logging, signals, the stage's params view, the summary line."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from pipeline.atomic import remove_orphaned_temporaries
from pipeline.params import StageParams, load_params

log = logging.getLogger("pipeline")

# When set, each stage appends the params keys it read to this file (used by the tests).
TRACE_ENV = "IIC_PARAMS_TRACE"


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def declared_params(stage: str, dvc_yaml: str | Path = "dvc.yaml") -> frozenset[str]:
    """The params keys dvc.yaml lists for ``stage`` (a foreach stage's ``do`` block included)."""
    with open(dvc_yaml) as f:
        stages = yaml.safe_load(f)["stages"]
    body = stages[stage].get("do", stages[stage])
    keys = set()
    for item in body.get("params", []):
        # An entry is a key, or {params_file: [keys]}; only params.yaml is used here.
        keys |= {item} if isinstance(item, str) else {k for v in item.values() for k in v}
    return frozenset(keys)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SIGTERM is what `timeout`, schedulers and `kill` send: unwind like an exception so every
    # atomic write removes its temporary file on the way out.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def stage(name: str, params_file: str = "params.yaml") -> Iterator[StageParams]:
    """Run one stage: its params view (validated before anything is written), then a summary line."""
    setup_logging()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    accessed: set[str] = set()
    params = StageParams(load_params(params_file), declared_params(name), accessed)
    remove_orphaned_temporaries()
    start = time.perf_counter()
    yield params
    log.info("stage %s done in %.1fs", name, time.perf_counter() - start)
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a") as f:
            f.write(json.dumps({"stage": name, "read": sorted(accessed)}) + "\n")
