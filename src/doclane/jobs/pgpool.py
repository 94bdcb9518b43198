"""A small pool of async psycopg connections (psycopg_pool is a separate package we do without).

Connections open on demand, at most ``size`` at once, and are reused while healthy. One that
comes back broken or mid-transaction (its task was cancelled during a query, the server went
away) is closed, not reused: the server rolls back whatever it held. A connection the server
dropped while it sat idle fails the one call that next uses it. A server that cannot be reached
is a StoreUnavailable (a 503 at the API), not a driver error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from doclane.errors import StoreUnavailable

Connection = AsyncConnection[DictRow]


class Pool:
    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._slots = anyio.Semaphore(size)
        self._idle: list[Connection] = []
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection in autocommit mode: each statement is its own transaction unless the
        caller opens ``conn.transaction()``."""
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            except psycopg.OperationalError as exc:  # the server is down or went away
                raise StoreUnavailable from exc
            finally:
                if conn.info.transaction_status is TransactionStatus.IDLE and not self._closed:
                    self._idle.append(conn)
                else:
                    with anyio.CancelScope(shield=True):
                        await conn.close()

    async def _connect(self) -> Connection:
        try:
            return await AsyncConnection.connect(
                self._conninfo, autocommit=True, row_factory=dict_row
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable from exc

    async def close(self) -> None:
        """Close the idle connections; those in use are closed as they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
