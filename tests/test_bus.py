"""The event bus contract, written once and run on every backend against real servers.

Two bus instances on one backend stand for two processes (an API replica and a worker), each
with its relay running: what either publishes reaches the subscribers of both, each job's
events in publish order, each once. Then each distributed backend's own concerns: the
PostgreSQL reference path for events over NOTIFY's limit, outages, and the Redis stream's caps.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from doclane import messages
from doclane.errors import DoclaneError
from doclane.events import Event, EventBus, MemoryEventBus, SubscriberOverflow, open_bus
from doclane.jobs import Change, DocumentKind, JobStore, NewJob, open_store
from doclane.journal import Journal
from doclane.settings import Settings
from tests.env import in_ci, redis_url
from tests.postgres import database_or_skip

pytestmark = pytest.mark.anyio

WAIT = 5.0  # seconds any one expected delivery may take


@dataclass
class Backend:
    name: str
    store: JobStore  # holds the job log the PostgreSQL bus reads large events back from
    make: Callable[..., EventBus]  # make(process, **options): a bus as that process has it
    url: str = ""  # the server's, for the backend's own tests


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def redis_or_skip() -> Any:
    """A Redis client for the test server: no server skips, but fails under CI=true."""
    import redis

    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis server missing at {redis_url()}: {exc}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: the Redis tests must run)", pytrace=False)
        pytest.skip(message)
    return client


@pytest.fixture
def redis_client() -> Iterator[Any]:
    client = redis_or_skip()
    yield client
    client.close()


@pytest.fixture
def stream(redis_client: Any) -> Iterator[str]:
    """A stream of this test's own, deleted after it."""
    name = f"doclane:test:{uuid.uuid4().hex[:12]}"
    yield name
    redis_client.delete(name)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[JobStore]:
    store = open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with database_or_skip() as url:
        yield url


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[JobStore]:
    store = open_store(pg_url)
    await store.open()
    yield store
    await store.close()


def redis_backend(store: JobStore, stream: str) -> Backend:
    from doclane.events.redis import RedisEventBus

    def make(process: str, **options: Any) -> EventBus:
        # The client name lets a test find this process's connections (CLIENT LIST).
        url = with_query(redis_url(), f"client_name={stream.replace(':', '-')}-{process}")
        return RedisEventBus(url, stream, **options)

    return Backend("redis", store, make, redis_url())


def postgres_backend(store: JobStore, url: str) -> Backend:
    from doclane.events.postgres import PostgresEventBus

    def make(process: str) -> EventBus:
        return PostgresEventBus(with_query(url, f"application_name={process}"), store)

    return Backend("postgresql", store, make, url)


@pytest.fixture(params=["memory", "redis", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        shared = MemoryEventBus()  # one process: both "processes" are the same bus
        return Backend("memory", request.getfixturevalue("sqlite_store"), lambda _: shared)
    if request.param == "redis":
        stream = request.getfixturevalue("stream")
        return redis_backend(request.getfixturevalue("sqlite_store"), stream)
    return postgres_backend(request.getfixturevalue("pg_store"), request.getfixturevalue("pg_url"))


@asynccontextmanager
async def running(*buses: EventBus) -> AsyncIterator[None]:
    """Open the buses and run their relays, as each process does; close them after."""
    async with AsyncExitStack() as stack:
        for bus in buses:
            await bus.open()
            stack.push_async_callback(bus.close)
        async with anyio.create_task_group() as tg:
            for bus in buses:
                tg.start_soon(bus.relay)
            yield
            tg.cancel_scope.cancel()


def update(job_id: str, seq: int) -> Event:
    return {"type": "job_update", "job_id": job_id, "seq": seq, "progress": seq}


async def take(events: AsyncIterator[Event], count: int) -> list[Event]:
    with anyio.fail_after(WAIT):
        return [await anext(events) for _ in range(count)]


async def nothing_more(bus: EventBus, *subscribers: AsyncIterator[Event]) -> None:
    """No event is still on its way to the subscribers: the next is a marker published now."""
    marker = update(f"marker-{uuid.uuid4()}", 1)
    await bus.publish(marker)
    for events in subscribers:
        assert await take(events, 1) == [marker]


async def test_every_subscriber_everywhere_gets_every_event_in_order_once(
    backend: Backend,
) -> None:
    api, worker = backend.make("api"), backend.make("worker")
    async with (
        running(api, worker),
        api.subscribe(100) as first,
        api.subscribe(100) as second,
        worker.subscribe(100) as third,
    ):

        async def publish(bus: EventBus, job_id: str) -> None:
            for seq in range(1, 21):
                await bus.publish(update(job_id, seq))

        async with anyio.create_task_group() as tg:  # two jobs at once, one per process
            tg.start_soon(publish, worker, "a")
            tg.start_soon(publish, api, "b")
        for events in (first, second, third):
            got = await take(events, 40)
            for job_id in ("a", "b"):
                assert [e["seq"] for e in got if e["job_id"] == job_id] == list(range(1, 21))
        await nothing_more(worker, first, second, third)


async def test_a_subscriber_gets_only_what_is_published_after_it_subscribed(
    backend: Backend,
) -> None:
    api, worker = backend.make("api"), backend.make("worker")
    async with running(api, worker), api.subscribe(100) as witness:
        await worker.publish(update("a", 1))
        assert await take(witness, 1) == [update("a", 1)]  # the api's relay is past it
        async with api.subscribe(100) as late:
            await worker.publish(update("a", 2))
            assert await take(late, 1) == [update("a", 2)]
            assert await take(witness, 1) == [update("a", 2)]


async def test_a_subscriber_that_cannot_keep_up_overflows(backend: Backend) -> None:
    api, worker = backend.make("api"), backend.make("worker")
    async with running(api, worker), api.subscribe(3) as slow, api.subscribe(100) as fast:
        for seq in range(1, 11):
            await worker.publish(update("a", seq))
        assert [e["seq"] for e in await take(fast, 10)] == list(range(1, 11))
        got: list[Event] = []
        with pytest.raises(SubscriberOverflow), anyio.fail_after(WAIT):
            async for event in slow:
                got.append(event)
        assert got == [update("a", seq) for seq in (1, 2, 3)]  # what it had, then the news
        await nothing_more(worker, fast)  # the others are served on


async def test_a_long_answer_arrives_whole(backend: Backend) -> None:
    """Chunks whose ``partial`` outgrows NOTIFY's 8,000 bytes (PostgreSQL sends a reference and
    reads the event back from the log) arrive with every byte of it."""
    store = backend.store
    await store.create(NewJob("long", "a.pdf", "/x", DocumentKind.PDF, "q", 0, time.time()))
    job = await store.claim("w", 60)
    assert job is not None
    api, worker = backend.make("api"), backend.make("worker")
    journal = Journal(store, worker)
    chunks = ["x" * 3000, "é" * 1000, "🙂" * 1000]  # partial: 3, 9 and 21 KB of JSON
    async with running(api, worker), api.subscribe(100) as events:
        partial = ""
        for chunk in chunks:
            partial += chunk
            await journal.record(
                job.job_id, "w", Change(answer=partial), messages.ai_chunk("long", chunk, partial)
            )
        got = await take(events, 3)
    assert [e["partial"] for e in got] == ["x" * 3000, "x" * 3000 + "é" * 1000, partial]
    assert [e["seq"] for e in got] == [1, 2, 3]
    assert got == await store.events_after("long", 0)


# --- outages -------------------------------------------------------------------------------


def outage_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("event relay")]


async def test_the_redis_relay_reads_on_from_where_its_connection_was_killed(
    redis_client: Any, stream: str, sqlite_store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    backend = redis_backend(sqlite_store, stream)
    api, worker = backend.make("api"), backend.make("worker")
    async with running(api, worker), api.subscribe(100) as events:
        await worker.publish(update("a", 1))
        assert await take(events, 1) == [update("a", 1)]
        caplog.set_level(logging.WARNING, "doclane.events")
        killed = kill_redis_clients(redis_client, f"{stream.replace(':', '-')}-api")
        assert killed
        for seq in range(2, 12):  # while the api's relay is away
            await worker.publish(update("a", seq))
        assert [e["seq"] for e in await take(events, 10)] == list(range(2, 12))
        await nothing_more(worker, events)
    assert len(outage_log(caplog)) == 2  # lost, then back: once per outage


def kill_redis_clients(client: Any, name: str) -> int:
    """CLIENT KILL every connection by that client name; how many there were."""
    ids = [c["id"] for c in client.client_list() if c["name"] == name]
    for client_id in ids:
        client.client_kill_filter(_id=client_id)
    return len(ids)


async def test_the_redis_relay_overflows_its_subscribers_when_what_it_missed_was_trimmed(
    redis_client: Any, stream: str, sqlite_store: JobStore
) -> None:
    backend = redis_backend(sqlite_store, stream)
    api, worker = backend.make("api"), backend.make("worker", max_events=10)
    async with running(api, worker), api.subscribe(1000) as events:
        await worker.publish(update("a", 1))
        assert await take(events, 1) == [update("a", 1)]
        # The api's relay is cut off while more than the stream keeps goes through (one round
        # trip, before its first reconnect).
        with redis_client.pipeline(transaction=False) as pipe:
            for client in redis_client.client_list():
                if client["name"] == f"{stream.replace(':', '-')}-api":
                    pipe.client_kill_filter(_id=client["id"])
            for seq in range(2, 502):
                pipe.xadd(stream, {"event": f'{{"job_id": "a", "seq": {seq}}}'}, maxlen=10)
            pipe.execute()
        with pytest.raises(SubscriberOverflow), anyio.fail_after(WAIT):
            async for _ in events:
                pass
        async with api.subscribe(1000) as fresh:  # the relay reads on
            marker = update("b", 1)
            await worker.publish(marker)
            with anyio.fail_after(WAIT):
                while await anext(fresh) != marker:
                    pass  # entries still in the stream, read after the overflow


async def test_the_postgres_relay_listens_again_after_its_connection_is_terminated(
    pg_store: JobStore, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """NOTIFY keeps nothing for a listener that was away: its subscribers are overflowed (their
    clients resume from the job log), and those who subscribe again get what follows."""
    import psycopg

    backend = postgres_backend(pg_store, pg_url)
    api, worker = backend.make("api"), backend.make("worker")
    async with running(api, worker), api.subscribe(100) as before:
        await worker.publish(update("a", 1))
        assert await take(before, 1) == [update("a", 1)]
        caplog.set_level(logging.WARNING, "doclane.events")
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            cur = await admin.execute(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE application_name = 'api' AND query LIKE 'LISTEN%'"""
            )
            assert len(await cur.fetchall()) == 1
        with pytest.raises(SubscriberOverflow), anyio.fail_after(WAIT):
            async for _ in before:
                pass
        async with api.subscribe(100) as after:
            await worker.publish(update("a", 2))
            assert await take(after, 1) == [update("a", 2)]
            await nothing_more(worker, after)
    assert len(outage_log(caplog)) == 2  # lost, then back: once per outage


async def test_the_postgres_store_notifies_each_event_as_it_commits_it(
    pg_store: JobStore, pg_url: str
) -> None:
    """The journal's writes on the NOTIFY bus: each event is notified by the statement that logs
    it, so a listener hears it only once it is in the log (read here the instant the notice
    arrives, from another connection), a refused write (LeaseLost) is never heard, and the
    journal publishes nothing more: each event reaches a subscriber once."""
    import psycopg

    from doclane.errors import LeaseLost

    store = pg_store
    await store.create(NewJob("n", "a.pdf", "/x", DocumentKind.PDF, "q", 0, time.time()))
    await store.create(NewJob("c", "a.pdf", "/x", DocumentKind.PDF, "q", 0, time.time()))
    job = await store.claim("w", 60)
    assert job is not None and job.job_id == "n"
    bus = postgres_backend(store, pg_url).make("worker")
    assert bus.published_by_store()
    journal = Journal(store, bus)
    heard: list[tuple[Event, list[int]]] = []  # each notice, and the log's seqs when it came
    async with (
        running(bus),
        bus.subscribe(100) as events,
        await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as listener,
    ):
        await listener.execute("LISTEN doclane_events")

        async def listen() -> None:
            async for notice in listener.notifies():
                event = json.loads(notice.payload)
                logged = await store.events_after(event["job_id"], 0)
                heard.append((event, [e["seq"] for e in logged]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            chunk = messages.ai_chunk("n", "x" * 9000, "x" * 9000)  # over NOTIFY's limit
            await journal.record("n", "w", Change(answer="x" * 9000), chunk)
            await journal.record("n", "w", Change(progress=50), messages.job_update("n", 50, "s"))
            with pytest.raises(LeaseLost):  # not this worker's job: nothing written or heard
                await journal.record("n", "w2", Change(progress=60), update("n", 0))
            await journal.cancel("c")
            got = await take(events, 3)
            with anyio.fail_after(WAIT):
                while len(heard) < 3:
                    await anyio.sleep(0.01)
            await nothing_more(bus, events)
            with anyio.fail_after(WAIT):  # the marker is the last notice the listener hears
                while not heard[-1][0]["job_id"].startswith("marker-"):
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert heard.pop()[0]["job_id"].startswith("marker-")
    assert [(e["job_id"], e["seq"]) for e in got] == [("n", 1), ("n", 2), ("c", 1)]
    assert got[0]["partial"] == "x" * 9000  # read back from the log
    assert [(e["job_id"], e["seq"]) for e, _ in heard] == [("n", 1), ("n", 2), ("c", 1)]
    assert heard[0][0] == {"job_id": "n", "seq": 1}  # a reference: too large to notify
    assert heard[1][0] == {**messages.job_update("n", 50, "s"), "seq": 2}
    for event, logged in heard:
        assert event["seq"] in logged  # committed before it was heard
    assert await store.events_after("n", 0) == got[:2]


# --- the Redis stream keeps little, for little time -----------------------------------------


async def test_the_redis_stream_keeps_at_most_its_cap(
    redis_client: Any, stream: str, sqlite_store: JobStore
) -> None:
    bus = redis_backend(sqlite_store, stream).make("worker", max_events=50)
    node = int(redis_client.config_get("stream-node-max-entries")["stream-node-max-entries"])
    async with running(bus):
        for seq in range(1, 1001):
            await bus.publish(update("a", seq))
    # Trimmed approximately: whole nodes of the stream at a time.
    assert 50 <= redis_client.xlen(stream) <= 50 + node


async def test_the_redis_stream_forgets_old_events(
    redis_client: Any, stream: str, sqlite_store: JobStore
) -> None:
    bus = redis_backend(sqlite_store, stream).make("worker", ttl_seconds=0.2)
    node = int(redis_client.config_get("stream-node-max-entries")["stream-node-max-entries"])
    async with running(bus):
        for seq in range(1, 501):
            await bus.publish(update("a", seq))
        await anyio.sleep(0.3)
        await bus.publish(update("a", 501))
    assert redis_client.xlen(stream) <= node + 1


# --- choosing the backend -------------------------------------------------------------------


def test_the_backend_follows_the_settings(tmp_path: Path) -> None:
    from doclane.events.postgres import PostgresEventBus
    from doclane.events.redis import RedisEventBus

    store = open_store(f"sqlite:///{tmp_path / 'jobs.db'}")  # not opened: no bus reads it

    def bus(**settings: Any) -> EventBus:
        return open_bus(Settings(data_dir=tmp_path, **settings), store)

    assert isinstance(bus(), MemoryEventBus)
    assert isinstance(bus(database_url="postgresql://pg/doclane"), PostgresEventBus)
    assert isinstance(bus(redis_url="redis://r:6379/0"), RedisEventBus)
    assert isinstance(
        bus(redis_url="redis://r:6379/0", database_url="postgresql://pg/doclane"), RedisEventBus
    )


def test_a_missing_redis_driver_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As when doclane was installed without the extra: redis cannot be imported."""
    for module in [m for m in sys.modules if m.split(".")[0] == "redis"] + ["redis"]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "doclane.events.redis", raising=False)
    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")
    with pytest.raises(DoclaneError, match=r"pip install 'doclane\[redis\]'"):
        open_bus(settings, open_store(f"sqlite:///{tmp_path / 'jobs.db'}"))
