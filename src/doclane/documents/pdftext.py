"""A PDF's text layer, page by page, read by several processes side by side when it is long.

PDFium is not thread-safe, so reading pages in parallel takes processes. A PDF under
PARALLEL_MIN_PAGES pages is read here. A longer one gets a pool for its own reading: forked when
this process runs no other thread, as a reader process (doclane.sandbox) never does, which costs
milliseconds and puts the helpers under the reader's limits and in its process group; spawned
anywhere else (forking a threaded process is unsafe). Helpers end with this process, even when
it is killed.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path

import pypdfium2 as pdfium

from doclane.documents.model import ShouldStop

PARALLEL_MIN_PAGES = 64
BATCH_PAGES = 32


def read_range(path: str, start: int, stop: int) -> list[str]:
    """The raw text of pages ``start`` to ``stop - 1`` (0-based). Runs in a pool process."""
    pdf = pdfium.PdfDocument(path)
    try:
        return [_page_text(pdf, index) for index in range(start, stop)]
    finally:
        pdf.close()


def _page_text(pdf: pdfium.PdfDocument, index: int) -> str:
    page = pdf[index]
    textpage = page.get_textpage()
    text: str = textpage.get_text_range()
    textpage.close()
    page.close()
    return text


def _read_here(
    path: Path,
    count: int,
    lock: threading.Lock,
    pages_done: Callable[[int], None],
    should_stop: ShouldStop,
) -> list[str]:
    """Page by page in this process, reporting each (a reader's proof of life is per page),
    with the PDFium lock held only while PDFium works."""
    with lock:
        pdf = pdfium.PdfDocument(path)
    texts: list[str] = []
    try:
        for index in range(count):
            if should_stop():
                break
            with lock:
                texts.append(_page_text(pdf, index))
            pages_done(index + 1)
    finally:
        with lock:
            pdf.close()
    return texts


def _end_with(parent: int) -> None:
    """Runs first in each pool process: exit as soon as the parent is gone (a pool process is
    not told when its parent is killed, and would linger forever)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _pool() -> ProcessPoolExecutor:
    method = "fork" if threading.active_count() == 1 else "spawn"
    return ProcessPoolExecutor(
        max_workers=os.cpu_count() or 1,
        mp_context=multiprocessing.get_context(method),
        initializer=_end_with,
        initargs=(os.getpid(),),
    )


def read_texts(
    path: Path,
    count: int,
    lock: threading.Lock,
    pages_done: Callable[[int], None],
    should_stop: ShouldStop,
) -> list[str]:
    """The raw text of every page, in order (fewer when stopped early); ``pages_done(n)`` is
    called as pages come in."""
    if count < PARALLEL_MIN_PAGES or (os.cpu_count() or 1) < 2:
        return _read_here(path, count, lock, pages_done, should_stop)
    batches = [(start, min(start + BATCH_PAGES, count)) for start in range(0, count, BATCH_PAGES)]
    results: dict[int, list[str]] = {}
    with _pool() as pool:
        futures: dict[Future[list[str]], int] = {
            pool.submit(read_range, str(path), start, stop): start for start, stop in batches
        }
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.2)
            for future in finished:
                results[futures[future]] = future.result()
            if finished:
                pages_done(sum(len(texts) for texts in results.values()))
            if should_stop():
                pool.shutdown(wait=False, cancel_futures=True)
                break
    texts: list[str] = []
    for start, _ in batches:  # in page order, up to the first batch that was not read
        if start not in results:
            break
        texts += results[start]
    return texts
