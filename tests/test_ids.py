"""Job ids: random version-4 UUIDs, a batch of random bytes read at a time."""

from __future__ import annotations

import os
import uuid

import pytest

from doclane import ids
from doclane.ids import new_job_id


def test_ids_are_distinct_version_4_uuids_across_batches() -> None:
    job_ids = [new_job_id() for _ in range(1000)]  # many batches
    assert len(set(job_ids)) == len(job_ids)
    for job_id in job_ids:
        parsed = uuid.UUID(job_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == job_id


def test_a_forked_child_does_not_reuse_its_parents_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_pool", b"")
    new_job_id()  # a new batch: the parent holds the rest of it
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(write, new_job_id().encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    from_child = os.read(read, 100).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert uuid.UUID(from_child).version == 4
    assert from_child != new_job_id()  # the parent's next id
