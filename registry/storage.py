"""Where the registry keeps its bytes: a small storage interface and its filesystem implementation.

The registry speaks to storage through :class:`ArtifactStorage` only: atomic whole-object writes, reads,
appends (for the alias log), existence checks, listing by prefix, deletion and an exclusive lock.
Paths are relative, ``/``-separated strings such as ``models/churn/versions/1.2.3/manifest.json``.

Adding an object store later
----------------------------
An ``FsspecStorage(fs: fsspec.AbstractFileSystem, root: str)`` can implement the same interface without
touching :class:`~registry.registry.Registry`: ``put_bytes`` -> ``fs.pipe_file`` (a single PUT is atomic
on S3/GCS/Azure), ``get_bytes`` -> ``fs.cat_file``, ``exists`` -> ``fs.exists``, ``list`` -> ``fs.find``,
``delete`` -> ``fs.rm_file``; ``append_bytes`` becomes read-modify-write under the lock (object stores
cannot append); ``lock`` needs a coordinator the object store lacks (a Redis ``SET NX PX`` lease, or S3
conditional writes with ``If-None-Match``). Run ``tests/unit/test_registry_storage.py`` against it.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path, PurePosixPath

from hanzo.ml.config.errors import RegistryError

logger = logging.getLogger(__name__)

#: Prefix of the temporary files of an atomic write; never listed.
TEMP_PREFIX = ".tmp-"
#: Folder (under the root) of the lock files; never listed.
LOCK_DIR = ".locks"


class ArtifactStorage(abc.ABC):
    """The interface the registry needs from a place that stores bytes.

    Guarantees an implementation must give: ``put_bytes`` is atomic (a reader sees the old object or the
    new one, never a part); a path never escapes the storage root (``..``, absolute paths and empty parts
    raise :class:`~config.errors.RegistryError`); ``lock`` excludes other holders of the same key, in this
    and in other processes.
    """

    @abc.abstractmethod
    def put_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path`` atomically, replacing what was there."""

    @abc.abstractmethod
    def get_bytes(self, path: str) -> bytes:
        """Read the object at ``path``; raise RegistryError when it does not exist."""

    @abc.abstractmethod
    def append_bytes(self, path: str, data: bytes) -> None:
        """Append ``data`` to the object at ``path`` (created when missing); never rewrites what is there."""

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        """Whether an object exists at ``path``."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every object path under the folder ``prefix`` (recursively), sorted."""

    @abc.abstractmethod
    def delete(self, path: str) -> None:
        """Delete the object at ``path``; deleting a missing object is not an error."""

    @abc.abstractmethod
    def lock(self, key: str, timeout_s: float = 60.0) -> contextlib.AbstractContextManager[None]:
        """Hold an exclusive lock named ``key`` for the ``with`` block (not re-entrant)."""


def _check_relative(path: str, *, allow_empty: bool = False) -> PurePosixPath:
    """Return ``path`` as a relative POSIX path made only of plain parts, or raise RegistryError."""
    if not isinstance(path, str):
        msg = f"storage path {path!r} must be a str, got {type(path).__name__}"
        raise RegistryError(msg)
    if path == "" and allow_empty:
        return PurePosixPath()
    rule = "a relative path of plain parts separated by '/' (no '..', '.', empty part, '\\' or leading '/')"
    if path == "" or path.startswith("/") or "\\" in path or "\x00" in path or Path(path).is_absolute():
        msg = f"storage path {path!r} refused: it must be {rule}"
        raise RegistryError(msg)
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        msg = f"storage path {path!r} refused: it must be {rule}"
        raise RegistryError(msg)
    return PurePosixPath(*parts)


class FileSystemStorage(ArtifactStorage):
    """Objects as files under ``root``: atomic replace-writes, fsync'd, with ``fcntl`` locks.

    A write goes to a temporary file in the target's folder, is flushed and fsync'd, then ``os.replace``
    moves it over the target and the folder itself is fsync'd, so a crash leaves either the old file or
    the new one. Every path is resolved (symbolic links included) and must stay inside ``root``.
    The constructor does no I/O; folders are created on first write.

    Parameters
    ----------
    root
        Folder that holds every object (created on first write).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     storage = FileSystemStorage(Path(tmp))
    ...     storage.put_bytes("models/a/manifest.json", b"{}")
    ...     storage.get_bytes("models/a/manifest.json"), storage.list("models")
    (b'{}', ['models/a/manifest.json'])
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileSystemStorage(root={str(self.root)!r})"

    @cached_property
    def _root_resolved(self) -> Path:
        return self.root.resolve()

    def _resolve(self, path: str, *, allow_empty: bool = False) -> Path:
        relative = _check_relative(path, allow_empty=allow_empty)
        full = (self._root_resolved / relative).resolve()
        if not full.is_relative_to(self._root_resolved):
            msg = f"storage path {path!r} resolves to {str(full)!r}, outside the root {str(self.root)!r}"
            raise RegistryError(msg)
        return full

    def _make_dirs(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, fsync'ing each parent that gained an entry."""
        missing: list[Path] = []
        current = folder
        while not current.exists():
            missing.append(current)
            current = current.parent
        for created in reversed(missing):
            with contextlib.suppress(FileExistsError):  # a concurrent writer made it first
                created.mkdir()
            _fsync_dir(created.parent)

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path`` atomically (temp file, fsync, ``os.replace``, fsync of the folder)."""
        target = self._resolve(path)
        for attempt in range(3):
            self._make_dirs(target.parent)
            try:
                fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
            except FileNotFoundError:  # the folder was pruned by a concurrent delete; make it again
                if attempt == 2:
                    raise
                continue
            break
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o644)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(target.parent)

    def get_bytes(self, path: str) -> bytes:
        """Read the file at ``path``."""
        target = self._resolve(path)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            msg = f"no object at {path!r} in {str(self.root)!r}"
            raise RegistryError(msg) from None

    def append_bytes(self, path: str, data: bytes) -> None:
        """Append ``data`` with one ``O_APPEND`` write, then fsync; existing bytes are never rewritten."""
        target = self._resolve(path)
        self._make_dirs(target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        """Whether a file exists at ``path``."""
        return self._resolve(path).is_file()

    def list(self, prefix: str = "") -> list[str]:
        """Every file under the folder ``prefix``, as sorted relative paths (temp and lock files skipped)."""
        base = self._resolve(prefix, allow_empty=True)
        if not base.is_dir():
            return []
        found: list[str] = []
        for folder, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not (folder == str(self._root_resolved) and d == LOCK_DIR)]
            for file_name in files:
                if file_name.startswith(TEMP_PREFIX):
                    continue
                full = Path(folder) / file_name
                found.append(full.relative_to(self._root_resolved).as_posix())
        return sorted(found)

    def delete(self, path: str) -> None:
        """Delete the file at ``path`` and prune the folders it leaves empty (up to the root)."""
        target = self._resolve(path)
        try:
            target.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(target.parent)
        folder = target.parent
        while folder != self._root_resolved and folder.is_relative_to(self._root_resolved):
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): stop pruning
                break
            folder = folder.parent

    @contextlib.contextmanager
    def lock(self, key: str, timeout_s: float = 60.0) -> Iterator[None]:
        """Hold ``fcntl.flock(LOCK_EX)`` on ``<root>/.locks/<key>.lock`` (excludes threads and processes)."""
        _check_relative(key)
        if "/" in key:
            msg = f"lock key {key!r} must be one path part (no '/')"
            raise RegistryError(msg)
        lock_path = self._resolve(f"{LOCK_DIR}/{key}.lock")
        self._make_dirs(lock_path.parent)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout_s
            pause = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        msg = (
                            f"could not lock {str(lock_path)!r} within {timeout_s}s: another process "
                            "holds it; "
                            "retry, or look for a stuck hanzo-ml process using this registry"
                        )
                        raise RegistryError(msg) from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.01)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Fsync a folder so a rename or a new entry in it survives a crash."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
