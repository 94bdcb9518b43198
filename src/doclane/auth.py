"""Who is asking: API keys, the user each names, and how a request or a socket shows one.

Keys come from ``DOCLANE_API_KEYS`` (``user:key,user:key``) and ``DOCLANE_API_KEYS_FILE`` (one
``user:key`` a line). A key written ``sha256:<hex>`` is the SHA-256 of the key, so the file
need not hold the key itself. Every key is kept as its SHA-256 digest, and a token is hashed
and looked up by its digest: the time taken tells nothing of how much of a key matched (a
token's digest shares nothing foreseeable with a key's), nor whose it was, and does not grow
with the number of keys. Keys are never logged, and a ``?token=`` in a WebSocket URL is masked
on every log line (doclane.logs).

No key configured: auth is off, and every client is the one implicit user, who sees every job
(doclane as it was before keys). With keys, a user sees only the jobs it created.

A REST route asks for ``UserDep``: ``Authorization: Bearer <key>``, or a 401. A socket shows
its key on the handshake (the header, or ``?token=``) or in its first message,
``{"type": "auth", "token": "<key>"}``, within :data:`FIRST_MESSAGE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, cast

import anyio
from fastapi import Depends
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from doclane.errors import DoclaneError, Unauthorized
from doclane.jobs import JobStore
from doclane.settings import Settings

FIRST_MESSAGE_SECONDS = 5.0
SHA256_PREFIX = "sha256:"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class User:
    name: str  # the owner of the jobs it creates: "" when auth is off
    scoped: bool  # False when auth is off: the one implicit user sees every job

    @property
    def scope(self) -> str | None:
        """The owner the job store limits this user's reads to; None for every job."""
        return self.name if self.scoped else None

    def may_see(self, owner: str | None) -> bool:
        return not self.scoped or owner == self.name


ANONYMOUS = User("", scoped=False)


class Keyring:
    """The configured keys, as SHA-256 digests, each naming its user."""

    def __init__(self, keys: Iterable[tuple[str, str]] = ()) -> None:
        self._users: dict[bytes, str] = {}
        for user, key in keys:
            digest = _digest_of(user, key)
            if digest in self._users:
                raise DoclaneError(f"API key of user {user!r} is given twice (keys must differ)")
            self._users[digest] = user

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        lines: list[str] = []
        if settings.api_keys is not None:
            lines += settings.api_keys.get_secret_value().split(",")
        if settings.api_keys_file is not None:
            try:
                lines += settings.api_keys_file.read_text().splitlines()
            except OSError as exc:
                raise DoclaneError(f"Cannot read DOCLANE_API_KEYS_FILE: {exc}") from exc
        pairs = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, colon, key = line.partition(":")
            if not colon or not user.strip() or not key.strip():
                raise DoclaneError(  # never quote the line: it may hold a key
                    "Each API key must be written user:key (or user:sha256:<hex>)"
                )
            pairs.append((user.strip(), key.strip()))
        return cls(pairs)

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def user_for(self, token: str) -> str | None:
        """The user whose key this is, or None."""
        return self._users.get(hashlib.sha256(token.encode()).digest())


def _digest_of(user: str, key: str) -> bytes:
    if key.lower().startswith(SHA256_PREFIX):
        hexdigest = key[len(SHA256_PREFIX) :]
        try:
            digest = bytes.fromhex(hexdigest)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise DoclaneError(f"API key of user {user!r}: sha256: needs 64 hex digits")
        return digest
    return hashlib.sha256(key.encode()).digest()


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Owners:
    """Whose each job is, looked up once per job in this process (an owner never changes), so
    that a socket can drop other users' events without a query per event."""

    SIZE = 4096

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._known: OrderedDict[str, str] = OrderedDict()
        self._looking: dict[str, anyio.Event] = {}

    async def of(self, job_id: str) -> str | None:
        """The job's owner; None if there is no such job (any more)."""
        if (owner := self._known.get(job_id)) is not None:
            self._known.move_to_end(job_id)
            return owner
        if (looking := self._looking.get(job_id)) is not None:  # another socket asked first
            await looking.wait()
            return self._known.get(job_id)
        self._looking[job_id] = done = anyio.Event()
        try:
            job = await self._store.get(job_id)
            if job is not None:
                self._known[job_id] = job.owner
                if len(self._known) > self.SIZE:
                    self._known.popitem(last=False)
        finally:
            del self._looking[job_id]
            done.set()
        return job.owner if job is not None else None


class Access:
    """The keys and the job owners of this process, for the routes and the socket."""

    def __init__(self, keyring: Keyring, store: JobStore) -> None:
        self.keyring = keyring
        self.owners = Owners(store)

    @property
    def enabled(self) -> bool:
        return self.keyring.enabled

    def user(self, token: str | None) -> User:
        """The user a token names; raises Unauthorized (auth on) when it names none."""
        if not self.enabled:
            return ANONYMOUS
        if token is None:
            raise Unauthorized("Missing API key: send Authorization: Bearer <key>")
        name = self.keyring.user_for(token)
        if name is None:
            raise Unauthorized("Invalid API key")
        return User(name, scoped=True)

    def handshake_user(self, websocket: WebSocket) -> User | None:
        """The user a handshake shows (header, else ``?token=``); None when it shows no key
        and auth is on, so the first message must. Raises Unauthorized for a wrong key."""
        token = bearer_token(websocket.headers.get("authorization"))
        if token is None:
            token = websocket.query_params.get("token")
        if token is None and self.enabled:
            return None
        return self.user(token)

    async def first_message_user(self, websocket: WebSocket) -> User:
        """The user of ``{"type": "auth", "token": …}``, the socket's first message; raises
        Unauthorized for anything else, or nothing within FIRST_MESSAGE_SECONDS."""
        with anyio.move_on_after(FIRST_MESSAGE_SECONDS):
            message = await websocket.receive()
            try:
                parsed: Any = json.loads(message.get("text") or "")
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and parsed.get("type") == "auth":
                token = parsed.get("token")
                return self.user(token if isinstance(token, str) else None)
        raise Unauthorized('Authenticate first: send {"type": "auth", "token": "<key>"}')


# The dependencies are ``async def``: FastAPI runs a plain ``def`` one in a worker thread,
# a hand-over per request for what takes microseconds.


def _access(connection: HTTPConnection) -> Access:
    return cast(Access, connection.app.state.access)


async def get_access(connection: HTTPConnection) -> Access:
    return _access(connection)


AccessDep = Annotated[Access, Depends(get_access)]


async def current_user(connection: HTTPConnection) -> User:
    return _access(connection).user(bearer_token(connection.headers.get("authorization")))


UserDep = Annotated[User, Depends(current_user)]


# --- start-up ---------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_open(settings: Settings, host: str) -> None:
    """A clear warning when a server others can reach runs without keys."""
    if not is_loopback(host) and not Keyring.from_settings(settings).enabled:
        log.warning(
            "AUTH IS OFF while listening on %s: anyone who can reach this address can read, "
            "cancel and delete every job. Set DOCLANE_API_KEYS or DOCLANE_API_KEYS_FILE "
            "(see docs/security.md), or listen on 127.0.0.1.",
            host,
        )
