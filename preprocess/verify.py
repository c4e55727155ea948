"""The verify stage: the one place that sees every shard's manifest.

It checks that the shards hold exactly the videos the index lists (a shard built from an
older index is stale), counts the rejects of every stage (dataset, frames, motion) against
the whole dataset and fails past ``dataset.max_reject_share`` naming the videos, and writes
the list of usable videos with the checksum of every shard file. The training and evaluation
stages read exactly that list (``open_verified``), so they never see a leftover shard, a
video the index no longer lists, or a shard rebuilt after it was verified.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from pipeline.atomic import read_json, write_json
from pipeline.errors import InputError
from pipeline.paths import shard_manifest, stage_of
from preprocess.formats import VIDEO_SPLITS
from preprocess.rejects import check_reject_share
from preprocess.shards import checked_manifest

log = logging.getLogger(__name__)


def verify_dataset(
    index_path: Path,
    dataset_rejects_path: Path,
    frames_dir: Path,
    motion_dir: Path,
    shard_ids: list[int],
    max_reject_share: float,
    videos_path: Path,
    rejects_path: Path,
) -> dict:
    """Write the usable videos (``videos_path``) and every stage's rejects (``rejects_path``).

    Raises InputError when a shard does not match the index, and when more than
    ``max_reject_share`` of the dataset's videos were rejected (the report is written first).
    """
    index = read_json(index_path)
    rejects = [{**r, "stage": "dataset"} for r in read_json(dataset_rejects_path)]
    by_shard: dict[int, list[dict]] = {}
    for entry in index:
        by_shard.setdefault(int(entry["shard"]), []).append(entry)
    unknown = sorted(set(by_shard) - set(shard_ids))
    if unknown:
        raise InputError(
            f"{index_path} assigns videos to shards {unknown} that shards.ids does not list; "
            f"rerun `dvc repro {stage_of(index_path, 'dataset')}`"
        )
    usable: list[dict] = []
    checksums: dict[str, dict[int, str]] = {"frames": {}, "motion": {}}
    for shard_id in shard_ids:
        frames_stage, motion_stage = stage_of(frames_dir, "frames", shard_id), stage_of(motion_dir, "motion", shard_id)
        frames = checked_manifest(shard_manifest(frames_dir, shard_id), frames_stage)
        motion = checked_manifest(shard_manifest(motion_dir, shard_id), motion_stage)
        checksums["frames"][shard_id], checksums["motion"][shard_id] = frames["sha256"], motion["sha256"]
        listed = {e["id"] for e in by_shard.get(shard_id, [])}
        decoded = {v["id"]: v for v in frames["videos"]}
        built = set(decoded) | {r["id"] for r in frames["rejects"]}
        if built != listed:
            stray = sorted(built ^ listed)
            raise InputError(
                f"{frames_dir / f'{shard_id}.json'} does not match the index ({len(stray)} videos "
                f"differ, e.g. {stray[0]}): the shard is stale; run `dvc repro {frames_stage}`"
            )
        with_motion = {v["id"] for v in motion["videos"]}
        if with_motion | {r["id"] for r in motion["rejects"]} != set(decoded):
            raise InputError(
                f"{motion_dir / f'{shard_id}.json'} does not match its frames shard: run `dvc repro {motion_stage}`"
            )
        rejects += [{**r, "stage": frames_stage} for r in frames["rejects"]]
        rejects += [{**r, "stage": motion_stage} for r in motion["rejects"]]
        usable += [decoded[v] for v in sorted(with_motion)]
    write_json(rejects_path, rejects)
    n_total = len(index) + sum(r["stage"] == "dataset" for r in rejects)
    check_reject_share(rejects, n_total, max_reject_share, videos_path, "verify")
    splits = Counter(v["split"] for v in usable)
    missing = [s for s in VIDEO_SPLITS if not splits[s] and any(e["split"] == s for e in index)]
    if missing:
        raise InputError(f"no usable {missing[0]} video left after preprocessing; see {rejects_path}")
    verified = {"shards": shard_ids, "sha256": checksums, "videos": usable}
    write_json(videos_path, verified)
    log.info(
        "verify: %d usable videos (%s), %d rejected over all stages -> %s",
        len(usable),
        ", ".join(f"{n} {s}" for s, n in sorted(splits.items())),
        len(rejects),
        videos_path,
    )
    return verified
