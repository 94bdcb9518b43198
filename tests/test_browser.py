"""The bundled chat page in a real browser (Debian's Chromium) against a real `doclane serve`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from doclane.page import STATIC_DIR
from tests.browser import (
    FORM_SPY,
    JOB_TIMEOUT_MS,
    RECORDER,
    ask,
    expect_answer,
    launch_chromium,
    screenshot,
    site_for,
    static_server,
    turn,
    wait_for_status,
)
from tests.documents import make_csv, make_report_pdf, make_topics_pdf
from tests.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

LONG_ANSWER = {"DOCLANE_MAX_ANSWER_TOKENS": "200"}
# Summarised section by section, one model call per page: the answer runs on for seconds after
# its first heading shows (a one-call answer may end before a click lands, on a loaded machine).
TOPICS = ["turbines", "staffing", "budgets", "safety"]
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=15_000)  # assertions wait this long unless told otherwise
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh browser context (options as for `Browser.new_context`)."""
    contexts: list[BrowserContext] = []

    def new(**options: Any) -> Page:
        contexts.append(browser.new_context(**{"viewport": DESKTOP, **options}))
        page = contexts[-1].new_page()
        page.set_default_timeout(15_000)
        return page

    yield new
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


def get_job(server: ServerProcess, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.http}/api/jobs/{job_id}", timeout=10)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")


@pytest.mark.parametrize(
    ("make", "name", "prompt"),
    [
        (make_report_pdf, "report.pdf", "What was the revenue in 2024?"),
        (make_csv, "orders.csv", "What is the total amount by region?"),
    ],
)
def test_ask_a_document(
    start_server: Callable[..., ServerProcess],
    page: Page,
    tmp_path: Path,
    make: Callable[[Path], Path],
    name: str,
    prompt: str,
) -> None:
    server = start_server()
    document = make(tmp_path / name)
    page.add_init_script(RECORDER)
    open_page(page, server.http)

    page.locator("#file").set_input_files(document)  # the card shows at once, removable
    expect(page.locator("#attachment")).to_be_visible()
    page.click("#attachment-remove")
    expect(page.locator("#attachment")).to_be_hidden()
    expect(page.locator("#send")).to_be_disabled()

    job_id = ask(page, document, prompt)
    job = turn(page, job_id)
    expect(job.locator(".prompt")).to_have_text(prompt)
    expect(job.locator(".file-chip-name")).to_have_text(name)
    wait_for_status(page, job_id, "completed")

    answer = get_job(server, job_id)["ai_response"]
    expect_answer(page, job_id, answer)
    progress = [p for p, _ in page.evaluate("seen")]
    assert progress == sorted(progress) and progress[-1] == 100
    if name.endswith(".csv"):  # the computed figures open the answer, as a table
        expect(job.locator(".answer table td").first).to_have_text("North")
    else:  # the sentence the answer rests on, quoted with its page
        expect(job.locator(".answer blockquote")).to_contain_text("Source, p. 2")
    screenshot(page, f"chat-{document.suffix[1:]}.png")


def start_a_long_answer(
    start_server: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> tuple[ServerProcess, str]:
    """A server, the page, and a job whose long answer has begun to stream."""
    server = start_server(LONG_ANSWER)
    open_page(page, server.http)
    job_id = ask(page, make_topics_pdf(tmp_path / "report.pdf", TOPICS), "Write a long summary.")
    expect(turn(page, job_id).locator(".answer")).not_to_be_empty(timeout=60_000)
    return server, job_id


def test_the_bar_moves_while_a_long_answer_streams(
    start_server: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> None:
    """A short answer may run from start to end within a frame or two, which the page draws once
    each: a long one shows the bar, and the answer, on their way."""
    page.add_init_script(RECORDER)
    server, job_id = start_a_long_answer(start_server, page, tmp_path)
    wait_for_status(page, job_id, "completed", timeout=120_000)
    seen = page.evaluate("seen")
    progress = [p for p, _ in seen]
    assert progress == sorted(progress) and progress[-1] == 100
    assert len({p for p in progress if 0 < p < 100}) >= 2, progress
    answer = get_job(server, job_id)["ai_response"]
    assert any(0 < n < len(answer) for _, n in seen), "the answer did not stream"


def test_kill_and_restart_mid_answer(
    start_server: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> None:
    server, job_id = start_a_long_answer(start_server, page, tmp_path)

    server.kill()
    expect(page.locator("#banner")).to_contain_text("Reconnecting")
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    screenshot(page, "reconnecting.png")

    server.start()  # same port, same data dir: the job runs again
    expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=30_000)
    expect(page.locator("#banner")).to_be_hidden()
    wait_for_status(page, job_id, "completed")
    expect_answer(page, job_id, get_job(server, job_id)["ai_response"])


def test_retry_after_giving_up(start_server: Callable[..., ServerProcess], page: Page) -> None:
    """Five reconnects 3 s apart, then a Retry button."""
    server = start_server()
    open_page(page, server.http)
    server.kill()
    retry = page.locator("#retry")
    expect(retry).to_be_visible(timeout=30_000)
    expect(page.locator("#banner")).to_contain_text("Connection lost")
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")

    server.start()
    retry.click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(page.locator("#banner")).to_be_hidden()


def test_reload_restores_the_jobs(
    start_server: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> None:
    server = start_server(LONG_ANSWER)
    open_page(page, server.http)
    csv = make_csv(tmp_path / "orders.csv")
    done = ask(page, csv, "How many rows are there?")
    wait_for_status(page, done, "completed")
    running = ask(page, csv, "Describe every column in detail.")
    expect(turn(page, running).locator(".answer")).not_to_be_empty(timeout=60_000)

    page.reload()
    expect(page.locator(".turn")).to_have_count(2)
    expect(turn(page, done).locator(".prompt")).to_have_text("How many rows are there?")
    expect(turn(page, running).locator(".file-chip-name")).to_have_text("orders.csv")
    wait_for_status(page, done, "completed")
    expect_answer(page, done, get_job(server, done)["ai_response"])
    wait_for_status(page, running, "completed")
    expect_answer(page, running, get_job(server, running)["ai_response"])


def test_cancel_a_running_job(
    start_server: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> None:
    server, job_id = start_a_long_answer(start_server, page, tmp_path)

    turn(page, job_id).locator(".cancel").click()
    wait_for_status(page, job_id, "cancelled", timeout=10_000)
    expect(turn(page, job_id).locator(".error")).to_have_text("Job cancelled")
    assert get_job(server, job_id)["status"] == "cancelled"


def test_rejected_upload_shows_the_error(
    start_server: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> None:
    server = start_server()
    open_page(page, server.http)
    notes = tmp_path / "notes.pdf"
    notes.write_bytes(b"\x00\x01 not a document")
    page.locator("#file").set_input_files(notes)
    page.click("#send")
    rejected = page.locator(".turn").last
    expect(rejected).to_have_attribute("data-status", "failed")
    expect(rejected.locator(".error")).to_contain_text("Unsupported file type")
    expect(rejected.locator(".file-chip-name")).to_have_text("notes.pdf")


def test_priority_and_schedule_options(
    start_server: Callable[..., ServerProcess], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    """The schedule is typed in the browser's local time and sent as UTC with a Z."""
    server = start_server()
    zone = "Asia/Tokyo"
    page = new_page(timezone_id=zone)
    page.add_init_script(FORM_SPY)
    open_page(page, server.http)
    when = datetime.now(ZoneInfo(zone)).replace(microsecond=0) + timedelta(days=2)
    page.click(".options summary")
    page.fill("#priority", "7")
    page.fill("#schedule", when.strftime("%Y-%m-%dT%H:%M:%S"))

    job_id = ask(page, make_csv(tmp_path / "orders.csv"), "Later, please.")
    utc = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert page.evaluate("sentFields") == {
        "prompt": "Later, please.",
        "priority": "7",
        "scheduled_at": utc,
    }
    wait_for_status(page, job_id, "pending")
    expect(turn(page, job_id).locator(".stage")).to_have_text("Queued")
    assert get_job(server, job_id)["status"] == "pending"


def test_dark_theme_on_a_phone(
    start_server: Callable[..., ServerProcess], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server()
    page = new_page(color_scheme="dark", viewport={"width": 390, "height": 844})
    open_page(page, server.http)
    background = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(33, 33, 33)"

    job_id = ask(page, make_report_pdf(tmp_path / "report.pdf"), "What was the revenue in 2024?")
    wait_for_status(page, job_id, "completed")
    page.locator("#file").set_input_files(make_csv(tmp_path / "a-rather-long-file-name.csv"))
    page.click(".options summary")
    assert_fits(page, 390)
    screenshot(page, "chat-dark-390.png")

    page.click("#theme-toggle")  # pinned to light, and remembered
    assert page.evaluate(background) == "rgb(255, 255, 255)"
    page.reload()
    assert page.evaluate(background) == "rgb(255, 255, 255)"


def assert_fits(page: Page, width: int) -> None:
    """Nothing scrolls sideways, and the page's parts sit side by side without overlapping."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("document.querySelector('#conversation').scrollWidth") <= width

    def box(selector: str) -> dict[str, float]:
        found = page.locator(selector).bounding_box()
        assert found, selector
        assert found["x"] >= 0 and found["x"] + found["width"] <= width, selector
        return found

    header, conversation, composer = box(".topbar"), box("#conversation"), box("#composer")
    assert header["y"] + header["height"] <= conversation["y"]
    assert conversation["y"] + conversation["height"] <= composer["y"]
    rows = [[".topbar .brand", "#connection", "#theme-toggle"], [".attach", "#prompt", "#send"]]
    for row in rows:
        for left, right in pairwise(box(selector) for selector in row):
            assert left["x"] + left["width"] <= right["x"], row
    for selector in (".turn .user", ".turn .ai", "#attachment", ".option-fields"):
        box(selector)


def test_page_on_another_origin(
    start_server: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> None:
    """A copy of the page served elsewhere, pointed at doclane by its meta tag, just works."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    server = start_server({"DOCLANE_CORS_ORIGINS": origin})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"{r.url} {r.failure}"))

    with static_server(site_for(server.http, tmp_path / "site"), port):
        open_page(page, origin)
        job_id = ask(page, make_csv(tmp_path / "orders.csv"), "How many rows are there?")
        wait_for_status(page, job_id, "completed")
        expect_answer(page, job_id, get_job(server, job_id)["ai_response"])
    assert problems == []


def test_markdown_is_rendered_safely(page: Page) -> None:
    """Model output and file names never become markup; the Markdown subset does."""
    page.route("http://doclane.test/**", _serve_static)
    page.goto("http://doclane.test/")
    render = "text => renderMarkdown(text)"
    cases = {
        '<img src=x onerror="alert(1)"> & co': "<p>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
        " &amp; co</p>",
        "**bold**, *it* and `a*b*<c>`": "<p><strong>bold</strong>, <em>it</em> and "
        "<code>a*b*&lt;c&gt;</code></p>",
        "Two\nlines\n\nNext": "<p>Two<br>lines</p><p>Next</p>",
        "Items:\n- one\n- **two**\n1. first\n2) second": "<p>Items:</p><ul><li>one</li>"
        "<li><strong>two</strong></li></ul><ol><li>first</li><li>second</li></ol>",
        "```py\nx = '<b>'\n```\nafter": "<pre><code>x = &#39;&lt;b&gt;&#39;</code></pre>"
        "<p>after</p>",
        "```\nstill streaming": "<pre><code>still streaming</code></pre>",
        "| region | <b>total</b> |\n|---|---|\n| North | **550** |": "<table><thead><tr>"
        "<th>region</th><th>&lt;b&gt;total&lt;/b&gt;</th></tr></thead><tbody><tr><td>North</td>"
        "<td><strong>550</strong></td></tr></tbody></table>",
        "Answer.\n\n> Source, p. 2: <i>x</i>": "<p>Answer.</p>"
        "<blockquote>Source, p. 2: &lt;i&gt;x&lt;/i&gt;</blockquote>",
    }
    for text, html in cases.items():
        assert page.evaluate(render, text) == html, text

    name = '<img src=x onerror="alert(1)">.csv'
    page.locator("#file").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"}
    )
    expect(page.locator("#attachment-name")).to_have_text(name)
    assert page.locator("#attachment img:not(.thumb)").count() == 0


def _serve_static(route: Route) -> None:
    """The page's files, and an API with no jobs and auth off (the page asks on load)."""
    path = route.request.url.removeprefix("http://doclane.test/")
    if path == "api/health":
        route.fulfill(json={"success": True, "data": {"status": "ok", "auth": False}})
    elif path.startswith("api/"):
        route.fulfill(status=404, json={"success": False, "error": "Not found"})
    else:
        route.fulfill(path=STATIC_DIR.parent / path if path else STATIC_DIR / "index.html")


def test_the_key_field_when_the_server_needs_a_key(
    start_server: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> None:
    """With auth on, the page asks for a key, keeps it in the browser and uses it for the REST
    calls and the socket; a refused key brings the field back. No CSP violation meanwhile."""
    server = start_server({"DOCLANE_API_KEYS": "alice:alice-key-1,bob:bob-key-2"})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server.http)
    expect(page.locator("#keybar")).to_be_visible()
    expect(page.locator("#connection")).not_to_have_attribute("data-state", "open")
    page.fill("#api-key", "alice-key-1")
    page.click("#keybar button")
    expect(page.locator("#keybar")).to_be_hidden()
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    assert page.evaluate("localStorage.getItem('doclane.key')") == "alice-key-1"
    job_id = ask(page, make_csv(tmp_path / "orders.csv"), "How many rows are there?")
    wait_for_status(page, job_id, "completed")  # events came over the alice socket
    expect_answer(page, job_id, get_job_as(server, job_id, "alice-key-1")["ai_response"])

    page.reload()  # the key is remembered: no field, the job is read back
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(page.locator("#keybar")).to_be_hidden()
    wait_for_status(page, job_id, "completed")

    page.evaluate("localStorage.setItem('doclane.key', 'revoked')")
    page.reload()  # a key the server refuses: the field comes back, with the reason
    expect(page.locator("#keybar")).to_be_visible()
    expect(page.locator("#key-error")).to_contain_text("refused")
    page.fill("#api-key", "bob-key-2")  # bob cannot see alice's job
    page.click("#keybar button")
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(turn(page, job_id)).to_have_count(0)
    assert [p for p in problems if "401" not in p and "404" not in p] == []  # no CSP error


def get_job_as(server: ServerProcess, job_id: str, key: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.http}/api/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def test_past_jobs_from_the_history_with_auth_on(
    start_server: Callable[..., ServerProcess], page: Page, tmp_path: Path
) -> None:
    """The past jobs panel lists the user's jobs from GET /api/jobs, newest first (with the
    prompts this browser asked), keeps their statuses live, and shows a job's answer when
    clicked; another user's jobs are not there. Under the page's CSP, with a Bearer key."""
    alice, bob = "alice-key-1", "bob-key-2"
    server = start_server({"DOCLANE_API_KEYS": f"alice:{alice},bob:{bob}"})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    csv = make_csv(tmp_path / "orders.csv")
    upload_as(server, bob, make_csv(tmp_path / "bobs.csv"))
    page.goto(server.http)
    page.fill("#api-key", alice)
    page.click("#keybar button")
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")

    asked = ask(page, csv, "How many rows are there?")  # in this browser: its prompt is known
    elsewhere = upload_as(server, alice, make_report_pdf(tmp_path / "report.pdf"))
    answer = wait_until_done(server, alice, elsewhere)
    page.click("#history-toggle")
    items = page.locator("#history-list .history-item")
    expect(items).to_have_count(2)  # alice's two, not bob's
    assert [items.nth(i).get_attribute("data-job-id") for i in range(2)] == [elsewhere, asked]
    expect(items.nth(0).locator(".history-file")).to_have_text("report.pdf")
    expect(items.nth(0).locator(".history-status")).to_have_text("completed")
    expect(items.nth(1).locator(".history-file")).to_have_text("orders.csv")
    expect(items.nth(1).locator(".history-prompt")).to_have_text("How many rows are there?")
    wait_for_status(page, asked, "completed")
    expect(items.nth(1).locator(".history-status")).to_have_text("completed")  # kept live

    expect(turn(page, elsewhere)).to_have_count(0)
    items.nth(0).click()  # asked from elsewhere: read with GET /api/jobs/{id}
    expect(turn(page, elsewhere).locator(".file-chip-name")).to_have_text("report.pdf")
    expect_answer(page, elsewhere, answer)
    screenshot(page, "chat-history.png")
    assert [p for p in problems if "401" not in p] == []  # no CSP violation, no error


def upload_as(server: ServerProcess, key: str, document: Path) -> str:
    with document.open("rb") as file:
        response = httpx.post(
            f"{server.http}/api/upload",
            files={"file": (document.name, file)},
            data={"prompt": "What is this about?"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    assert response.status_code == 200, response.text
    job_id: str = response.json()["data"]["job_id"]
    return job_id


def wait_until_done(server: ServerProcess, key: str, job_id: str) -> str:
    """The job's answer once it completed (within the browser tests' job timeout)."""
    deadline = time.monotonic() + JOB_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        job = get_job_as(server, job_id, key)
        if job["status"] == "completed":
            answer: str = job["ai_response"]
            return answer
        assert job["status"] in ("pending", "processing"), job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not complete")
