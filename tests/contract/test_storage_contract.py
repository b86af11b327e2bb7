"""The Storage contract, run over every storage adapter."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rollerblade.errors import NotFound, UnsafePathError
from rollerblade.ports import Storage


def test_put_stat_read(storage: Storage) -> None:
    data = bytes(range(256)) * 40
    info = storage.put_bytes(key="datasets/ds/sub-01/anat/a.nii", data=data)
    assert info.size == len(data) and info.md5 == hashlib.md5(data).hexdigest()
    assert storage.stat(key=info.key) == info
    assert storage.read(key=info.key) == data
    assert storage.read(key=info.key, start=10, length=5) == data[10:15]
    assert storage.read(key=info.key, start=-4) == data[-4:]
    assert storage.read(key=info.key, length=100000) == data


def test_put_file_and_download(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 3_000_000)
    info = storage.put_file(key="datasets/ds/big.bin", source=str(source))
    assert info.size == 3_000_000
    storage.download(key=info.key, destination=str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()


def test_generation_grows_on_every_write(storage: Storage) -> None:
    generations = [storage.put_bytes(key="datasets/ds/x.json", data=b"{}").generation for _ in range(5)]
    assert generations == sorted(set(generations))


def test_list_in_key_order_by_prefix(storage: Storage) -> None:
    for key in ["datasets/b/2", "datasets/a/1", "datasets/a/sub/3", "datasets/ab/4", "other/5"]:
        storage.put_bytes(key=key, data=b"1")
    assert [o.key for o in storage.list(prefix="datasets/a/")] == ["datasets/a/1", "datasets/a/sub/3"]
    assert [o.key for o in storage.list(prefix="datasets/a")] == ["datasets/a/1", "datasets/a/sub/3", "datasets/ab/4"]
    assert len(list(storage.list(prefix=""))) == 5


def test_missing_objects(storage: Storage, tmp_path: Path) -> None:
    for call in (
        lambda: storage.stat(key="datasets/ds/none"),
        lambda: storage.read(key="datasets/ds/none"),
        lambda: storage.download(key="datasets/ds/none", destination=str(tmp_path / "x")),
    ):
        with pytest.raises(NotFound, match="object not found: datasets/ds/none"):
            call()
    storage.delete(key="datasets/ds/none")  # deleting a missing object is fine


def test_delete(storage: Storage) -> None:
    storage.put_bytes(key="datasets/ds/a/b", data=b"1")
    storage.delete(key="datasets/ds/a/b")
    assert list(storage.list(prefix="datasets/")) == []


def test_a_folder_emptied_by_a_delete_takes_new_objects(storage: Storage) -> None:
    """A scan deleted and another uploaded beside it (a long-running ``serve``)."""
    storage.put_bytes(key="datasets/ds/sub-01/anat/x.json", data=b"1")
    storage.delete(key="datasets/ds/sub-01/anat/x.json")
    storage.put_bytes(key="datasets/ds/sub-01/anat/y.json", data=b"2")
    assert [o.key for o in storage.list(prefix="datasets/ds/")] == ["datasets/ds/sub-01/anat/y.json"]


@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "datasets/../../etc/passwd",
        "/etc/passwd",
        "datasets//x",
        "datasets/./x",
        "datasets\\x",
        "datasets/a\nb",
        "",
    ],
)
def test_unsafe_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(UnsafePathError):
        storage.put_bytes(key=key, data=b"x")
    with pytest.raises(UnsafePathError):
        storage.read(key=key)
