"""The reader every training and evaluation stage opens: exactly the videos the verify stage
listed, over shard files that must still have the checksums it recorded.

Apart from the verify stage itself, so that those stages depend on the list's format and the
shard reader, not on how verification counts rejects or names splits.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.atomic import read_json
from pipeline.errors import InputError
from pipeline.paths import stage_of
from preprocess.shards import ShardReader


def open_verified(videos_path: Path, frames_dir: Path, motion_dir: Path) -> ShardReader:
    """A reader of exactly the verified videos; fails when a shard changed since it was verified."""
    if not videos_path.is_file():
        raise InputError(f"{videos_path}: missing; run `dvc repro {stage_of(videos_path, 'verify')}`")
    verified = read_json(videos_path)
    recorded = {kind: {int(k): v for k, v in sums.items()} for kind, sums in verified["sha256"].items()}
    return ShardReader(frames_dir, motion_dir, verified["shards"], verified["videos"], verified_sha256=recorded)
