"""The retrieval gallery: test queries beside their nearest train videos, for both models.

One PNG per evaluation dataset (``dvc plots show`` includes it). Each row is one query: its
middle frame in RGB above the same frame in the view-2 modality, then its top-k train
neighbours by the pretrained encoder's features, then by the random-init encoder's. A green
frame marks a neighbour of the query's class, a red one another class.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from evaluate.feature_file import FeatureFile, read_model_files
from evaluate.retrieval import topk_neighbours
from pipeline.atomic import atomic_path
from pipeline.errors import ConfigError
from pipeline.schema import GalleryParams
from preprocess.shards import ShardReader
from train.data import view_modalities

log = logging.getLogger(__name__)

HIT, MISS, QUERY = (40, 170, 60), (210, 40, 40), (240, 240, 240)  # RGB border colours
BORDER, GAP, HEADER = 2, 8, 16  # pixels


def pick_queries(labels: np.ndarray, test: np.ndarray, n: int) -> list[int]:
    """Row indices of ``n`` test videos taken round-robin over the classes (each class's first
    test videos in id order), so that the rows show as many classes as they can."""
    by_class: dict[int, list[int]] = {}
    for i in np.flatnonzero(test):
        by_class.setdefault(int(labels[i]), []).append(int(i))
    picks: list[int] = []
    depth = 0
    while len(picks) < n and any(depth < len(v) for v in by_class.values()):
        picks += [rows[depth] for _, rows in sorted(by_class.items()) if depth < len(rows)][: n - len(picks)]
        depth += 1
    return picks


def neighbour_rows(data: FeatureFile, feature: str, queries: list[int], k: int) -> np.ndarray:
    """(Q,k) row indices of each query's k nearest train videos by cosine similarity."""
    x = torch.from_numpy(data.sets[feature])
    train_rows = np.flatnonzero(data.train)
    found = topk_neighbours(x[queries], x[train_rows], k).numpy()  # indices into the train rows
    return train_rows[found]


RESIDUAL_CONTRAST = 3  # residuals and flow sit near grey (128): stretched about it so that motion shows


def middle_frame(reader: ShardReader, video_id: str, modality: str) -> np.ndarray:
    """(H,W,3) uint8: the video's middle frame in ``modality`` (one flow channel as grey); a
    motion modality's contrast stretched by ``RESIDUAL_CONTRAST`` about grey, for the eye only."""
    frame = reader.read_clip(video_id, reader.num_frames(video_id) // 2, 1, modality)[:, 0]  # (C,H,W)
    image = frame.transpose(1, 2, 0)
    if modality != "rgb":
        image = np.clip(128 + RESIDUAL_CONTRAST * (image.astype(np.int16) - 128), 0, 255).astype(np.uint8)
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def tile(reader: ShardReader, video_id: str, modalities: tuple[str, ...], colour: tuple[int, int, int]) -> np.ndarray:
    """(len(modalities)*H + 2B, W + 2B, 3): the middle frames stacked, in a coloured border."""
    stack = np.concatenate([middle_frame(reader, video_id, m) for m in modalities], axis=0)
    return cv2.copyMakeBorder(stack, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT, value=colour)


def _text(strip: np.ndarray, text: str, x: int) -> None:
    """Write ``text`` into a HEADER-high white strip from column ``x``."""
    cv2.putText(strip, text, (x + 2, HEADER - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)


def _label(width: int, text: str) -> np.ndarray:
    strip = np.full((HEADER, width, 3), 255, np.uint8)
    _text(strip, text, 0)
    return strip


def gallery_image(
    reader: ShardReader, files: dict[str, FeatureFile], feature: str, queries: list[int], k: int, class_names: list[str]
) -> np.ndarray:
    """(rows, cols, 3) uint8: per query row, the query tile, then k neighbour tiles per model."""
    first = next(iter(files.values()))
    modalities = view_modalities(first.view2)
    neighbours = {model: neighbour_rows(data, feature, queries, k) for model, data in files.items()}
    rows = []
    tile_width = 0
    for qi, q in enumerate(queries):
        query_id, label = str(first.ids[q]), int(first.labels[q])
        parts = [tile(reader, query_id, modalities, QUERY)]
        tile_width = parts[0].shape[1]
        for model, found in neighbours.items():
            parts.append(np.full((parts[0].shape[0], GAP, 3), 255, np.uint8))
            data = files[model]
            for n in found[qi]:
                hit = int(data.labels[n]) == label
                parts.append(tile(reader, str(data.ids[n]), modalities, HIT if hit else MISS))
        row = np.concatenate(parts, axis=1)
        rows.append(_label(row.shape[1], f"{class_names[label]}: {query_id}"))
        rows.append(row)
    body = np.concatenate(rows, axis=0)
    header = np.full((HEADER, body.shape[1], 3), 255, np.uint8)
    x = tile_width + GAP
    for model in neighbours:
        _text(header, f"{model} top-{k} ({feature}; {' over '.join(modalities)})", x)
        x += k * tile_width + GAP
    return np.concatenate([header, body], axis=0)


def gallery_stage(
    feature_files: dict[str, Path], reader: ShardReader, class_names: list[str], p: GalleryParams, out: Path
) -> np.ndarray:
    """The dvc stage ``gallery``: the PNG of ``p.queries`` test queries and their ``p.neighbours``
    nearest train videos by the ``p.feature`` features of each model."""
    files = read_model_files(feature_files)
    first = next(iter(files.values()))
    if p.feature not in first.sets:
        raise ConfigError(
            f"gallery.feature: {p.feature!r} is not one of this dataset's features ({', '.join(first.sets)})"
        )
    queries = pick_queries(first.labels, first.test, p.queries)
    image = gallery_image(reader, files, p.feature, queries, p.neighbours, class_names)
    with atomic_path(out) as tmp:
        _ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        tmp.write_bytes(buf.tobytes())
    log.info("gallery: %d queries x %d neighbours per model (%s) -> %s", len(queries), p.neighbours, p.feature, out)
    return image
