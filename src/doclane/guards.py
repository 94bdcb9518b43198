"""What every request passes before a route sees it, keys or not: its ``Host``, its ``Origin``,
and the security headers on every response.

- **Host** (DNS rebinding): a page on ``evil.example`` whose name is made to resolve to
  127.0.0.1 reaches the server with ``Host: evil.example``. Only loopback names, the address
  the server was reached on, and ``DOCLANE_ALLOWED_HOSTS`` are answered; others get 400.
- **Origin** (cross-site requests): a browser names the page that makes a request. A
  WebSocket handshake, and any request but GET, HEAD and OPTIONS, from a page of another
  origin than the server's own and not in ``DOCLANE_CORS_ORIGINS`` is refused: the handshake
  is closed before it is accepted (the client sees 403), a request gets 403. A request
  without ``Origin`` (a script, curl) is let through: the API key is what stops those.
- **Headers**: ``Content-Security-Policy`` (the page may load only its own files and talk only
  to its own origin; nothing may frame it), ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer`` on every HTTP response.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from doclane.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
CLOSE_POLICY_VIOLATION = 1008

# The page: its own scripts, styles and images (and the attachment's preview, a blob: URL),
# requests to its own origin only (HTTP and WebSocket).
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
# FastAPI's interactive docs load their script and styles from a CDN.
DOCS_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src https://cdn.jsdelivr.net; img-src https://fastapi.tiangolo.com data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


def split_host(host: str) -> tuple[str, int | None]:
    """``name[:port]`` as (lower-case name, port); IPv6 names keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name, port = name + "]", rest.removeprefix(":")
    else:
        name, _, port = host.partition(":")
    return name, int(port) if port.isdigit() else None


class Guard:
    """ASGI middleware: the Host and Origin checks and the security headers (see above)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        hosts = {split_host(host)[0] for host in settings.allowed_hosts}
        self.any_host = "*" in hosts
        self.hosts = LOOPBACK_HOSTS | hosts
        self.suffixes = tuple(host[1:] for host in hosts if host.startswith("*."))
        self.origins = {origin.rstrip("/").lower() for origin in settings.cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        origin = headers.get("origin")
        if not self._host_allowed(host, scope):
            await _refuse(scope, receive, send, 400, "Invalid Host header")
        elif (
            origin is not None
            and (scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS)
            and not self._origin_allowed(origin, host, scope)
        ):
            await _refuse(scope, receive, send, 403, "Cross-site request refused (Origin)")
        else:
            await self.app(scope, receive, _with_headers(scope, send))

    def _host_allowed(self, host: str, scope: Scope) -> bool:
        name, _ = split_host(host)
        if self.any_host or name in self.hosts or name.endswith(self.suffixes):
            return True
        server = scope.get("server")  # the address this connection reached
        if server and server[0]:
            address = str(server[0]).lower()
            return name in (address, f"[{address}]")
        return False

    def _origin_allowed(self, origin: str, host: str, scope: Scope) -> bool:
        if origin.rstrip("/").lower() in self.origins:
            return True
        parts = urlsplit(origin.lower())
        if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
            return False  # "null" (a sandboxed frame, a file) and the like
        name, port = split_host(parts.netloc)
        own_name, own_port = split_host(host)
        scheme = scope.get("scheme", "http")
        # The same host and port: the scheme may differ behind a TLS-terminating proxy.
        return (name, port or DEFAULT_PORTS[parts.scheme]) == (
            own_name,
            own_port or DEFAULT_PORTS.get(scheme, 80),
        )


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION, "reason": message})
        return
    response = JSONResponse({"success": False, "error": message}, status_code=status)
    await response(scope, receive, _with_headers(scope, send))


def _with_headers(scope: Scope, send: Send) -> Send:
    if scope["type"] != "http":
        return send
    path: str = scope.get("path", "")
    if path.startswith(DOCS_PATHS):
        policy = DOCS_POLICY
    elif path.startswith("/api/"):
        policy = API_POLICY
    else:
        policy = PAGE_POLICY

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("Content-Security-Policy", policy)
            headers.setdefault("X-Content-Type-Options", "nosniff")
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("Referrer-Policy", "no-referrer")
        await send(message)

    return send_with_headers
