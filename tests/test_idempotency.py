"""POST /api/upload with an Idempotency-Key, through the real ASGI app, on every backend: a
retry gets the first job, and uploads racing with one key make exactly one job and one file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from doclane.jobs import JobStore, open_store
from doclane.settings import Settings
from tests.documents import stored_jobs
from tests.postgres import database_or_skip
from tests.wsclient import queued

pytestmark = pytest.mark.anyio

CSV = b"city,sales\nOslo,10\nLima,20\n"
BOUNDARY = "idempotency-test-boundary"


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """The conftest's settings, on each backend (the `api` fixture serves them)."""
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        yield Settings(data_dir=data_dir, run_worker=False)
    else:
        with database_or_skip() as url:
            yield Settings(data_dir=data_dir, database_url=url, run_worker=False)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[JobStore]:
    store = open_store(settings.resolved_database_url)
    await store.open()
    yield store
    await store.close()


async def post(api: httpx.AsyncClient, key: str | bytes | None, **fields: str) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await api.post(
        "/api/upload", files={"file": ("d.csv", CSV)}, data=fields, headers=headers
    )


async def queued_jobs(store: JobStore) -> list[str]:
    """Every job in the queue (no worker runs: each one is still there to claim)."""
    jobs = []
    while (job := await store.claim("counter", 60)) is not None:
        jobs.append(job.job_id)
    return jobs


async def test_a_retry_gets_the_first_job(
    api: httpx.AsyncClient, settings: Settings, store: JobStore
) -> None:
    first = await post(api, "order-42", prompt="Total sales?")
    assert first.status_code == 200, first.text
    job_id = first.json()["data"]["job_id"]
    retry = await post(api, "order-42", prompt="Total sales?")
    assert retry.status_code == 200 and retry.json() == first.json() == queued(job_id)
    # The body of a retry whose job exists is never read: not even a malformed one fails it.
    garbage = await api.post(
        "/api/upload", content=b"not multipart", headers={"Idempotency-Key": "order-42"}
    )
    assert garbage.status_code == 200 and garbage.json() == first.json()
    other = await post(api, "order-43")
    unkeyed = [await post(api, None) for _ in range(2)]
    ids = [r.json()["data"]["job_id"] for r in (first, other, *unkeyed)]
    assert len(set(ids)) == 4
    assert await queued_jobs(store) == ids
    assert stored_jobs(settings.uploads_dir) == sorted(ids)


@pytest.mark.parametrize("key", [b"", b"x" * 256, b"caf\xc3\xa9", b"tab\there", b"\x7f"])
async def test_an_invalid_key_is_refused(api: httpx.AsyncClient, key: bytes) -> None:
    response = await api.post(
        "/api/upload", files={"file": ("d.csv", CSV)}, headers={"Idempotency-Key": key}
    )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "success": False,
        "error": "Idempotency-Key must be 1 to 255 printable ASCII characters",
    }


async def test_the_longest_key_and_every_printable_character_are_accepted(
    api: httpx.AsyncClient,
) -> None:
    for key in ("k" * 255, "".join(map(chr, range(0x21, 0x7F)))):
        assert (await post(api, key)).status_code == 200


RACERS = 6


async def test_concurrent_uploads_with_one_key_make_one_job(
    api: httpx.AsyncClient, settings: Settings, store: JobStore
) -> None:
    """Every upload looks the key up before any has a job (each body is held back until all of
    them are being read), so all but one lose the insert: they delete their file and answer
    with the winner's job."""
    reading = 0
    all_reading = anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        nonlocal reading
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"'
            "\r\nContent-Type: text/csv\r\n\r\n"
        ).encode()
        reading += 1  # the route asks for more: it looked the key up, and found no job
        if reading == RACERS:
            all_reading.set()
        with anyio.fail_after(10):
            await all_reading.wait()
        yield CSV + f"\r\n--{BOUNDARY}--\r\n".encode()

    responses: list[httpx.Response] = []

    async def upload() -> None:
        responses.append(
            await api.post(
                "/api/upload",
                content=body(),
                headers={
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                    "Idempotency-Key": "one-key",
                },
            )
        )

    async with anyio.create_task_group() as tg:
        for _ in range(RACERS):
            tg.start_soon(upload)
    assert [r.status_code for r in responses] == [200] * RACERS, responses[0].text
    [job_id] = {r.json()["data"]["job_id"] for r in responses}
    assert all(r.json() == queued(job_id) for r in responses)
    assert await queued_jobs(store) == [job_id]
    assert stored_jobs(settings.uploads_dir) == [job_id]  # the losers' files are gone
