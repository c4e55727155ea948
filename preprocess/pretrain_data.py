"""The dvc stage ``pretrain_data``: what pretraining on ``pretrain.datasets`` depends on.

Each listed dataset's verified list (its videos and the checksum of every shard file) is copied
to ``artifacts/pretrain_data/<dataset>/``. Pretraining depends on that folder alone, so a change
to a dataset outside the list never reruns it, and one to a listed dataset always does (its
verified list, and so the copy, changes with any of its shards).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pipeline.atomic import atomic_path
from pipeline.errors import InputError

log = logging.getLogger(__name__)


def stage_pretrain_data(dataset: str, listed: list[str], verified_videos: Path, folder: Path) -> None:
    """The dvc stage ``pretrain_data``: copy ``dataset``'s verified list to ``folder/<dataset>/``
    and remove the folders of datasets no longer in ``listed`` (``pretrain.datasets``), so that
    the folder pretraining depends on holds exactly the listed datasets."""
    if not verified_videos.is_file():
        raise InputError(f"{verified_videos}: missing; run `dvc repro verify@{dataset}`")
    for stale in sorted(p for p in folder.glob("*") if p.is_dir() and p.name not in listed):
        log.info("pretrain_data: %s is not in pretrain.datasets any more; removing %s", stale.name, stale)
        shutil.rmtree(stale)
    target = folder / dataset / verified_videos.name
    with atomic_path(target) as tmp:
        shutil.copyfile(verified_videos, tmp)  # byte for byte: the checksums pretraining checks
    log.info("pretrain_data: %s -> %s", verified_videos, target)
