"""Make the README's answer screenshots from today's answers:

    .venv/bin/python docs/screenshots/make.py

A real `doclane serve` (default settings and model, as a user starts it) answers two questions,
asked through the chat page in Debian's Chromium (Playwright, as tests/test_browser.py drives
it): a CSV's total by region and a PDF's revenue. ``chat-light.png`` is the desktop page in the
light theme, ``chat-dark-mobile.png`` the same conversation 390 px wide in the dark theme.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from tests.browser import ask, launch_chromium, turn, wait_for_status  # noqa: E402
from tests.documents import make_csv, make_report_pdf  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

from doclane.settings import Settings  # noqa: E402

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    ("orders.csv", make_csv, "What is the total amount by region?"),
    ("annual-report.pdf", make_report_pdf, "What was the revenue in 2024?"),
]
VIEWS = {
    "chat-light.png": {"viewport": {"width": 1280, "height": 860}, "color_scheme": "light"},
    "chat-dark-mobile.png": {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark"},
}


def converse(page: Page, url: str, folder: Path) -> list[str]:
    """Ask the questions in turn; the answers as the page shows them."""
    page.goto(url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    shown = []
    for name, make, prompt in QUESTIONS:
        job_id = ask(page, make(folder / name), prompt)
        wait_for_status(page, job_id, "completed")
        shown.append(turn(page, job_id).locator(".answer").inner_text())
    page.evaluate("window.scrollTo(0, 0)")
    return shown


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        # The server's own answer length, not the tests' short one.
        env = {"DOCLANE_MAX_ANSWER_TOKENS": str(Settings().max_answer_tokens)}
        server = ServerProcess(Path(folder) / "data", env).start()
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                for name, options in VIEWS.items():
                    context = browser.new_context(**options)  # type: ignore[arg-type]
                    page = context.new_page()
                    for answer in converse(page, server.http, Path(folder)):
                        print(f"{name}: {' '.join(answer.split())}")
                    page.screenshot(path=HERE / name)
                    context.close()
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
