"""Several verified datasets read as one: what pretraining on ``pretrain.datasets`` opens.

Each dataset keeps its own shards and checksums; the union only renames its videos to
``<dataset>/<video id>``, so ids never collide (dataset keys hold no ``/``) and a video of one
dataset can never be read from another's shards. With one dataset every id gains the same
prefix, so the order of the videos, and so pretraining, is that dataset's alone.

Pretraining opens each dataset through the copy of its verified list that the ``pretrain_data``
stage made (``preprocess/pretrain_data.py``), so every shard file is still checked against the
checksums there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np

from preprocess.shards import ShardReader

SEPARATOR = "/"  # between the dataset key and the video id; dataset keys are [a-z][a-z0-9_]*


def union_id(dataset: str, video_id: str) -> str:
    """The id of ``video_id`` of ``dataset`` in the union."""
    return f"{dataset}{SEPARATOR}{video_id}"


class UnionReader:
    """The videos of several readers under ``<dataset>/<id>`` ids, with ShardReader's clip reads.

    readers: {dataset key: its verified ShardReader}, in ``pretrain.datasets`` order.
    ``videos[id]`` is the dataset's own record with ``"dataset"`` added; labels stay as each
    dataset has them (pretraining never reads them).
    """

    def __init__(self, readers: Mapping[str, ShardReader]):
        if not readers:
            raise ValueError("a union of no datasets")
        self.readers = dict(readers)
        self.videos: dict[str, dict] = {}
        self._source: dict[str, tuple[ShardReader, str]] = {}
        for dataset, reader in self.readers.items():
            for video_id, record in reader.videos.items():
                key = union_id(dataset, video_id)
                self.videos[key] = {**record, "dataset": dataset}
                self._source[key] = (reader, video_id)

    @property
    def fingerprint(self) -> str:
        """sha256 of the datasets' names and fingerprints: what the union serves."""
        content = json.dumps({name: r.fingerprint for name, r in self.readers.items()}, sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()

    def num_frames(self, video_id: str) -> int:
        reader, own = self._source[video_id]
        return reader.num_frames(own)

    def frame_size(self, video_id: str) -> tuple[int, int]:
        reader, own = self._source[video_id]
        return reader.frame_size(own)

    def flow_bound(self, video_id: str) -> float | None:
        reader, own = self._source[video_id]
        return reader.flow_bound(own)

    def read_clip(
        self, video_id: str, start: int, length: int, modality: str, crop: tuple[int, int, int, int] | None = None
    ) -> np.ndarray:
        """(C,T,H,W) uint8: ``ShardReader.read_clip`` of the video's own dataset."""
        reader, own = self._source[video_id]
        return reader.read_clip(own, start, length, modality, crop)

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
