"""POST /api/upload and GET /api/jobs/{id} through the real ASGI app: fields, errors, limits."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from doclane.intake import DEFAULT_PROMPT
from doclane.jobs import open_store
from doclane.settings import Settings
from tests.documents import (
    encrypt_pdf,
    make_csv,
    make_png,
    make_report_pdf,
    png_bytes,
    stored_jobs,
)
from tests.wsclient import queued

pytestmark = pytest.mark.anyio


async def post(api: httpx.AsyncClient, name: str, content: bytes, **fields: str) -> httpx.Response:
    return await api.post("/api/upload", files={"file": (name, content)}, data=fields)


def assert_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "error"}
    assert body["success"] is False
    for word in words:
        assert word.lower() in body["error"].lower(), body["error"]


def leftover_files(settings: Settings) -> list[str]:
    return stored_jobs(settings.uploads_dir)


async def stored_job(settings: Settings, job_id: str) -> Any:
    store = open_store(settings.resolved_database_url)
    await store.open()
    try:
        return await store.get(job_id)
    finally:
        await store.close()


async def test_upload_response_and_queued_job(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    pdf = make_report_pdf(tmp_path / "report.pdf").read_bytes()
    response = await post(api, "report.pdf", pdf, prompt="  What was revenue?  ", priority="3")
    assert response.status_code == 200
    body = response.json()
    job_id = body["data"]["job_id"]
    assert body == queued(job_id)
    job = await stored_job(settings, job_id)
    assert job.prompt == "What was revenue?"
    assert job.priority == 3
    assert job.kind == "pdf"
    assert job.upload_key == f"{job_id[:2]}/{job_id}.pdf"  # a key below the storage root
    assert (settings.uploads_dir / job.upload_key).read_bytes() == pdf  # stored intact
    assert leftover_files(settings) == [job_id]  # no spooled leftovers

    status = (await api.get(f"/api/jobs/{job_id}")).json()
    assert status["success"] is True
    assert status["data"]["status"] == "pending"
    assert status["data"]["progress"] == 0
    assert status["data"]["completed_at"] is None
    assert status["data"]["ai_response"] == ""
    assert status["data"]["file_name"] == "report.pdf"


async def test_empty_prompt_means_summary(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    response = await post(api, "data.csv", make_csv(tmp_path / "d.csv").read_bytes(), prompt="")
    job = await stored_job(settings, response.json()["data"]["job_id"])
    assert job.prompt == DEFAULT_PROMPT
    assert job.kind == "csv"


@pytest.mark.parametrize(
    ("scheduled_at", "expected_offset"),
    [
        ("2999-01-01T00:00:00Z", None),  # too far ahead: rejected below
        ("2000-01-01T00:00:00", 0),  # the past means now
    ],
)
async def test_scheduled_at_past_means_now(
    api: httpx.AsyncClient,
    settings: Settings,
    scheduled_at: str,
    expected_offset: int | None,
) -> None:
    response = await post(api, "a.png", png_bytes(), scheduled_at=scheduled_at)
    if expected_offset is None:
        assert_error(response, 422, "scheduled_at")
        return
    job = await stored_job(settings, response.json()["data"]["job_id"])
    assert abs(job.run_at - job.created_at) < 5


async def test_scheduled_at_without_zone_is_utc(api: httpx.AsyncClient, settings: Settings) -> None:
    import time
    from datetime import UTC, datetime

    future = int(time.time()) + 3600
    naive = datetime.fromtimestamp(future, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    with_offset = datetime.fromtimestamp(future, UTC).astimezone().isoformat()
    for value in (naive, naive + "Z", with_offset):
        response = await post(api, "a.png", png_bytes(), scheduled_at=value)
        job = await stored_job(settings, response.json()["data"]["job_id"])
        assert job.run_at == future, value


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"priority": "high"}, 422, ["priority", "integer"]),
        ({"priority": "1.5"}, 422, ["priority", "integer"]),
        ({"priority": "99999999999999999999"}, 422, ["priority"]),
        ({"scheduled_at": "tomorrow"}, 422, ["scheduled_at", "ISO 8601"]),
        ({"scheduled_at": "2024-13-45T00:00:00"}, 422, ["scheduled_at"]),
        ({"prompt": "x" * 20_001}, 422, ["prompt", "too long"]),
    ],
)
async def test_bad_fields(
    api: httpx.AsyncClient,
    settings: Settings,
    fields: dict[str, str],
    status: int,
    words: list[str],
) -> None:
    assert_error(await post(api, "a.png", png_bytes(), **fields), status, *words)
    assert leftover_files(settings) == []


@pytest.mark.parametrize(
    ("name", "content", "status", "words"),
    [
        ("empty.pdf", b"", 400, ["empty"]),
        ("setup.exe", b"MZ\x90\x00\x03" + bytes(range(256)) * 4, 415, ["unsupported"]),
        ("random.pdf", os.urandom(4096), 415, ["unsupported"]),
        ("random.png", os.urandom(4096), 415, ["unsupported"]),
        ("broken.pdf", b"%PDF-1.7\n" + os.urandom(2000), 422, ["pdf"]),
        ("truncated.png", png_bytes()[:40], 422, ["image"]),
    ],
)
async def test_bad_files(
    api: httpx.AsyncClient,
    settings: Settings,
    name: str,
    content: bytes,
    status: int,
    words: list[str],
) -> None:
    assert_error(await post(api, name, content), status, *words)
    assert leftover_files(settings) == []


async def test_password_protected_pdf(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    plain = make_report_pdf(tmp_path / "plain.pdf")
    locked = encrypt_pdf(plain, tmp_path / "locked.pdf", "secret")
    assert_error(await post(api, "locked.pdf", locked.read_bytes()), 422, "password")
    # An empty user password opens, as in any viewer.
    open_pdf = encrypt_pdf(plain, tmp_path / "open.pdf", "")
    assert (await post(api, "open.pdf", open_pdf.read_bytes())).status_code == 200


async def test_real_type_wins_over_the_name(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    png = make_png(tmp_path / "x.png").read_bytes()
    response = await post(api, "actually-an-image.pdf", png)
    job = await stored_job(settings, response.json()["data"]["job_id"])
    assert job.kind == "image"
    assert job.file_name == "actually-an-image.pdf"


async def test_missing_file(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/upload", data={"prompt": "hi"}, files={"other": ("a", b"b")})
    assert_error(response, 400, "file")
    response = await api.post("/api/upload", json={"prompt": "hi"})
    assert_error(response, 400, "multipart")


async def test_file_name_is_sanitised(api: httpx.AsyncClient, settings: Settings) -> None:
    # Built by hand: HTTP clients would percent-escape the control characters.
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; '
        b'filename="..\\..\\etc/pa\x07ss\x1bwd.png"\r\n\r\n' + png_bytes() + b"\r\n--b--\r\n"
    )
    response = await api.post(
        "/api/upload", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    job_id = response.json()["data"]["job_id"]
    job = (await api.get(f"/api/jobs/{job_id}")).json()["data"]
    assert job["file_name"] == "passwd.png"
    assert leftover_files(settings) == [job_id]


async def test_oversize_refused_from_content_length(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    limit = settings.max_upload_bytes

    async def body() -> AsyncIterator[bytes]:
        yield b"x"

    response = await api.post(
        "/api/upload",
        content=body(),
        headers={
            "content-type": "multipart/form-data; boundary=xyz",
            "content-length": str(limit * 2),
        },
    )
    assert_error(response, 413, "too large")
    assert leftover_files(settings) == []


async def test_oversize_cut_off_while_streaming(tmp_path: Path) -> None:
    from doclane.app import create_app

    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=100_000, run_worker=False)
    app = create_app(settings)

    async def chunked_body() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n')
        for _ in range(1000):  # 64 MB offered, far past the limit
            yield b"a,b\n" * 16384

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            response = await client.post(
                "/api/upload",
                content=chunked_body(),
                headers={"content-type": "multipart/form-data; boundary=b"},
            )
    assert_error(response, 413, "too large")
    assert leftover_files(settings) == []


async def test_unknown_job(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/api/jobs/nope"), 404, "not found")


async def test_health_and_cors(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/health", headers={"origin": "http://localhost:3000"})
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    preflight = await api.options(
        "/api/upload",
        headers={
            "origin": "http://127.0.0.1:3000",
            "access-control-request-method": "POST",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    other = await api.get("/api/health", headers={"origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("size", [33, 300_000])  # held in memory; streamed to the spool
async def test_the_file_is_received_whole_and_sniffed_from_its_first_bytes(
    tmp_path: Path, size: int
) -> None:
    """The form keeps the file's first HEAD_BYTES as they arrive (the upload sniffs them, no
    read of the file); a small file is held in memory (nothing spooled), a large one streamed."""
    from doclane.documents import FileType, sniff_head
    from doclane.documents.sniff import HEAD_BYTES
    from doclane.uploads import SPOOL_IN_MEMORY, receive_form

    data = (b"region,revenue\n" + b"north,10\n" * size)[:size]

    async def body() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nTotal?\r\n'
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.csv"\r\n\r\n'
        for start in range(0, size, 5000):  # in pieces, as a network delivers it
            yield data[start : start + 5000]
        yield b"\r\n--b--\r\n"

    form = await receive_form("multipart/form-data; boundary=b", body(), tmp_path, 10**6)
    assert form.fields == {"prompt": "Total?"} and form.file_name == "s.csv"
    if size <= SPOOL_IN_MEMORY:
        assert form.held == data and form.file_path is None and list(tmp_path.iterdir()) == []
        assert (await form.on_disk(tmp_path)).read_bytes() == data  # for a reader's check
    else:
        assert form.held is None
    assert form.file_path is not None and form.file_path.read_bytes() == data
    assert form.file_size == size and form.head == data[:HEAD_BYTES]
    assert sniff_head(form.head) is FileType.TEXT_TABLE


async def test_a_spreadsheet_is_stored_with_its_csv(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    """The upload's check turns a spreadsheet's first sheet into a CSV: both are stored under
    the job's key, and no spooled file is left behind."""
    import xlsxwriter

    path = tmp_path / "sales.xlsx"
    with xlsxwriter.Workbook(str(path)) as workbook:
        workbook.add_worksheet("Sales").write_row(0, 0, ["region", "units"])
    response = await post(api, "sales.xlsx", path.read_bytes())
    assert response.status_code == 200, response.text
    job_id = response.json()["data"]["job_id"]
    stored = sorted(os.listdir(settings.uploads_dir / job_id[:2]))
    assert stored == [f"{job_id}.spreadsheet", f"{job_id}.spreadsheet.csv"]
    assert leftover_files(settings) == [job_id]
