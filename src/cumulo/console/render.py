"""Rendering console pages: the Jinja2 environment, what every page gets, and small
formatting filters."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1_000:
        return f"{ms:.1f} ms"
    seconds = ms / 1_000
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _seconds(value: float) -> str:
    if value >= 3_600 and value % 3_600 == 0:
        return f"{int(value // 3_600)} h"
    if value >= 60 and value % 60 == 0:
        return f"{int(value // 60)} min"
    return f"{value:g} s"


def _size(size_bytes: int | None) -> str:
    """Bytes in decimal units, as the build log counts them."""
    if size_bytes is None:
        return "—"
    for unit, size in (("GB", 10**9), ("MB", 10**6)):
        if size_bytes >= size:
            return f"{size_bytes / size:.1f} {unit}"
    if size_bytes >= 1_000:
        return f"{size_bytes / 1_000:.0f} KB"
    return f"{size_bytes} B"


templates.env.filters["when"] = _when
templates.env.filters["ago"] = _ago
templates.env.filters["duration"] = _duration
templates.env.filters["seconds"] = _seconds
templates.env.filters["size"] = _size


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """Render ``template``. Every page gets ``viewer`` (who is signed in, or None: pass it),
    ``csrf`` (the session's token, for forms and ``fetch``), ``namespace`` (from the path)
    and ``error`` (``(code, message)`` or None)."""
    from cumulo.console.session import csrf_token

    context.setdefault("error", None)
    context.setdefault("viewer", None)
    return templates.TemplateResponse(
        request,
        template,
        {
            "csrf": csrf_token(request),
            "namespace": request.path_params.get("ns", "default"),
            **context,
        },
        status_code=status_code,
    )
