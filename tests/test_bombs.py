"""The hostile-file corpus against one real server: each file is refused at upload (422) or
fails its job with a clear reason, and meanwhile the server stays alive, answers /api/health
within 2 s, keeps its peak memory, and completes the next ordinary job.

The files are made by tests/hostile.py; each is small on disk and costly to parse. The server
runs with tight reader limits so that CPU bombs are cut short quickly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from tests import hostile
from tests.documents import make_csv, make_report_pdf, stored_jobs
from tests.server import ServerProcess
from tests.wsclient import check_stream, follow, of_job, upload

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

READER_ENV = {
    "DOCLANE_READER_MEMORY_MB": "768",
    "DOCLANE_READER_STEP_SECONDS": "5",
    "DOCLANE_READER_TIMEOUT_SECONDS": "10",
    "DOCLANE_MAX_ANSWER_TOKENS": "8",
}
HEALTH_DEADLINE = 2.0
PEAK_GROWTH_MB = 100  # the server's own peak memory, above what it had after a first job


@dataclass(frozen=True)
class Bomb:
    name: str
    make: Callable[[Path], Path]
    file_name: str
    outcome: Literal["refused", "failed", "answered"]  # 422 at upload, or what its job does
    message: str  # a piece of the error the user sees (or of the answer)


BOMBS = [
    Bomb(
        "XLSX with a cell at the sheet's far corner",
        hostile.far_corner_xlsx,
        "corner.xlsx",
        "refused",
        "The spreadsheet could not be read",
    ),
    Bomb(
        "legacy XLS with a cell at the sheet's far corner",
        hostile.corner_xls,
        "corner.xls",
        "refused",
        "The spreadsheet could not be read",
    ),
    Bomb(
        "ODS of a cell repeated 8 million times",
        lambda path: hostile.repeated_ods(path, rows=20_000, columns=400),
        "repeated.ods",
        "refused",
        "The spreadsheet could not be read",
    ),
    Bomb(
        "ODS of a cell repeated a billion times",
        hostile.repeated_ods,
        "billion.ods",
        "refused",
        "spreadsheet",
    ),
    Bomb(
        "XLSX of four million shared strings",
        hostile.shared_strings_xlsx,
        "strings.xlsx",
        "refused",
        "likely decompression bomb",
    ),
    Bomb(
        "PNG of 64 million pixels",
        lambda path: hostile.bomb_png(path, 8000),
        "bomb.png",
        "refused",
        "8,000 x 8,000 pixels",
    ),
    Bomb(
        "TIFF declaring ten billion pixels",
        hostile.huge_tiff,
        "huge.tif",
        "refused",
        "pixels",
    ),
    Bomb(
        "progressive JPEG of thousands of scans",
        hostile.progressive_jpeg,
        "scans.jpg",
        "failed",
        "The image took too long to read",
    ),
    Bomb(
        "PDF whose 200 pages share one 5 MiB content stream",
        hostile.amplified_pdf,
        "shared.pdf",
        "failed",
        "The PDF took too long to read",
    ),
    Bomb(
        "PDF with an array nested 100,000 levels deep",
        hostile.deeply_nested_pdf,
        "nested.pdf",
        "answered",
        "",  # PDFium reads it (one blank page): it only must not hurt
    ),
    Bomb(
        "CSV of 2,000 columns",
        hostile.wide_csv,
        "wide.csv",
        "answered",
        "",  # the first 200 columns are profiled, the rest named
    ),
    Bomb(
        "CSV of 10,000 columns",
        lambda path: hostile.wide_csv(path, columns=10_000),
        "wider.csv",
        "failed",
        "The table has too many columns to read within the memory limit",
    ),
    Bomb(
        "CSV of one 50 MB line",
        lambda path: hostile.long_line_csv(path, 50_000_000),
        "line.csv",
        "failed",
        "The table took too long to read",
    ),
]


class HealthWatch:
    """Polls /api/health from a thread; remembers the slowest answer and any failure."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.worst = 0.0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=HEALTH_DEADLINE * 2) as client:
            while not self._stop.wait(0.2):
                started = time.monotonic()
                try:
                    status = client.get("/api/health").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.worst = max(self.worst, time.monotonic() - started)
                if status != 200:
                    self.failures.append(f"status {status}")

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@dataclass
class Target:
    server: ServerProcess
    health: HealthWatch
    baseline_mb: float
    normal_csv: Path


async def ordinary_job_completes(target: Target) -> None:
    server = target.server
    async with connect(server.ws) as ws:
        job_id = (await upload(server.http, target.normal_csv, "What is the total amount?"))[
            "data"
        ]["job_id"]
        answer = check_stream(of_job(await follow(ws, {job_id}, timeout=60), job_id))
    assert "2,050" in answer  # amount = 2.5 * order_id over 40 rows


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One server for the whole corpus, watched from start to end."""
    root = tmp_path_factory.mktemp("bombs")
    server = ServerProcess(root / "data", READER_ENV).start()
    try:
        with HealthWatch(server.http) as health:
            assert server.process is not None
            first = Target(server, health, 0.0, make_csv(root / "orders.csv", rows=40))
            anyio.run(ordinary_job_completes, first)  # the model is loaded: memory settles
            first.baseline_mb = peak_rss_mb(server.process.pid)
            yield first
    finally:
        server.stop()


@pytest.mark.parametrize("bomb", BOMBS, ids=[bomb.name for bomb in BOMBS])
async def test_a_bomb_costs_one_upload_or_one_job(
    target: Target, bomb: Bomb, tmp_path: Path
) -> None:
    server = target.server
    path = bomb.make(tmp_path / bomb.file_name)
    uploads = stored_jobs(server.data_dir / "uploads")
    async with httpx.AsyncClient(base_url=server.http, timeout=60) as http:
        with path.open("rb") as file:
            response = await http.post(
                "/api/upload", files={"file": (bomb.file_name, file)}, data={"prompt": "Total?"}
            )
    if bomb.outcome == "refused":
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["success"] is False and bomb.message in body["error"], body
        assert stored_jobs(server.data_dir / "uploads") == uploads  # nothing left behind
    else:
        assert response.status_code == 200, response.text
        job_id = response.json()["data"]["job_id"]
        async with connect(server.ws) as ws:
            events = of_job(await follow(ws, {job_id}, timeout=60), job_id)
        if bomb.outcome == "failed":
            assert events[-1]["type"] == "job_failed", events[-1]
            assert bomb.message in events[-1]["error"], events[-1]
        else:
            assert bomb.message in check_stream(events)

    assert server.process is not None and server.process.poll() is None, server.log()
    assert target.health.failures == [] and target.health.worst < HEALTH_DEADLINE
    growth = peak_rss_mb(server.process.pid) - target.baseline_mb
    assert growth < PEAK_GROWTH_MB, f"the server's peak memory grew {growth:.0f} MB"
    await ordinary_job_completes(target)


async def test_a_pdf_being_read_holds_up_no_other_upload(target: Target, tmp_path: Path) -> None:
    """PDFium used to be one lock for the whole server: a PDF whose 200 pages share one 5 MiB
    content stream kept another user's one-page upload waiting for seconds."""
    server = target.server
    heavy = hostile.amplified_pdf(tmp_path / "shared.pdf")
    light = make_report_pdf(tmp_path / "light.pdf", page_count=1)
    async with connect(server.ws) as ws:
        heavy_id = (await upload(server.http, heavy, "Total?"))["data"]["job_id"]
        with anyio.fail_after(30):  # until it is being read (for seconds, then it is cut short)
            while True:
                event = json.loads(await ws.recv())
                if event.get("job_id") == heavy_id and event.get("stage") == "Reading the document":
                    break
        await anyio.sleep(0.5)
        started = time.monotonic()
        light_id = (await upload(server.http, light, "What was revenue?"))["data"]["job_id"]
        upload_seconds = time.monotonic() - started
        events = await follow(ws, {heavy_id, light_id}, timeout=60)
    assert upload_seconds < 1.0, f"the upload took {upload_seconds:.2f} s"
    assert of_job(events, heavy_id)[-1]["type"] == "job_failed"
    check_stream(of_job(events, light_id))
