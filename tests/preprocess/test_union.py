"""Pretraining on several datasets: the union reader and the pretrain_data stage."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from pipeline.atomic import write_json
from pipeline.errors import InputError
from pipeline.runtime import Runtime
from preprocess.pretrain_data import stage_pretrain_data
from preprocess.shards import ShardReader
from preprocess.union import UnionReader, union_id
from tests.shards_fixture import make_tiny_shards
from tests.train.test_pretrain import _setup
from train.checkpoint import load_checkpoint
from train.data import split_ids
from train.pretrain import pretrain, train_loader

CPU = Runtime(torch.device("cpu"), bf16=False, channels_last=False, compile=False)


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory) -> dict[str, ShardReader]:
    """Two datasets whose video ids are the same strings (C0/v0, ...) but whose frames differ."""
    readers = {}
    for name, n_videos in (("ucf", 12), ("pool", 9)):
        folder = make_tiny_shards(tmp_path_factory.mktemp(name), n_videos=n_videos, size=36 if name == "ucf" else 32)
        readers[name] = ShardReader(folder / "frames", folder / "motion", [0])
    return readers


def test_ids_never_collide_and_each_reads_from_its_own_dataset(two_datasets):
    union = UnionReader(two_datasets)
    shared = set(two_datasets["ucf"].videos) & set(two_datasets["pool"].videos)
    assert shared  # the same id in both datasets: the case that must not collide
    assert len(union.videos) == sum(len(r.videos) for r in two_datasets.values())
    for name, reader in two_datasets.items():
        for vid in reader.videos:
            key = union_id(name, vid)
            assert union.videos[key]["dataset"] == name
            assert union.frame_size(key) == reader.frame_size(vid)
            np.testing.assert_array_equal(union.read_clip(key, 0, 16, "res"), reader.read_clip(vid, 0, 16, "res"))
    assert union.frame_size(union_id("ucf", "C0/v0")) != union.frame_size(union_id("pool", "C0/v0"))


def test_the_union_of_train_splits_is_drawn_once_per_epoch(two_datasets):
    union = UnionReader(two_datasets)
    train = split_ids(union, "train")
    expected = {union_id(n, v) for n, r in two_datasets.items() for v in split_ids(r, "train")}
    assert set(train) == expected and len(train) == 8 + 6
    loader, sampler = train_loader(union, train, _setup(batch_size=2), workers=0, runtime=CPU)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        drawn = collections.Counter(i for batch in loader for i in batch["index"].tolist())
        assert sorted(drawn) == list(range(len(train))) and set(drawn.values()) == {1}


def test_one_dataset_in_the_union_trains_exactly_as_its_reader(two_datasets, tmp_path):
    """The prefix keeps the order of the ids, so a one-dataset union is that dataset's pretraining."""
    pretrain(two_datasets["ucf"], _setup(), CPU, tmp_path / "a.pt", tmp_path / "a_resume.pt", workers=0)
    pretrain(
        UnionReader({"ucf": two_datasets["ucf"]}), _setup(), CPU, tmp_path / "b.pt", tmp_path / "b_resume.pt", workers=0
    )
    alone, ours = load_checkpoint(tmp_path / "a.pt")["encoder"], load_checkpoint(tmp_path / "b.pt")["encoder"]
    assert alone.keys() == ours.keys()
    for key, value in alone.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)


def test_the_fingerprint_names_every_dataset(two_datasets):
    both = UnionReader(two_datasets).fingerprint
    assert both != UnionReader({"ucf": two_datasets["ucf"]}).fingerprint
    assert both != UnionReader({"pool": two_datasets["ucf"], "ucf": two_datasets["pool"]}).fingerprint


def test_pretrain_data_copies_the_list_and_drops_unlisted_datasets(tmp_path):
    source = tmp_path / "verified" / "videos.json"
    write_json(source, {"shards": [0], "sha256": {}, "videos": []})
    folder = tmp_path / "pretrain_data"
    (folder / "old").mkdir(parents=True)
    (folder / ".gitignore").write_text("/old\n")  # DVC's: a file, never a dataset
    stage_pretrain_data("ucf", ["ucf", "pool"], source, folder)
    assert (folder / "ucf" / "videos.json").read_bytes() == source.read_bytes()
    assert not (folder / "old").exists() and (folder / ".gitignore").exists()
    with pytest.raises(InputError, match=r"missing; run `dvc repro verify@pool`"):
        stage_pretrain_data("pool", ["ucf", "pool"], tmp_path / "nothing" / "videos.json", folder)


def test_pretraining_before_its_copy_exists_names_the_stage_that_writes_it(tmp_path, monkeypatch):
    """Pretraining reads artifacts/pretrain_data/<dataset>/videos.json: a missing copy asked for
    `dvc repro verify`, which writes another file and left the copy missing."""
    from pipeline.cli import _pretraining_reader

    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        InputError, match=r"pretrain_data/pool/videos.json: missing; run `dvc repro pretrain_data@pool`$"
    ):
        _pretraining_reader(["pool"])
