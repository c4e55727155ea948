"""Remembered checksums: an unchanged file is read once; any rewrite is hashed again."""

from __future__ import annotations

import hashlib
import os

import pytest

from pipeline import checksums


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A project folder with no record, and a count of the files actually read."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checksums, "_MEMORY", {})
    reads = []
    real = checksums.sha256_of_file
    monkeypatch.setattr(checksums, "sha256_of_file", lambda path, *a: reads.append(path) or real(path, *a))
    return reads


def _forget_this_process():
    checksums._MEMORY.clear()  # as a new stage process would start


def test_an_unchanged_file_is_read_once_across_stages(fresh, tmp_path):
    shard = tmp_path / "0.h5"
    shard.write_bytes(b"x" * 1000)
    expected = hashlib.sha256(b"x" * 1000).hexdigest()
    assert checksums.file_sha256(shard) == expected
    checksums.save_checksums()
    _forget_this_process()
    assert checksums.file_sha256(shard) == expected
    assert len(fresh) == 1


def test_a_rewrite_of_the_same_size_is_hashed_again(fresh, tmp_path):
    shard = tmp_path / "0.h5"
    shard.write_bytes(b"a" * 100)
    checksums.file_sha256(shard)
    checksums.save_checksums()
    _forget_this_process()
    with open(shard, "r+b") as f:  # in place: same inode, same size, new mtime
        f.write(b"b")
    stat = shard.stat()
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse clocks: make the change visible
    assert checksums.file_sha256(shard) == hashlib.sha256(b"b" + b"a" * 99).hexdigest()
    assert len(fresh) == 2


def test_a_damaged_record_costs_a_rehash_not_an_error(fresh, tmp_path):
    shard = tmp_path / "0.h5"
    shard.write_bytes(b"abc")
    (tmp_path / "artifacts/.tmp").mkdir(parents=True)
    (tmp_path / "artifacts/.tmp/sha256-cache.json").write_text("{not json")
    assert checksums.file_sha256(shard) == hashlib.sha256(b"abc").hexdigest()
    checksums.save_checksums()
    assert str(shard.resolve()) in (tmp_path / "artifacts/.tmp/sha256-cache.json").read_text()


def test_files_that_are_gone_leave_the_record(fresh, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    checksums.file_sha256(a), checksums.file_sha256(b)
    checksums.save_checksums()
    b.unlink()
    checksums.save_checksums()
    record = (tmp_path / "artifacts/.tmp/sha256-cache.json").read_text()
    assert str(a.resolve()) in record and str(b.resolve()) not in record
