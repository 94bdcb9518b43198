"""The bundled chat page: ``/`` serves ``static/index.html``, ``/static/`` its CSS and JS.

The page is plain HTML, CSS and JavaScript (no build step) and talks to the same REST and
WebSocket API as any other front end.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter()
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html")
