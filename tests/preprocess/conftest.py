"""Fixtures shared by the preprocessing tests."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from preprocess.demo import write_video
from tests.conftest import REAL_CLIPS


@pytest.fixture(scope="module")
def real_dataset(tmp_path_factory):
    """The real clips in the UCF101 layout (folder = source), plus broken files of each kind."""
    tmp = tmp_path_factory.mktemp("real")
    root, lists = tmp / "videos", tmp / "lists"
    classes = sorted({p.parent.name for p in REAL_CLIPS})
    lines = []
    for clip in REAL_CLIPS:
        (root / clip.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, root / clip.parent.name / clip.name)  # a symlink out of the root is a reject
        lines.append(f"{clip.parent.name}/{clip.name}")
    good = REAL_CLIPS[0].read_bytes()
    broken = {
        "ucf101/zero.avi": b"",
        "ucf101/text.avi": b"not a video at all\n" * 50,
        "ucf101/header_only.avi": good[:2048],
    }
    for rel, data in broken.items():
        (root / rel).write_bytes(data)
    write_video(np.full((10, 48, 64, 3), 90, np.uint8), root / "ucf101/short.avi", fps=25)
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    (lists / "trainlist01.txt").write_text("\n".join(lines + [*broken, "ucf101/short.avi"]) + "\n")
    (lists / "testlist01.txt").write_text("")
    return root, lists
