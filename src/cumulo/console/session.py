"""Console sessions: sign-in with the admin token or an API key, a signed session cookie
(HttpOnly, SameSite=Strict, Secure under HTTPS), and a CSRF token per session that every
state-changing request must carry (a form field ``csrf`` or the header ``X-CSRF-Token``).

The cookie holds no secret: for the admin, a digest of the token (a new token ends every
session); for a key, its SecretId, looked up again on each request (a revoked key ends its
sessions within the key cache's few seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cumulo.console.render import page

if TYPE_CHECKING:
    from cumulo.app import Cumulo


class SignInRequired(Exception):
    """Raised by :func:`require` when there is no valid session."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is signed in: the admin, or an API key confined (or not) to a namespace."""

    label: str
    namespace: str | None

    def may_use(self, namespace: str) -> bool:
        return self.namespace is None or self.namespace == namespace


def core_of(request: Request) -> Cumulo:
    core: Cumulo = request.app.state.cumulo
    return core


def _digest(token: str) -> str:
    return hashlib.sha256(b"console:" + token.encode()).hexdigest()[:32]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (also before sign-in: the sign-in form
    is protected too)."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request, sent: object = None) -> None:
    """403 unless the request carries the session's CSRF token."""
    expected = request.session.get("csrf")
    if sent is None:
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            sent = (await request.form()).get("csrf")
    if not isinstance(expected, str) or not isinstance(sent, str) or not expected:
        raise HTTPException(403, "missing CSRF token: reload the page and try again")
    if not hmac.compare_digest(expected.encode(), sent.encode()):
        raise HTTPException(403, "invalid CSRF token: reload the page and try again")


async def current(request: Request) -> Viewer | None:
    core = core_of(request)
    kind = request.session.get("kind")
    if kind == "admin":
        held = str(request.session.get("token", "")).encode()
        if hmac.compare_digest(held, _digest(core.token).encode()):
            return Viewer("admin", None)
    elif kind == "key":
        secret_id = str(request.session.get("secret_id", ""))
        found = await core.keys.lookup(secret_id) if secret_id else None
        if found is not None:
            principal = found[0]
            return Viewer(f"key {secret_id[:12]}…", principal.namespace)
    return None


async def require(request: Request, namespace: str | None = None) -> Viewer:
    """The signed-in viewer (allowed in ``namespace`` when given); otherwise the sign-in page
    (or 403 for a namespace the key may not see)."""
    viewer = await current(request)
    if viewer is None:
        raise SignInRequired()
    if namespace is not None and not viewer.may_use(namespace):
        raise HTTPException(403, f"this key may not use namespace {namespace!r}")
    return viewer


async def to_sign_in(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or request.headers.get("accept", "").startswith("application/json"):
        return Response("sign in first: /console/login", status_code=401)
    return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/console/") and "//" not in target:
        return target
    return "/console/"


async def login_form(request: Request) -> Response:
    csrf_token(request)
    target = _safe_next(request.query_params.get("next"))
    return page(request, "login.html", viewer=None, next=target)


async def login(request: Request) -> Response:
    # Four short fields: nothing bigger is read from someone not yet signed in.
    form = await request.form(max_files=0, max_fields=8, max_part_size=16 * 1024)
    await check_csrf(request, form.get("csrf"))
    core = core_of(request)
    target = _safe_next(str(form.get("next", "")))
    token = str(form.get("token", "")).strip()
    secret_id = str(form.get("secret_id", "")).strip()
    secret_key = str(form.get("secret_key", "")).strip()
    error = None
    if token:
        if hmac.compare_digest(token.encode(), core.token.encode()):
            _start(request, kind="admin", token=_digest(core.token))
            return RedirectResponse(target, status_code=303)
        error = ("AuthFailure", "that is not the admin token (it is in <data-dir>/admin.token)")
    elif secret_id and secret_key:
        found = await core.keys.lookup(secret_id)
        if found is not None and hmac.compare_digest(found[1].encode(), secret_key.encode()):
            _start(request, kind="key", secret_id=secret_id)
            return RedirectResponse(target, status_code=303)
        error = ("AuthFailure", "unknown, revoked or wrong API key")
    else:
        error = (
            "MissingParameter",
            "give the admin token, or an API key's SecretId and SecretKey",
        )
    return page(request, "login.html", status_code=401, viewer=None, next=target, error=error)


def _start(request: Request, **values: str) -> None:
    """A fresh session (and CSRF token) on sign-in: nothing carries over from before."""
    request.session.clear()
    request.session.update(values)
    request.session["csrf"] = secrets.token_urlsafe(24)


async def logout(request: Request) -> Response:
    await check_csrf(request)
    request.session.clear()
    return RedirectResponse("/console/login", status_code=303)


async def home(request: Request) -> Response:
    viewer = await require(request)
    namespace = viewer.namespace or "default"
    return RedirectResponse(f"/console/ns/{namespace}/functions", status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
