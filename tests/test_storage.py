"""Uploads in storage, addressed by key: the local directory backend and its URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from doclane.errors import DoclaneError, ProcessingError, StorageFull
from doclane.storage import LocalStorage, open_storage, upload_key
from tests.documents import stored_jobs

pytestmark = pytest.mark.anyio


async def test_save_read_and_delete_a_jobs_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    key = upload_key("job-1", "spreadsheet")
    for name, data in (("upload", b"sheet"), ("upload.csv", b"a,b\n")):
        (tmp_path / name).write_bytes(data)
    await storage.save(key, tmp_path / "upload")
    await storage.save(f"{key}.csv", tmp_path / "upload.csv")
    assert not (tmp_path / "upload").exists()  # moved, not copied
    async with storage.local_path(key) as path:
        assert path.read_bytes() == b"sheet"
        assert path.with_name(path.name + ".csv").read_bytes() == b"a,b\n"  # beside it
    await storage.delete_job("job-1")
    assert stored_jobs(tmp_path / "root") == []
    with pytest.raises(ProcessingError, match="missing"):
        async with storage.local_path(key):
            pass


async def test_a_small_upload_is_written_under_its_key_in_one_call(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    key = upload_key("job-1", "csv")
    await storage.write(key, b"a,b\n1,2\n")
    async with storage.local_path(key) as path:
        assert path.read_bytes() == b"a,b\n1,2\n"
    assert list(storage.spool_dir.glob("incoming-*")) == []  # never spooled


async def test_a_write_to_a_full_disk_is_storage_full_and_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    key = upload_key("job-1", "csv")
    (tmp_path / "root" / key).parent.mkdir()
    (tmp_path / "root" / key).symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(StorageFull):
        await storage.write(key, b"a,b\n1,2\n")
    assert list((tmp_path / "root" / key).parent.iterdir()) == []


async def test_no_directory_is_made_per_job(tmp_path: Path) -> None:
    """A new directory costs as much as the file: jobs share their shard's, and deleting one
    job leaves its neighbours' files, even one whose id starts with the same characters."""
    storage = LocalStorage(tmp_path / "root")
    for job_id in ("job-1", "job-10", "job-2"):
        await storage.write(upload_key(job_id, "csv"), job_id.encode())
    assert [path.name for path in (tmp_path / "root").iterdir()] == ["jo"]
    await storage.delete_job("job-1")
    assert stored_jobs(tmp_path / "root") == ["job-10", "job-2"]


async def test_keys_from_before_storage_resolve_and_delete_alike(tmp_path: Path) -> None:
    """Migration 0003 turned ``<uploads>/<job_id>`` into the key ``<job_id>``."""
    storage = LocalStorage(tmp_path)
    (tmp_path / "old-job").write_bytes(b"%PDF")
    (tmp_path / "old-job.csv").write_bytes(b"derived")
    async with storage.local_path("old-job") as path:
        assert path == tmp_path / "old-job"
    await storage.delete_job("old-job")
    assert list(tmp_path.iterdir()) == []


async def test_keys_of_a_directory_per_job_resolve_and_delete_alike(tmp_path: Path) -> None:
    """Earlier versions kept a job's files in a directory of its own."""
    storage = LocalStorage(tmp_path)
    (tmp_path / "old-job").mkdir()
    (tmp_path / "old-job" / "upload.spreadsheet").write_bytes(b"sheet")
    (tmp_path / "old-job" / "upload.spreadsheet.csv").write_bytes(b"a,b\n")
    async with storage.local_path("old-job/upload.spreadsheet") as path:
        assert path.read_bytes() == b"sheet"
    await storage.delete_job("old-job")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["/etc/passwd", "../outside", "a/../../b", ""])
async def test_a_key_never_leaves_the_root(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "root")
    with pytest.raises(ProcessingError, match="not in storage"):
        async with storage.local_path(key):
            pass


def test_the_url_chooses_the_backend(tmp_path: Path) -> None:
    storage = open_storage((tmp_path / "up loads").as_uri())
    assert isinstance(storage, LocalStorage) and storage.root == tmp_path / "up loads"
    assert storage.root.is_dir()
    for url in ("file://relative/path", "s3://bucket/uploads", str(tmp_path)):
        with pytest.raises(DoclaneError, match="Unsupported storage URL"):
            open_storage(url)
