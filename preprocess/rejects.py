"""How many rejects a dataset may have: the one rule the dataset and verify stages share.

Its own module so that the dataset stage, which applies it to the index, depends on it and
not on the shard codecs the verify stage reads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import InputError
from pipeline.paths import dataset_of, stage_of
from preprocess.formats import Reject

log = logging.getLogger(__name__)


def check_reject_share(
    rejects: Sequence[dict | Reject], n_total: int, max_share: float, artifact: Path, stage_kind: str
) -> None:
    """Fail only past the configured share of rejects, naming some; below it, say how many were
    rejected. A reject is a dict with "path", or a formats.Reject.

    artifact: what the ``stage_kind`` stage writes (``artifacts/data/<dataset>/...``); the message
    names the stage and the dataset's setting (``datasets.<dataset>.max_reject_share``) from it.
    """
    name = dataset_of(artifact)
    what = stage_of(artifact, stage_kind)
    key = f"datasets.{name}.max_reject_share" if name else "max_reject_share"
    n_rejected = len(rejects)
    share = n_rejected / max(n_total, 1)
    if n_rejected:
        log.warning("%s: rejected %d of %d videos (%.1f%%)", what, n_rejected, n_total, 100 * share)
    if share > max_share:
        named = [r["path"] if isinstance(r, dict) else r.path for r in rejects[:3]]
        raise InputError(
            f"{what}: {n_rejected} of {n_total} videos rejected ({share:.1%}), more than "
            f"{key}={max_share:.1%}: {', '.join(named)}{', ...' if n_rejected > 3 else ''}"
        )
