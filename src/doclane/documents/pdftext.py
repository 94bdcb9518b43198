"""A PDF's text layer, page by page, read by several processes side by side when it is long.

PDFium is not thread-safe, so reading pages in parallel takes processes. Starting one costs more
than reading a short PDF, so the pool starts on first need and lives as long as this process,
and a PDF under PARALLEL_MIN_PAGES pages is read here. Pool processes are spawned (never a fork
of a process running llama.cpp's threads) and end with this process, even when it is killed.
"""

from __future__ import annotations

import atexit
import functools
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
    """The raw text of pages ``start`` to ``stop - 1`` (0-based). Runs in a pool process, or
    here under the caller's PDFium lock."""
    pdf = pdfium.PdfDocument(path)
    try:
        texts = []
        for index in range(start, stop):
            page = pdf[index]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return texts
    finally:
        pdf.close()


def _end_with(parent: int) -> None:
    """Runs first in each pool process: exit as soon as the parent is gone (a pool process is
    not told when its parent is killed, and would linger forever)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


@functools.cache
def _pool() -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(
        max_workers=os.cpu_count() or 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_end_with,
        initargs=(os.getpid(),),
    )
    atexit.register(pool.shutdown, wait=True, cancel_futures=True)
    return pool


def read_texts(
    path: Path,
    count: int,
    lock: threading.Lock,
    pages_done: Callable[[int], None],
    should_stop: ShouldStop,
) -> list[str]:
    """The raw text of every page, in order (fewer when stopped early); ``pages_done(n)`` is
    called as pages come in."""
    batches = [(start, min(start + BATCH_PAGES, count)) for start in range(0, count, BATCH_PAGES)]
    results: dict[int, list[str]] = {}
    if count < PARALLEL_MIN_PAGES or (os.cpu_count() or 1) < 2:
        for start, stop in batches:
            if should_stop():
                break
            with lock:
                results[start] = read_range(str(path), start, stop)
            pages_done(stop)
    else:
        futures: dict[Future[list[str]], int] = {
            _pool().submit(read_range, str(path), start, stop): start for start, stop in batches
        }
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.2)
            for future in finished:
                results[futures[future]] = future.result()
            if finished:
                pages_done(sum(len(texts) for texts in results.values()))
            if should_stop():
                for future in pending:
                    future.cancel()
                break
    texts: list[str] = []
    for start, _ in batches:  # in page order, up to the first batch that was not read
        if start not in results:
            break
        texts += results[start]
    return texts
