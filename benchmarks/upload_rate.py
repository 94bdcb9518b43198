"""Upload throughput: 32 concurrent uploads of a tiny CSV against ``doclane serve`` (SQLite, its
worker running) and ``doclane serve --no-worker`` on PostgreSQL, against a bare FastAPI handler
that only writes the file, under the same uvicorn and the same client, in turns: first httpx
(the issue's client, which sets the pace), then a raw HTTP/1.1 client (the servers set it).

Each upload is scheduled for tomorrow, so that no job runs meanwhile: the upload's path is the
same (the form, the file sniffed and stored, the job written, idle workers woken), and the
worker of ``doclane serve`` still wakes and looks for work after each one.

    .venv/bin/python -m benchmarks.upload_rate [--uploads 320] [--rounds 30] [--raw-rounds 10]
        [--no-report]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx
from fastapi import FastAPI, Form, UploadFile
from tests.postgres import fresh_database
from tests.server import START_TIMEOUT, ServerProcess, free_port

from benchmarks.report import write_section

CONCURRENCY = 32
CSV = b"region,revenue\nnorth,10\nsouth,20\n"
BARE_DIR = "BENCH_BARE_UPLOAD_DIR"
INFO = ("--log-level", "info")
# Rate against the bare handler's before the upload path lost its thread hand-overs (docs/
# benchmarks.md, commit 6a127db's src/): by the servers' names below.
BEFORE = {"bare": 1.00, "SQLite": 0.86, "PostgreSQL": 0.83}
# Each concurrent uploader takes turns among users of its own (auth on, one API key each), under
# the default per-user limits: every upload counts its user's jobs, as in service. (With one
# user and the limits set past what the benchmark queues, each upload would count the ~1,000
# jobs queued before it: a cost no user reaches, the count stopping at the limit.) Eight users
# an uploader keep each under the default 60 uploads a minute (a round of 320 uploads a second,
# the three servers in turns) and 100 queued jobs per server over thirty rounds.
USERS_PER_UPLOADER = 8
COLUMNS = (
    "| server | uploads | uploads/s | p50 ms | p99 ms | rate vs bare "
    "| per round: median (range) | CPU ms an upload: client, server, PostgreSQL |"
)
USERS = [f"user{n}" for n in range(CONCURRENCY * USERS_PER_UPLOADER)]
AUTH = {"DOCLANE_API_KEYS": ",".join(f"{user}:key-{user}" for user in USERS)}


def bare_app() -> FastAPI:
    """The baseline: receive the form and write the file, nothing else (``uvicorn --factory``)."""
    folder = Path(os.environ[BARE_DIR])
    app = FastAPI()

    @app.post("/api/upload")
    async def upload(file: UploadFile, prompt: Annotated[str, Form()] = "") -> dict[str, Any]:
        job_id = str(uuid.uuid4())
        data = await file.read()
        await anyio.to_thread.run_sync((folder / job_id).write_bytes, data)
        return {"success": True, "data": {"job_id": job_id, "status": "pending", "progress": 0}}

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"success": True}

    return app


@dataclass
class Target:
    name: str
    url: str
    pid: int
    seconds: float = 0.0
    uploads: int = 0
    latencies: list[float] = field(default_factory=list)
    round_rates: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds, by who spent them

    @property
    def rate(self) -> float:
        return self.uploads / self.seconds

    def cpu_ms(self, who: str) -> str:
        return f"{self.cpu[who] / self.uploads * 1000:.2f}"


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of these processes (all their threads), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a database backend that ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine: the server shares the cores with the rest."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


def cpu_now(target: Target) -> dict[str, float]:
    """CPU seconds so far: this client's, the target server's, PostgreSQL's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "client": usage.ru_utime + usage.ru_stime,
        "server": cpu_seconds([target.pid]),
        "PostgreSQL": cpu_seconds(postgres_pids()),
    }


@contextmanager
def app_server(factory: str, log: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """``uvicorn --factory`` with doclane's options (access log at info; uvloop and httptools
    when installed) on a free port; its base URL and process id, once it answers. Stopped at
    the end."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port), *INFO],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                httpx.get(f"{url}/api/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{factory} did not start: see {log}") from None
                time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def targets(folder: Path) -> Iterator[list[Target]]:
    with ExitStack() as stack:
        (folder / "bare").mkdir()
        bare, bare_pid = stack.enter_context(
            app_server(
                "benchmarks.upload_rate:bare_app",
                folder / "bare.log",
                {BARE_DIR: str(folder / "bare")},
            )
        )
        started: list[ServerProcess] = []
        stack.callback(lambda: [process.stop() for process in started])
        embedded = ServerProcess(folder / "sqlite", AUTH)
        started.append(embedded)
        embedded.start()
        database = stack.enter_context(fresh_database("doclane_bench"))
        replica = ServerProcess(
            folder / "postgresql",
            {"DOCLANE_DATABASE_URL": database, **AUTH},
            command=("serve", "--no-worker"),
        )
        started.append(replica)
        replica.start()
        yield [
            Target("bare FastAPI handler (writes the file)", bare, bare_pid),
            Target("doclane serve (SQLite, worker running)", embedded.http, embedded.pid),
            Target("doclane serve --no-worker (PostgreSQL)", replica.http, replica.pid),
        ]


def upload_form() -> dict[str, str]:
    tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    return {"prompt": "What is the total revenue?", "scheduled_at": tomorrow.isoformat()}


async def httpx_uploads(url: str, count: int, latencies: list[float]) -> None:
    """``count`` uploads, ``CONCURRENCY`` at a time, over kept-alive connections (all of them:
    httpx keeps 20 by default, and would open a new connection for every request beyond)."""
    form = upload_form()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def uploader(share: int, users: list[str]) -> None:
            for n in range(share):
                # The bare handler ignores the key.
                auth = {"Authorization": f"Bearer key-{users[n % len(users)]}"}
                started = time.perf_counter()
                response = await client.post(
                    "/api/upload", files={"file": ("sales.csv", CSV)}, data=form, headers=auth
                )
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

        await _uploaders(uploader, count)


def raw_request(host: str, user: str, form: dict[str, str]) -> bytes:
    """The same upload as httpx sends (the form's fields, then the file), encoded once."""
    boundary = uuid.uuid4().hex
    fields = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in form.items()
    ]
    file_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="sales.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    body = "".join(fields).encode() + file_head.encode() + CSV + f"\r\n--{boundary}--\r\n".encode()
    head = (
        f"POST /api/upload HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer key-{user}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def raw_uploads(url: str, count: int, latencies: list[float]) -> None:
    """The same uploads from a client that costs a few percent of what httpx does (requests
    encoded once, each response read by its length): the servers set the pace, not the client."""
    host = urlsplit(url).netloc
    hostname, port = host.rsplit(":", 1)
    form = upload_form()

    async def uploader(share: int, users: list[str]) -> None:
        requests = [raw_request(host, user, form) for user in users]
        reader, writer = await asyncio.open_connection(hostname, int(port))
        try:
            for n in range(share):
                started = time.perf_counter()
                writer.write(requests[n % len(requests)])
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
                body = await reader.readexactly(int(headers["content-length"]))
                latencies.append(time.perf_counter() - started)
                assert head[0].split()[1] == "200", body
        finally:
            writer.close()

    await _uploaders(uploader, count)


async def _uploaders(uploader: Callable[[int, list[str]], Awaitable[None]], count: int) -> None:
    """``CONCURRENCY`` uploaders sharing ``count`` uploads, each with its users (above)."""
    async with anyio.create_task_group() as tg:
        for task in range(CONCURRENCY):
            share = count // CONCURRENCY + (task < count % CONCURRENCY)
            tg.start_soon(uploader, share, USERS[task::CONCURRENCY])


CLIENTS = {"httpx": httpx_uploads, "raw": raw_uploads}


async def burst(target: Target, client: str, count: int, record: bool = True) -> None:
    latencies: list[float] = []
    cpu_before = cpu_now(target)
    started = time.perf_counter()
    await CLIENTS[client](target.url, count, latencies)
    seconds = time.perf_counter() - started
    cpu_after = cpu_now(target)
    if record:
        for who, spent in cpu_after.items():
            target.cpu[who] = target.cpu.get(who, 0.0) + spent - cpu_before[who]
        target.seconds += seconds
        target.uploads += count
        target.latencies += latencies
        target.round_rates.append(count / seconds)


async def measure(
    folder: Path, uploads: int, rounds: int, raw_rounds: int
) -> dict[str, list[Target]]:
    """Each client's rounds, the servers taking each round in turns: httpx first, then raw."""
    results: dict[str, list[Target]] = {}
    with targets(folder) as servers:
        for client, count in (("httpx", rounds), ("raw", raw_rounds)):
            results[client] = [Target(server.name, server.url, server.pid) for server in servers]
            for target in results[client]:
                await burst(target, client, CONCURRENCY * 2, record=False)  # warm up
            for turn in range(count):
                first = turn % len(servers)
                for target in results[client][first:] + results[client][:first]:
                    await burst(target, client, uploads)
                    print(f"{client}, {target.name}: {target.rate:.0f}/s so far")
    return results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def row(target: Target, bare: Target, before: bool) -> str:
    p99 = statistics.quantiles(target.latencies, n=100, method="inclusive")[98]
    # Round by round: the targets took each round in turns, so a slow spell hits all three.
    ratios = [mine / base for mine, base in zip(target.round_rates, bare.round_rates, strict=True)]
    cells = [
        target.name,
        f"{target.uploads:,}",
        f"{target.rate:,.0f}",
        ms(statistics.median(target.latencies)),
        ms(p99),
        f"{target.rate / bare.rate:.2f}",
        f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
        ", ".join(target.cpu_ms(who) for who in target.cpu),
    ]
    if before:
        cells.append(f"{next(ratio for key, ratio in BEFORE.items() if key in target.name):.2f}")
    return f"| {' | '.join(cells)} |"


def table(targets: list[Target], before: bool) -> str:
    """The rows, against the first target's (the bare handler); with the *before* column."""
    header = COLUMNS + (" before: rate vs bare |" if before else "")
    rule = "|---" * header.count(" |") + "|"
    return "\n".join([header, rule, *(row(target, targets[0], before) for target in targets)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=320, help="per target and round")
    parser.add_argument("--rounds", type=int, default=30, help="with httpx")
    parser.add_argument("--raw-rounds", type=int, default=10, help="with the raw client")
    parser.add_argument("--no-report", action="store_true", help="print, leave the docs alone")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        results = anyio.run(measure, Path(folder), args.uploads, args.rounds, args.raw_rounds)
    end_load = os.getloadavg()[0]
    tables = {client: table(targets, client == "httpx") for client, targets in results.items()}
    rounds = args.rounds + args.raw_rounds
    queued = args.uploads * rounds + CONCURRENCY * 4  # per server, the warm-ups included
    per_user = -(-queued // len(USERS))
    print("\n\n".join(tables.values()))
    if args.no_report:
        return
    write_section(
        "upload-rate",
        f"""### Upload throughput

`benchmarks/upload_rate.py`, {datetime.date.today()}, {os.cpu_count()} cores (load average
{load:.1f} at the start, {end_load:.1f} at the end; the client, the servers and PostgreSQL
share them). {CONCURRENCY} concurrent uploads of a {len(CSV)}-byte CSV with a prompt over
kept-alive connections, {args.uploads} a round, the servers taking each round in turns; figures
pooled, the ratio also given round by round (median, and range), as a run's rounds spread
more than the differences sought. The baseline is a bare FastAPI handler under the same uvicorn
settings that receives the form and writes the file, nothing else. Each doclane upload is
scheduled for tomorrow, so that no job runs during the measure; its path is the same (the form
received, the file sniffed, stored under its key, the job written, idle workers told), and
`doclane serve`'s idle worker would wake for it only if it were due before the worker looks
again anyway. Auth is on and each of the {CONCURRENCY} uploaders takes turns among
{USERS_PER_UPLOADER} users of its own, under the default per-user limits (each upload counts its
user's jobs; each user queues {per_user:,} per server here, fewer than the limits). *CPU* is
what the client, the server's process and every PostgreSQL process spent an upload, measured
around each burst (getrusage, /proc). *Before* is the rate against the bare handler as this
section stood before the upload path lost its thread hand-overs (commit 6a127db's `src/`, no
per-user limits or auth yet). Goal: at least 0.9 x the bare handler's rate, on both databases,
with the issue's client (httpx).

With httpx ({args.rounds} rounds), the client is the bottleneck (its CPU an upload times the
rate is about one core): the ratio is how much each server slows a client sharing its cores.

{tables["httpx"]}

With a raw HTTP/1.1 client ({args.raw_rounds} rounds; each request encoded once, each response
read by its length), the servers and PostgreSQL set the pace: what each server can take.

{tables["raw"]}
""",
    )


if __name__ == "__main__":
    main()
