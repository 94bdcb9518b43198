"""WebSocket fan-out: 1,000 clients follow one streamed answer, split across two API replicas
(``doclane serve --no-worker`` x 2 and ``doclane worker`` on PostgreSQL + Redis, real
processes), against the same clients on one embedded ``doclane serve``, in turns.

For each event of the answer the benchmark notes when each client got it. *Spread* is a
client's arrival less the earliest arrival of the same event at any client: what one client
waits beyond the first to be served (measurable in both modes). *Delivery* (distributed mode
only) is a client's arrival less the moment the worker published the event: the time of its
``XADD``, which Redis writes into the stream entry's id (in ms, by the same host's clock).
*Lost* counts events of the job's log a client never got, over all clients.

    .venv/bin/python -m benchmarks.fanout [--clients 1000] [--rounds 2] [--no-report]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import redis
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from tests.documents import make_report_pdf
from tests.env import redis_url
from tests.postgres import fresh_database
from tests.server import ServerProcess
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.report import write_section
from benchmarks.upload_rate import app_server

PROMPT = "Write a long summary."
ANSWER_TOKENS = 40
PIECE_SECONDS = 0.1  # the scripted model's pace: 10 tokens a second, as the local model here
CONNECTING = 50  # clients connecting at once
FOLLOW_TIMEOUT = 180.0
FINAL = ('"job_completed"', '"job_failed"')
# Events, spread p99 and delivery p99 (ms) before the fan-out work (docs/benchmarks.md, commit
# 6a127db's src/): a job_update after every chunk, JSON made per socket, anyio streams.
BEFORE = {"embedded": (86, 97.0, None), "distributed": (86, 1553.9, 1828.0)}


def scripted_model() -> FastAPI:
    """An OpenAI-compatible model that streams the same answer at a steady pace and costs no
    CPU, so both modes serve the same stream (``uvicorn --factory``)."""
    app = FastAPI()

    @app.get("/api/health")
    @app.get("/v1/models")
    async def health() -> dict[str, Any]:
        return {"data": [{"id": "scripted"}]}

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> StreamingResponse:
        max_tokens = (await request.json())["max_tokens"]

        async def pieces() -> AsyncIterator[str]:
            for index in range(max_tokens):
                await anyio.sleep(PIECE_SECONDS)
                word = WORDS[index % len(WORDS)]
                yield f"data: {json.dumps({'choices': [{'delta': {'content': word}}]})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(pieces(), media_type="text/event-stream")

    return app


WORDS = " The report covers the company's year: its teams, its sites and its plans.".split(" ")
WORDS = [f" {word}" for word in WORDS if word]


def p(values: list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


@dataclass
class Mode:
    name: str
    replicas: list[ServerProcess]  # where the clients connect, in turns; the first gets the upload
    stream: str | None = None  # the Redis stream its events go through
    spread: list[float] = field(default_factory=list)  # seconds
    delivery: list[float] = field(default_factory=list)
    lost: int = 0
    closed: int = 0  # clients the server closed before the job's end
    events: int = 0  # in the job's log
    clients: int = 0


@contextmanager
def servers(folder: Path, env: dict[str, str]) -> Iterator[tuple[Mode, Mode]]:
    """Both modes' processes, all stopped at the end."""
    with ExitStack() as stack:
        started: list[ServerProcess] = []
        stack.callback(lambda: [process.stop() for process in started])

        def start(name: str, more: dict[str, str], *command: str) -> ServerProcess:
            process = ServerProcess(folder / name, {**env, **more}, command=command)
            started.append(process)
            return process.start()

        embedded = Mode("embedded: 1 x serve (SQLite, in-process bus)", [start("e", {}, "serve")])
        database = stack.enter_context(fresh_database("doclane_bench"))
        stream = f"doclane:bench:{uuid.uuid4().hex}"
        stack.callback(lambda: redis.Redis.from_url(redis_url()).delete(stream))
        shared = {
            "DOCLANE_DATABASE_URL": database,
            "DOCLANE_REDIS_URL": redis_url(),
            "DOCLANE_REDIS_STREAM": stream,
            "DOCLANE_STORAGE_URL": (folder / "shared").as_uri(),  # one volume for all
        }
        apis = [start(f"api{i}", shared, "serve", "--no-worker") for i in range(2)]
        start("worker", shared, "worker")
        distributed = Mode(
            "distributed: 2 x serve --no-worker + 1 worker (PostgreSQL, Redis)", apis, stream
        )
        yield embedded, distributed


async def connect_all(urls: list[str]) -> list[ClientConnection]:
    clients: list[ClientConnection | None] = [None] * len(urls)
    limit = anyio.Semaphore(CONNECTING)

    async def one(index: int) -> None:
        async with limit:
            clients[index] = await connect(urls[index], open_timeout=60, max_size=2**22)

    async with anyio.create_task_group() as tg:
        for index in range(len(urls)):
            tg.start_soon(one, index)
    return [client for client in clients if client is not None]


async def follow(ws: ClientConnection, job: dict[str, str], got: list[tuple[float, str]]) -> None:
    """Note each message's arrival until the job's final event (or the server closes)."""
    while True:
        raw = await ws.recv()
        got.append((time.time(), str(raw)))
        if any(final in raw for final in FINAL) and job["id"] in raw:
            return


async def logged_seqs(ws_url: str, job_id: str) -> list[int]:
    """The job's whole log, replayed over a WebSocket of its own."""
    async with connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "job_id": job_id, "after_seq": 0}))
        seqs = []
        with anyio.fail_after(30):
            while True:
                event = json.loads(await ws.recv())
                if event.get("job_id") == job_id:
                    seqs.append(event["seq"])
                    if event["type"] in ("job_completed", "job_failed"):
                        return seqs


def published_at(stream: str, job_id: str) -> dict[int, float]:
    """seq -> the time of its XADD (epoch seconds, ms resolution), from the stream's entry ids."""
    with redis.Redis.from_url(redis_url()) as client:
        entries = client.xrange(stream)
    times = {}
    for entry_id, fields in entries:
        event = json.loads(fields[b"event"])
        if event.get("job_id") == job_id:
            times[event["seq"]] = int(entry_id.split(b"-")[0]) / 1000
    return times


async def one_round(mode: Mode, clients: int, document: Path, record: bool = True) -> None:
    urls = [mode.replicas[i % len(mode.replicas)].ws for i in range(clients)]
    sockets = await connect_all(urls)
    assert len(sockets) == clients
    job: dict[str, str] = {}
    got: list[list[tuple[float, str]]] = [[] for _ in sockets]
    closed = 0
    try:
        async with httpx.AsyncClient(base_url=mode.replicas[0].http, timeout=60) as http:
            with document.open("rb") as file:
                response = await http.post(
                    "/api/upload", files={"file": (document.name, file)}, data={"prompt": PROMPT}
                )
        response.raise_for_status()
        job["id"] = response.json()["data"]["job_id"]

        async def one(index: int) -> None:
            nonlocal closed
            try:
                await follow(sockets[index], job, got[index])
            except ConnectionClosed:
                closed += 1

        with anyio.fail_after(FOLLOW_TIMEOUT):
            async with anyio.create_task_group() as tg:
                for index in range(len(sockets)):
                    tg.start_soon(one, index)
    finally:
        async with anyio.create_task_group() as tg:
            for ws in sockets:
                tg.start_soon(ws.close)
    if not record:
        return
    seqs = await logged_seqs(mode.replicas[-1].ws, job["id"])
    arrived: list[dict[int, float]] = []  # per client: seq -> arrival
    for messages in got:
        events = ((at, json.loads(raw)) for at, raw in messages)
        arrived.append({e["seq"]: at for at, e in events if e.get("job_id") == job["id"]})
    publish = published_at(mode.stream, job["id"]) if mode.stream else {}
    for seq in seqs:
        times = [client[seq] for client in arrived if seq in client]
        mode.lost += clients - len(times)
        first = min(times, default=0.0)
        mode.spread += [at - first for at in times]
        if seq in publish:
            mode.delivery += [at - publish[seq] for at in times]
    for replica in range(len(mode.replicas) if publish else 0):  # where the time goes
        mine = arrived[replica :: len(mode.replicas)]
        firsts = [min(c[seq] for c in mine if seq in c) - at for seq, at in publish.items()]
        print(
            f"  replica {replica}: XADD to its first socket p50 {ms(p(firsts, 50))} ms, "
            f"p99 {ms(p(firsts, 99))}"
        )
    mode.closed += closed
    mode.events = len(seqs)
    mode.clients = clients
    print(
        f"{mode.name}: {len(seqs)} events, spread p50 {p(mode.spread, 50) * 1000:.1f} ms, "
        f"p99 {p(mode.spread, 99) * 1000:.1f} ms, lost {mode.lost}, closed {mode.closed}"
        + (
            f", delivery p50 {p(mode.delivery, 50) * 1000:.1f} p99 "
            f"{p(mode.delivery, 99) * 1000:.1f} ms"
            if mode.delivery
            else ""
        )
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def measure(clients: int, rounds: int, folder: Path) -> tuple[Mode, Mode]:
    document = make_report_pdf(folder / "report.pdf")
    model = app_server("benchmarks.fanout:scripted_model", folder / "model.log", {})
    with model as (model_url, _):
        env = {
            "DOCLANE_MAX_ANSWER_TOKENS": str(ANSWER_TOKENS),
            "DOCLANE_LLM_PROVIDER": "openai",
            "DOCLANE_OPENAI_BASE_URL": f"{model_url}/v1",
        }
        return await in_turns(folder, env, document, clients, rounds)


async def in_turns(
    folder: Path, env: dict[str, str], document: Path, clients: int, rounds: int
) -> tuple[Mode, Mode]:
    with servers(folder, env) as (embedded, distributed):
        for mode in (embedded, distributed):  # warm: the model's first run, the readers
            await one_round(mode, 10, document, record=False)
        for turn in range(rounds):  # ABBA…
            order = (embedded, distributed) if turn % 2 == 0 else (distributed, embedded)
            for mode in order:
                await one_round(mode, clients, document)
    return embedded, distributed


def raise_file_limit(clients: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = clients * 2 + 256
    if soft < want:  # servers started from here inherit it
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per mode, in turns")
    parser.add_argument("--no-report", action="store_true", help="print, leave the docs alone")
    args = parser.parse_args()
    raise_file_limit(args.clients)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        embedded, distributed = anyio.run(
            measure, args.clients, args.rounds, Path(folder), backend_options={"use_uvloop": True}
        )
    end_load = os.getloadavg()[0]
    rows = []
    for mode in (embedded, distributed):
        delivery = (
            f"{ms(p(mode.delivery, 50))} | {ms(p(mode.delivery, 99))}" if mode.delivery else "- | -"
        )
        events, spread, delivered = BEFORE[mode.name.split(":")[0]]
        rows.append(
            f"| {mode.name} | {mode.clients:,} | {mode.events} | {ms(p(mode.spread, 50))} | "
            f"{ms(p(mode.spread, 99))} | {p(mode.spread, 99) / p(embedded.spread, 99):.2f} | "
            f"{delivery} | {mode.lost} | {mode.closed} | {events} | {spread:.1f} | "
            f"{'-' if delivered is None else f'{delivered:.1f}'} |"
        )
        print(rows[-1])
    if args.no_report:
        return
    write_section(
        "fanout",
        f"""### WebSocket fan-out across replicas

`benchmarks/fanout.py`, {datetime.date.today()}, {os.cpu_count()} cores (load average
{load:.1f} at the start, {end_load:.1f} at the end; every process below, PostgreSQL, Redis and
the {args.clients:,} clients share them). Real processes: one embedded `doclane serve`, and two
`doclane serve --no-worker` replicas with one `doclane worker` on PostgreSQL + Redis. The
clients (one process, asyncio with uvloop, {args.clients:,} WebSockets; in the distributed mode
half on each replica) connect, then one of them uploads a 3-page PDF asking "{PROMPT}"
(answers of at most {ANSWER_TOKENS} tokens, local model) and all follow the answer to its
`job_completed`. The modes take turns, {args.rounds} rounds each (figures pooled). For each of
the job's events the benchmark notes when each client got it. *Spread* is a client's arrival
less the earliest arrival of the same event at any client (the figure the issue measured on one
process: p99 167 ms); it covers the servers' sends to each socket and this process's reading of
them, and is the same measure in both modes. *Delivery* is a client's arrival less the moment
the worker published the event, read from Redis: a stream entry's id is the time of its `XADD`
in ms (same host, same clock); it adds the relay's hop to each replica. *Lost* counts events of
the job's log (replayed afterwards) that a client never got; *closed*, clients the server cut
off as too slow. The ratio is the p99 spread against the embedded server's in this run.
*Before* is this section as it stood before the fan-out work (commit 6a127db's `src/`: a
`job_update` after every chunk, each event's JSON made once per socket, anyio memory streams
between the bus and each socket). Goals: delivery p99 under 100 ms, nothing lost.

| mode | clients | events | spread p50 ms | spread p99 ms | p99 vs embedded | delivery \
p50 ms | delivery p99 ms | lost | closed | before: events | before: spread p99 ms | before: \
delivery p99 ms |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
""",
    )


if __name__ == "__main__":
    main()
