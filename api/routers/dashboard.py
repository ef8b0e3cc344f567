"""``GET /dashboard``: the live dashboard, one static page (``api/static/dashboard.html``)
that polls ``/metrics``, ``/model`` and ``/snapshots`` from the browser."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

PAGE = Path(__file__).resolve().parent.parent / "static" / "dashboard.html"
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
"""The page loads nothing but itself and talks only to this server."""

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> FileResponse:
    """The dashboard page (HTML, no external resources)."""
    return FileResponse(PAGE, media_type="text/html", headers={"Content-Security-Policy": CSP,
                                                               "Cache-Control": "no-cache"})
