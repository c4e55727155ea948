"""The validation part of a train split: whole recording groups held out, as the official splits do.

Fine-tuning keeps the epoch that does best on it, and the linear probe chooses its weight decay on it.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import ConfigError
from preprocess.formats import video_group


def split_validation(
    train_ids: list[str], n_val: int, seed: int, setting: str = "finetune.val_videos"
) -> tuple[list[str], list[str]]:
    """(fit ids, validation ids): whole recording groups held out until ``n_val`` videos.

    Groups, not single videos, as the official splits do: a validation video whose group is
    trained on shares its scene with training videos and scores what memorising the scene
    gives. Groups are drawn in an order seeded by ``seed``; the last one drawn may take the
    validation part past ``n_val``. Videos without a group name are groups of one.
    ``setting``: the params key of ``n_val``, named in the error when it cannot be held out.
    """
    if not 0 < n_val < len(train_ids):
        raise ConfigError(
            f"{setting}: {n_val} must be between 1 and {len(train_ids) - 1} "
            f"(the train split has {len(train_ids)} videos)"
        )
    members: dict[str, list[str]] = {}
    for video_id in sorted(train_ids):
        members.setdefault(video_group(video_id), []).append(video_id)
    groups = sorted(members)
    val: list[str] = []
    for i in np.random.default_rng([seed, 2]).permutation(len(groups)):
        if len(val) >= n_val:
            break
        val += members[groups[i]]
    if len(val) == len(train_ids):
        raise ConfigError(f"{setting}: {n_val} leaves no training video: the train split has {len(groups)} groups")
    held_out = set(val)
    return [v for v in sorted(train_ids) if v not in held_out], sorted(val)
