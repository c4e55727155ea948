"""Plumbing shared by every CLI command: logging, signals, the stage's params view, the summary line."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from pipeline.atomic import remove_orphaned_temporaries
from pipeline.checksums import save_checksums
from pipeline.dotted import dotted
from pipeline.launcher import watch_launcher
from pipeline.locks import stage_lock
from pipeline.params import load_params
from pipeline.stage_params import StageParams
from pipeline.torchrun import relaunch_under_torchrun

log = logging.getLogger("pipeline")

# When set, each stage appends the params keys it read to this file (used by the tests).
TRACE_ENV = "IIC_PARAMS_TRACE"


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


_TEMPLATE = re.compile(r"\$\{([^}]+)\}")


def resolve_template(text: str, item: dict[str, object], raw_params: dict) -> str:
    """Fill dvc.yaml's ``${item.<name>}`` (and a foreach's ``${key}``, the dataset) from the stage's
    entry, and any other ``${a.b}`` from params."""

    def value(match: re.Match) -> str:
        name = match.group(1).strip()
        if name == "key":  # foreach over the datasets mapping: the dataset's name
            return str(item["dataset"])
        if name == "item":  # foreach over a list (pretrain.models): the entry itself
            (value,) = item.values()
            return str(value)
        if name.startswith("item."):
            return str(item[name.removeprefix("item.")])
        return str(dotted(raw_params, name))

    return _TEMPLATE.sub(value, text)


def declared_params(
    stage: str,
    dvc_yaml: str | Path = "dvc.yaml",
    item: dict[str, object] | None = None,
    params_file: str | Path = "params.yaml",
) -> frozenset[str]:
    """The params keys dvc.yaml lists for ``stage``, templates filled for one matrix entry ``item``."""
    with open(dvc_yaml) as f:
        stages = yaml.safe_load(f)["stages"]
    body = stages[stage].get("do", stages[stage])  # foreach stages keep theirs under do:
    raw_params = None
    keys = set()
    for entry in body.get("params", []):
        # An entry is a key, or {params_file: [keys]}; only params.yaml is used here.
        for key in [entry] if isinstance(entry, str) else [k for v in entry.values() for k in v]:
            if "${" in key:
                if raw_params is None:
                    with open(params_file) as f:
                        raw_params = yaml.safe_load(f)
                key = resolve_template(key, item or {}, raw_params)
            keys.add(key)
    return frozenset(keys)


def stage_name(stage: str, item: dict[str, object] | None) -> str:
    """DVC's name of one matrix entry: ``frames@ucf101-3``."""
    return f"{stage}@{'-'.join(map(str, item.values()))}" if item else stage


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SIGTERM is what `timeout`, schedulers and `kill` send: unwind like an exception so every
    # atomic write removes its temporary file on the way out.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def stage(
    name: str, item: dict[str, object] | None = None, params_file: str = "params.yaml", distributed: bool = False
) -> Iterator[StageParams]:
    """Run one stage (one ``item`` of a matrix stage): its params view, validated before anything
    is written, then a summary line.

    distributed: the stage can run as torchrun's ranks; when ``launch`` asks for more than one
    process, this process becomes torchrun (``pipeline/torchrun.py``) before taking the lock.
    """
    setup_logging()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    accessed: set[str] = set()
    params = StageParams(load_params(params_file), declared_params(name, "dvc.yaml", item, params_file), accessed)
    full_name = stage_name(name, item)
    if distributed:
        relaunch_under_torchrun(params.launch.materialize(), full_name)
    # Under torchrun every rank runs the stage: rank 0 holds the lock for all of them and alone
    # touches the shared scratch folder (a rank on another node cannot tell which of its
    # temporaries are orphans: their writers' pids are not on that node).
    first_rank = os.environ.get("RANK", "0") == "0"
    with stage_lock(full_name) if first_rank else contextlib.nullcontext():
        watch_launcher()
        if first_rank:
            remove_orphaned_temporaries()
        start = time.perf_counter()
        yield params
        if first_rank:
            save_checksums()  # the shards and videos this stage hashed need not be read again
        log.info("stage %s done in %.1fs", full_name, time.perf_counter() - start)
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a") as f:
            f.write(json.dumps({"stage": full_name, "read": sorted(accessed)}) + "\n")
