"""What a hostile web page can do from a victim's browser, refused: a cross-site Origin on the
WebSocket and on state-changing routes, a rebound DNS name in Host, a page framed by another;
and file names that lie about themselves."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from doclane.uploads import safe_file_name
from tests.documents import png_bytes
from tests.server import ServerProcess

pytestmark = pytest.mark.anyio

EVIL = "http://evil.example"
FRONT_END = "http://localhost:3000"  # a default DOCLANE_CORS_ORIGINS entry


async def upload(api: httpx.AsyncClient, name: str = "a.png", **headers: str) -> httpx.Response:
    return await api.post("/api/upload", files={"file": (name, png_bytes())}, headers=headers)


def assert_refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.json()["success"] is False


async def test_state_changing_routes_refuse_a_cross_site_origin(api: httpx.AsyncClient) -> None:
    assert_refused(await upload(api, Origin=EVIL), 403)
    assert_refused(await upload(api, Origin="null"), 403)  # a sandboxed frame, a file: page
    job_id = (await upload(api)).json()["data"]["job_id"]  # no Origin: a script
    for method, path in [("DELETE", f"/api/jobs/{job_id}"), ("POST", f"/api/jobs/{job_id}/cancel")]:
        assert_refused(await api.request(method, path, headers={"Origin": EVIL}), 403)
    assert (await api.get(f"/api/jobs/{job_id}")).json()["data"]["status"] == "pending"
    # the page's own origin, and a configured front end, may
    assert (await upload(api, Origin="http://doclane")).status_code == 200
    assert (await upload(api, Origin=FRONT_END)).status_code == 200
    cancelled = await api.post(f"/api/jobs/{job_id}/cancel", headers={"Origin": FRONT_END})
    assert cancelled.json()["data"]["status"] == "cancelled"


async def test_a_foreign_host_is_refused(api: httpx.AsyncClient) -> None:
    assert_refused(await api.get("/api/health", headers={"Host": "evil.example"}), 400)
    assert_refused(await api.get("/", headers={"Host": "evil.example:8000"}), 400)
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "doclane"):  # doclane: this address
        assert (await api.get("/api/health", headers={"Host": host})).status_code == 200, host


async def test_security_headers_on_the_page_and_the_api(api: httpx.AsyncClient) -> None:
    responses = [
        await api.get("/"),
        await api.get("/static/app.js"),
        await api.get("/api/health"),
        await api.get("/api/jobs/nope"),  # an error too
        await upload(api, Origin=EVIL),  # and a refusal
    ]
    for response in responses:
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy, response.url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    page_policy = responses[0].headers["content-security-policy"]
    assert "script-src 'self'" in page_policy and "connect-src 'self'" in page_policy


@pytest.mark.slow
async def test_the_websocket_refuses_a_cross_site_origin_with_auth_on_or_off(
    start_server: Callable[..., ServerProcess],
) -> None:
    for env in ({}, {"DOCLANE_API_KEYS": "alice:alice-key"}):
        server = start_server(env)
        for origin in (EVIL, "null", f"http://127.0.0.1:{server.port + 1}"):
            with pytest.raises(InvalidStatus) as refused, anyio.fail_after(10):
                await connect(server.ws, origin=origin)  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403
        token = "?token=alice-key" if env else ""
        for origin in (None, server.http, FRONT_END):  # a script, the page itself, a front end
            async with connect(server.ws + token, origin=origin) as ws:  # type: ignore[arg-type]
                await ws.send('{"type": "ping"}')
                with anyio.fail_after(10):
                    assert await ws.recv() == '{"type":"pong"}'
        async with httpx.AsyncClient(base_url=server.http) as http:  # DNS rebinding
            rebound = await http.get("/api/health", headers={"Host": "evil.example"})
            assert_refused(rebound, 400)
        server.stop()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # right-to-left override: "invoiceexe.pdf"
        ("a\u200bb\u2066c\u2069.pdf", "abc.pdf"),  # zero-width space, isolates
        ("line\u2028break\u2029.csv", "linebreak.csv"),  # line and paragraph separators
        ("tab\tnew\nline\x00.png", "tabnewline.png"),  # control characters
        ("wide\u3000space\u00a0 here.pdf", "wide space here.pdf"),  # other spaces: one space
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("\u202e", "upload"),
        ("café résumé.pdf", "café résumé.pdf"),  # letters and marks stay
    ],
)
def test_display_names_lose_control_format_and_separator_characters(raw: str, shown: str) -> None:
    assert safe_file_name(raw) == shown


async def test_the_api_shows_the_cleaned_name(api: httpx.AsyncClient) -> None:
    job_id = (await upload(api, name="invoice\u202efdp.exe")).json()["data"]["job_id"]
    assert (await api.get(f"/api/jobs/{job_id}")).json()["data"]["file_name"] == "invoicefdp.exe"
