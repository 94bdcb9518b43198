"""Where uploads live: files addressed by key, every key derived from its job's id.

An upload is stored as ``<shard>/<job_id>.<type>``, the shard being the id's first two
characters, and whatever is derived from it (a spreadsheet's CSV) beside it under a longer name:
a job's files are those whose name starts with ``<job_id>.``. No directory per job: it would
be a second new inode per upload, as dear as the file itself (150-450 us of kernel time each on
an ext4 volume measured; docs/benchmarks.md, "Uploads"). The database keeps the key, never a path:
every API replica and worker that can reach the storage finds the file, from any working
directory. One backend today, chosen by ``DOCLANE_STORAGE_URL``: a directory (``file://``),
local or a shared volume. An object store (``s3://``) would implement the same interface, its
:meth:`Storage.local_path` downloading to a temporary file.

Keys written by earlier versions resolve the same way, and their files are deleted alike:
``<job_id>/upload.<type>`` (a directory per job), and before keys existed the job id alone (the
old ``<uploads>/<job_id>`` file; see migration 0003).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import anyio

from doclane.errors import DoclaneError, ProcessingError, StorageFull
from doclane.offload import run_blocking


def upload_key(job_id: str, file_type: str) -> str:
    """The key of a job's upload; ``file_type`` is what the bytes were sniffed as."""
    return f"{job_id[:2]}/{job_id}.{file_type}"


class Storage(ABC):
    @property
    @abstractmethod
    def spool_dir(self) -> Path:
        """A local directory to receive a large upload in before :meth:`save` stores it."""

    @abstractmethod
    async def save(self, key: str, source: Path) -> None:
        """Store a local file under ``key``; the source file is moved (it is gone after).
        Raises StorageFull if the storage cannot take it."""

    @abstractmethod
    async def write(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (a small upload, held in memory). Raises StorageFull
        if the storage cannot take it; then nothing is left under the key."""

    @abstractmethod
    def local_path(self, key: str) -> AbstractAsyncContextManager[Path]:
        """A local file with the key's content, for the block.

        Raises ProcessingError if nothing is stored under the key."""

    @abstractmethod
    async def delete_job(self, job_id: str) -> None:
        """Delete every file stored for a job (no error if there is none)."""


class LocalStorage(Storage):
    """A directory: the key is the path below it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @property
    def spool_dir(self) -> Path:
        return self.root  # on the same file system, so that saving is a rename

    def _path(self, key: str) -> Path:
        parts = PurePosixPath(key).parts
        if not parts or parts[0] == "/" or ".." in parts:  # only doclane writes keys; still
            raise ProcessingError(f"The job's upload is not in storage (key {key!r})")
        return self.root.joinpath(*parts)

    async def save(self, key: str, source: Path) -> None:
        target = self._path(key)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)  # a rename on one file system

        await _storing(move)

    async def write(self, key: str, data: bytes) -> None:
        await write_file(self._path(key), data, make_parent=True)

    @asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        path = self._path(key)
        if not await anyio.Path(path).is_file():
            raise ProcessingError("The uploaded file is missing from storage")
        yield path

    async def delete_job(self, job_id: str) -> None:
        def delete() -> None:
            shard, prefix = self._path(job_id[:2]), f"{job_id}."
            with contextlib.suppress(FileNotFoundError), os.scandir(shard) as entries:
                for entry in entries:
                    if entry.name.startswith(prefix):
                        Path(entry.path).unlink(missing_ok=True)
            shutil.rmtree(self._path(job_id), ignore_errors=True)  # earlier versions' (above)
            for legacy in (job_id, f"{job_id}.csv"):
                path = self._path(legacy)
                if path.is_file():
                    path.unlink(missing_ok=True)

        await run_blocking(delete)


# Three system calls for a small file, where Path.write_bytes makes six and an exists-check
# of the directory two more: each releases the GIL, and the loop's thread takes it back.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


async def write_file(path: Path, data: bytes, make_parent: bool = False) -> None:
    """Write a new local file; a failed write (a full disk) leaves nothing behind and is
    StorageFull (507)."""

    def write() -> None:
        try:
            fd = os.open(path, _NEW_FILE, 0o644)
        except FileNotFoundError:
            if not make_parent:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)  # once per new directory
            fd = os.open(path, _NEW_FILE, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    await _storing(write)


async def _storing(store: Callable[[], None]) -> None:
    """Run a blocking write into storage; a full disk (any OSError) is StorageFull (507)."""
    try:
        await run_blocking(store)
    except OSError as exc:
        raise StorageFull("The server could not store the file") from exc


def open_storage(url: str) -> Storage:
    """The storage for ``DOCLANE_STORAGE_URL``: ``file:///ABSOLUTE/PATH``."""
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        path = Path(unquote(parts.path))
        if path.is_absolute():
            return LocalStorage(path)
    raise DoclaneError(f"Unsupported storage URL {url!r} (expected file:///ABSOLUTE/PATH)")
