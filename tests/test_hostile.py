"""Hostile input: each gets a clear 4xx (or a job_failed with a clear reason when only
processing can tell), and the server keeps serving everyone else."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from doclane.documents import extract
from doclane.errors import DocumentError
from doclane.jobs import DocumentKind
from tests.documents import inspect_upload, make_report_pdf, stored_jobs
from tests.hostile import deeply_nested_pdf, long_line_csv, many_pages_pdf
from tests.server import ServerProcess
from tests.wsclient import check_stream, follow, of_job, upload

pytestmark = pytest.mark.anyio


def test_hundred_thousand_page_pdf_is_refused(tmp_path: Path) -> None:
    pdf = many_pages_pdf(tmp_path / "many.pdf")
    with pytest.raises(DocumentError, match="100,000 pages; at most 2,000"):
        inspect_upload(pdf)


def test_deeply_nested_pdf_is_read_without_harm(tmp_path: Path) -> None:
    pdf = deeply_nested_pdf(tmp_path / "deep.pdf")
    assert inspect_upload(pdf) is DocumentKind.PDF
    document = extract(pdf, DocumentKind.PDF, lambda *_: None, lambda: False)
    assert "1 page" in document.facts


def test_ten_megabyte_csv_line_fails_clearly(tmp_path: Path) -> None:
    csv = long_line_csv(tmp_path / "long.csv")
    assert inspect_upload(csv) is DocumentKind.CSV  # only parsing can tell
    with pytest.raises(DocumentError, match="CSV file could not be parsed"):
        extract(csv, DocumentKind.CSV, lambda *_: None, lambda: False)


def test_truncated_pdf_is_refused(tmp_path: Path) -> None:
    whole = make_report_pdf(tmp_path / "whole.pdf").read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 3])
    try:
        kind = inspect_upload(cut)
    except DocumentError as error:
        assert "damaged" in error.message
    else:  # PDFium repairs what it can: then whatever text survives is read
        assert kind is DocumentKind.PDF
        extract(cut, DocumentKind.PDF, lambda *_: None, lambda: False)


@pytest.mark.slow
async def test_server_refuses_oversize_before_the_body_and_keeps_serving(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server({"DOCLANE_MAX_UPLOAD_BYTES": "20000000"})
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(
            b"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 10000000000\r\n\r\n"  # 10 GB announced, none sent
        )
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = raw.recv(65536)
            if not chunk:
                break
            reply += chunk
    reply_text = reply.decode()
    assert reply_text.startswith("HTTP/1.1 413"), reply_text
    assert '"success":false' in reply_text and "too large" in reply_text
    assert time.monotonic() - started < 5  # answered without waiting for a body

    # A CSV whose only line is 10 MB: accepted, then failed with a reason; others unharmed.
    csv = long_line_csv(tmp_path / "long.csv")
    pdf = make_report_pdf(tmp_path / "r.pdf")
    async with connect(server.ws) as ws:
        bad = (await upload(server.http, csv, "Sum b."))["data"]["job_id"]
        good = (await upload(server.http, pdf, "What was revenue?"))["data"]["job_id"]
        events = await follow(ws, {bad, good})
    failed = of_job(events, bad)[-1]
    assert failed["type"] == "job_failed" and "CSV" in failed["error"]
    check_stream(of_job(events, good))
    async with httpx.AsyncClient(base_url=server.http) as http:
        with anyio.fail_after(10):
            assert (await http.get("/api/health")).status_code == 200


async def test_disk_full_during_upload_leaves_nothing_behind(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # Files may not grow past 2 MB in the server process: the upload hits it like a full disk.
    server = start_server(max_file_bytes=2_000_000)
    big = tmp_path / "big.csv"
    big.write_text("a,b\n" + "1,2\n" * 800_000)  # 3.2 MB
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
        with big.open("rb") as file:
            response = await http.post("/api/upload", files={"file": ("big.csv", file)})
        assert response.status_code == 507
        assert response.json() == {
            "success": False,
            "error": "The server could not store the file",
        }
        assert stored_jobs(server.data_dir / "uploads") == []
        pdf = make_report_pdf(tmp_path / "r.pdf")  # small files still go through
        with pdf.open("rb") as file:
            ok = await http.post("/api/upload", files={"file": ("r.pdf", file)})
        assert ok.status_code == 200


async def test_missing_model_fails_jobs_clearly(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server({"DOCLANE_LOCAL_MODEL_PATH": str(tmp_path / "nope.gguf")})
    async with connect(server.ws) as ws:
        pdf = make_report_pdf(tmp_path / "r.pdf")
        job_id = (await upload(server.http, pdf, "What was revenue?"))["data"]["job_id"]
        [*_, failed] = of_job(await follow(ws, {job_id}), job_id)
    assert failed["type"] == "job_failed"
    assert failed["error"] == f"Local model file not found: {tmp_path / 'nope.gguf'}"
