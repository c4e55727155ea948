"""The verify stage and the verified reader: exactly the indexed videos, checked shards, one reject share."""

from __future__ import annotations

import pytest

from pipeline.atomic import read_json, write_json
from pipeline.errors import InputError
from preprocess.shards import ShardReader
from preprocess.verified import open_verified
from preprocess.verify import verify_dataset
from tests.shards_fixture import make_sharded_dataset


def _verify(d, tmp_path, shard_ids, max_share=0.05):
    return verify_dataset(
        d["index"],
        d["rejects"],
        d["frames"],
        d["motion"],
        shard_ids,
        max_share,
        tmp_path / "verified/videos.json",
        tmp_path / "verified/rejects.json",
    )


@pytest.fixture
def dataset(tmp_path):
    return make_sharded_dataset(tmp_path / "data", n_videos=25, n_shards=3, rejected=frozenset({4}))


def test_one_reject_in_25_passes_although_its_shard_is_over_the_share(dataset, tmp_path):
    """The share is about the dataset: 1 of 25 is 4 %, under 5 %, whatever its shard's share."""
    verified = _verify(dataset, tmp_path, [0, 1, 2])
    assert len(verified["videos"]) == 24
    rejects = read_json(tmp_path / "verified/rejects.json")
    assert [(r["id"], r["stage"]) for r in rejects] == [("C1/v004", f"frames@{rejects[0]['stage'][-1]}")]


def test_past_the_share_the_stage_fails_naming_the_videos(tmp_path):
    d = make_sharded_dataset(tmp_path / "data", n_videos=25, n_shards=3, rejected=frozenset({4, 7}))
    with pytest.raises(InputError, match=r"2 of 25 .*C1/v00[47]"):
        _verify(d, tmp_path, [0, 1, 2])
    assert len(read_json(tmp_path / "verified/rejects.json")) == 2  # the report is there to read
    assert not (tmp_path / "verified/videos.json").exists()


def test_a_leftover_shard_is_never_read(dataset, tmp_path):
    """shards.ids shrinks from 3 to 2: the index of 2 shards no longer lists shard 2's videos,
    whose files remain on disk. The reader serves exactly the verified videos."""
    index = read_json(dataset["index"])
    kept = [e for e in index if e["shard"] != 2]
    write_json(dataset["index"], kept)
    verified = _verify(dataset, tmp_path, [0, 1], max_share=0.1)
    reader = open_verified(tmp_path / "verified/videos.json", dataset["frames"], dataset["motion"])
    assert set(reader.videos) == {v["id"] for v in verified["videos"]} == {e["id"] for e in kept} - {"C1/v004"}


def test_the_verified_reader_parses_no_manifest_and_serves_what_a_manifest_reader_does(dataset, tmp_path, monkeypatch):
    """At Kinetics size parsing every manifest was most of each stage's start-up: the verified
    list already holds each video's entry and each shard's checksum."""
    _verify(dataset, tmp_path, [0, 1, 2])
    from_manifests = ShardReader(dataset["frames"], dataset["motion"], [0, 1, 2])

    def no_manifest(path):
        raise AssertionError(f"parsed {path}")

    monkeypatch.setattr("preprocess.shards.read_json", no_manifest)
    reader = open_verified(tmp_path / "verified/videos.json", dataset["frames"], dataset["motion"])
    assert reader.videos == from_manifests.videos
    assert reader.fingerprint == from_manifests.fingerprint
    video = sorted(reader.videos)[0]
    assert (reader.read_clip(video, 0, 4, "u") == from_manifests.read_clip(video, 0, 4, "u")).all()


def test_a_video_removed_from_the_index_but_still_in_its_shard_is_stale(dataset, tmp_path):
    index = read_json(dataset["index"])
    write_json(dataset["index"], index[1:])
    with pytest.raises(InputError, match=rf"frames/{index[0]['shard']}\.json does not match the index.*stale"):
        _verify(dataset, tmp_path, [0, 1, 2])


@pytest.mark.parametrize("kind", ["frames", "motion"])
def test_a_missing_manifest_fails_naming_it(dataset, tmp_path, kind):
    _verify(dataset, tmp_path, [0, 1, 2])
    (dataset[kind] / "1.json").unlink()
    with pytest.raises(InputError, match=rf"{kind}/1\.json: missing; run `dvc repro {kind}@1`"):
        open_verified(tmp_path / "verified/videos.json", dataset["frames"], dataset["motion"])
    with pytest.raises(InputError, match=rf"{kind}/1\.json: missing"):
        _verify(dataset, tmp_path, [0, 1, 2])


@pytest.mark.parametrize("kind", ["frames", "motion"])
def test_a_corrupt_shard_fails_naming_it(dataset, tmp_path, kind):
    _verify(dataset, tmp_path, [0, 1, 2])
    shard = dataset[kind] / "0.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{kind}/0\.h5: checksum differs"):
        open_verified(tmp_path / "verified/videos.json", dataset["frames"], dataset["motion"])
    with pytest.raises(InputError, match=rf"{kind}/0\.h5: checksum differs"):
        ShardReader(dataset["frames"], dataset["motion"], [0])


def test_a_shard_rebuilt_after_verify_is_refused(dataset, tmp_path):
    _verify(dataset, tmp_path, [0, 1, 2])
    make_sharded_dataset(tmp_path / "data", n_videos=25, n_shards=3, rejected=frozenset({4}), seed=1)
    with pytest.raises(InputError, match="changed after"):
        open_verified(tmp_path / "verified/videos.json", dataset["frames"], dataset["motion"])


def test_reader_opens_only_the_shards_it_is_given(dataset):
    all_ids = {e["id"] for e in read_json(dataset["index"]) if e["id"] != "C1/v004"}
    only_0 = ShardReader(dataset["frames"], dataset["motion"], [0])
    assert set(only_0.videos) == {e["id"] for e in read_json(dataset["index"]) if e["shard"] == 0} - {"C1/v004"}
    every = ShardReader(dataset["frames"], dataset["motion"], [0, 1, 2])
    assert set(every.videos) == all_ids
    assert only_0.fingerprint != every.fingerprint


def test_verify_fails_when_a_split_has_no_usable_video(tmp_path):
    d = make_sharded_dataset(tmp_path / "data", n_videos=8, n_shards=1, rejected=frozenset({3, 7}))
    with pytest.raises(InputError, match="no usable test video"):
        _verify(d, tmp_path, [0], max_share=0.5)
