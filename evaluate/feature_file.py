"""The features stage's per-model file, read once for every frozen-feature protocol.

``artifacts/data/<dataset>/features/<model>.npz`` holds, per video (sorted ids): its label,
split, the RGB features and the view-2 features. Retrieval, kNN, the linear probe and the
gallery all read the same three feature sets: rgb, the view-2 modality and their merge.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from evaluate.retrieval import merge_features
from pipeline.errors import InputError, NonFiniteError


@dataclasses.dataclass(frozen=True)
class FeatureFile:
    """One model's features on one dataset.

    ids, labels, split: (N,) per video; sets: {"rgb": (N,D1), view2 name: (N,D2), "merge": (N,D1+D2)}.
    """

    path: Path
    ids: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    view2: str
    sets: dict[str, np.ndarray]

    @property
    def train(self) -> np.ndarray:
        """(N,) bool: the train videos (the gallery of retrieval and kNN, the probe's fit data)."""
        return self.split == "train"

    @property
    def test(self) -> np.ndarray:
        """(N,) bool: the test videos (the queries)."""
        return self.split == "test"


def read_feature_file(path: Path) -> FeatureFile:
    """Read and check one feature file: both splits present, every feature finite."""
    data = np.load(path)
    view2 = str(data["view2_modality"])
    sets = {
        "rgb": data["rgb"],
        view2 if view2 != "rgb" else "rgb2": data["view2"],
        "merge": merge_features(data["rgb"], data["view2"]),
    }
    file = FeatureFile(Path(path), data["ids"], data["labels"], data["split"], view2, sets)
    if not file.test.any() or not file.train.any():
        raise InputError(
            f"{path}: {int(file.test.sum())} test queries and {int(file.train.sum())} train videos; "
            "retrieval, kNN and the probe need both"
        )
    for name, feats in sets.items():
        if not np.isfinite(feats).all():
            raise NonFiniteError(f"{path}: {name} features hold NaN or inf; nothing was written")
    return file


def read_model_files(feature_files: dict[str, Path]) -> dict[str, FeatureFile]:
    """{model: FeatureFile}; the iic and random files must hold the same test videos, so that
    their per-video results pair."""
    files = {model: read_feature_file(path) for model, path in feature_files.items()}
    if "iic" in files and "random" in files:
        a, b = files["iic"], files["random"]
        if not np.array_equal(a.ids[a.test], b.ids[b.test]):
            raise InputError("the iic and random feature files hold other test videos: rerun `dvc repro features@...`")
    return files
