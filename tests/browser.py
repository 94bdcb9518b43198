"""Driving the chat page in Debian's Chromium, and serving it from a second origin."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, expect

from doclane.page import STATIC_DIR

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
JOB_TIMEOUT_MS = 120_000

# Records what the last turn showed after every DOM change: [progress, answer length].
RECORDER = """
window.seen = [];
new MutationObserver(() => {
  const turn = document.querySelector(".turn:last-of-type");
  if (!turn) return;
  const progress = Number(turn.querySelector(".progress").getAttribute("aria-valuenow"));
  seen.push([progress, turn.querySelector(".answer").textContent.length]);
}).observe(document, { subtree: true, childList: true, attributes: true });
"""

# Keeps the text fields of the last form the page sent with fetch.
FORM_SPY = """
const pageFetch = window.fetch;
window.fetch = (url, init) => {
  if (init?.body instanceof FormData) {
    window.sentFields = Object.fromEntries(
      [...init.body].filter(([, value]) => typeof value === "string"));
  }
  return pageFetch(url, init);
};
"""


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium (never a downloaded build); missing, it fails CI and skips elsewhere."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def ask(page: Page, document: Path, prompt: str) -> str:
    """Attach a document, send the prompt; return the new job's id once the upload answered."""
    page.locator("#file").set_input_files(document)
    expect(page.locator("#attachment-name")).to_have_text(document.name)
    page.fill("#prompt", prompt)
    with page.expect_response(lambda r: r.url.endswith("/api/upload")) as upload:
        page.click("#send")
    job_id: str = upload.value.json()["data"]["job_id"]
    return job_id


def turn(page: Page, job_id: str) -> Locator:
    return page.locator(f'.turn[data-job-id="{job_id}"]')


def wait_for_status(page: Page, job_id: str, status: str, timeout: float = JOB_TIMEOUT_MS) -> None:
    expect(turn(page, job_id)).to_have_attribute("data-status", status, timeout=timeout)


def expect_answer(page: Page, job_id: str, text: str) -> None:
    """The turn shows `text` rendered by the page's own Markdown renderer."""
    html = page.evaluate(
        """text => {
            const box = document.createElement("div");  // serialised the way the DOM does
            box.innerHTML = renderMarkdown(text);
            return box.innerHTML;
        }""",
        text,
    )
    shown = turn(page, job_id).locator(".answer").inner_html()
    assert shown == html, f"shown:    {shown!r}\nexpected: {html!r}"


def screenshot(page: Page, name: str) -> Path:
    path = ARTIFACTS / name
    page.screenshot(path=path)
    return path


def site_for(api: str, target: Path) -> Path:
    """A copy of the page that talks to the doclane API at `api`, as another host would serve it."""
    shutil.copytree(STATIC_DIR, target / "static")
    index = (STATIC_DIR / "index.html").read_text()
    marker = '<meta name="doclane-api" content="">'
    assert marker in index
    (target / "index.html").write_text(index.replace(marker, marker.replace('""', f'"{api}"')))
    return target


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_server(directory: Path, port: int) -> Iterator[str]:
    """A plain static file server on 127.0.0.1:`port`; yields its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(_QuietHandler, directory=directory))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
