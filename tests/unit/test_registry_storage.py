"""The storage suite: every ArtifactStorage implementation must pass it (today: the filesystem one)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hanzo.ml.config.errors import RegistryError
from hanzo.ml.registry import ArtifactStorage, FileSystemStorage
from hanzo.ml.registry.storage import TEMP_PREFIX

FACTORIES: dict[str, Callable[[Path], ArtifactStorage]] = {"filesystem": FileSystemStorage}


@pytest.fixture(params=sorted(FACTORIES))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStorage:
    return FACTORIES[request.param](tmp_path / "store")


def test_put_get_exists_list_delete(storage: ArtifactStorage) -> None:
    assert storage.list() == []
    storage.put_bytes("models/a/v/1.json", b"one")
    storage.put_bytes("models/a/v/2.json", b"two")
    storage.put_bytes("models/b/x", b"x")
    storage.put_bytes("models/a/v/1.json", b"one again")
    assert storage.get_bytes("models/a/v/1.json") == b"one again"
    assert storage.exists("models/a/v/2.json")
    assert not storage.exists("models/a/v/3.json")
    assert storage.list("models/a") == ["models/a/v/1.json", "models/a/v/2.json"]
    assert storage.list() == ["models/a/v/1.json", "models/a/v/2.json", "models/b/x"]
    assert storage.list("nothing/here") == []
    storage.delete("models/a/v/1.json")
    storage.delete("models/a/v/1.json")  # deleting a missing object is not an error
    assert storage.list("models/a") == ["models/a/v/2.json"]
    with pytest.raises(RegistryError, match="no object at 'models/a/v/1.json'"):
        storage.get_bytes("models/a/v/1.json")


def test_append_keeps_existing_bytes(storage: ArtifactStorage) -> None:
    storage.append_bytes("log/h.jsonl", b"a\n")
    storage.append_bytes("log/h.jsonl", b"b\n")
    assert storage.get_bytes("log/h.jsonl") == b"a\nb\n"


@pytest.mark.parametrize(
    "path", ["../x", "../../etc/passwd", "a/../../b", "/etc/passwd", "", "a//b", "./a", "a/./b", "a\\b"]
)
def test_paths_that_escape_or_are_not_plain_are_refused(storage: ArtifactStorage, path: str) -> None:
    with pytest.raises(RegistryError, match="refused"):
        storage.put_bytes(path, b"x")
    with pytest.raises(RegistryError, match="refused"):
        storage.get_bytes(path)
    with pytest.raises(RegistryError, match="refused"):
        storage.delete(path)


def test_lock_excludes_other_threads(storage: ArtifactStorage) -> None:
    inside: list[str] = []
    overlaps: list[str] = []

    def worker(tag: str) -> None:
        for _ in range(20):
            with storage.lock("model"):
                if inside:
                    overlaps.append(tag)
                inside.append(tag)
                time.sleep(0.0005)
                inside.pop()

    threads = [threading.Thread(target=worker, args=(t,)) for t in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []


def test_lock_times_out_with_a_clear_error(storage: ArtifactStorage) -> None:
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with storage.lock("busy"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(RegistryError, match="could not lock"), storage.lock("busy", timeout_s=0.05):
            pass
    finally:
        release.set()
        thread.join()


# Filesystem specifics -------------------------------------------------------------------------------


def test_symlink_escaping_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "store"
    root.mkdir()
    (root / "link").symlink_to(outside)
    storage = FileSystemStorage(root)
    with pytest.raises(RegistryError, match="outside the root"):
        storage.put_bytes("link/evil", b"x")
    assert list(outside.iterdir()) == []


def test_atomic_write_leaves_no_temp_file_and_keeps_old_content_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FileSystemStorage(tmp_path)
    for i in range(5):
        storage.put_bytes("a/b.bin", bytes([i]) * 1000)
    assert storage.get_bytes("a/b.bin") == bytes([4]) * 1000

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full (injected)")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="injected"):
        storage.put_bytes("a/b.bin", b"new")
    monkeypatch.undo()
    assert storage.get_bytes("a/b.bin") == bytes([4]) * 1000
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]


def test_delete_prunes_empty_folders(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    storage.put_bytes("models/m/versions/1.0.0/model.pkl", b"x")
    storage.put_bytes("models/m/keep", b"y")
    storage.delete("models/m/versions/1.0.0/model.pkl")
    assert not (tmp_path / "models/m/versions").exists()
    assert (tmp_path / "models/m/keep").exists()
    storage.put_bytes("models/m/versions/1.0.0/model.pkl", b"again")
    assert storage.get_bytes("models/m/versions/1.0.0/model.pkl") == b"again"


def test_constructor_does_no_io(tmp_path: Path) -> None:
    FileSystemStorage(tmp_path / "never" / "created")
    assert not (tmp_path / "never").exists()
