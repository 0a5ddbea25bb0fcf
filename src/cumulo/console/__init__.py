"""The web console, served by the server itself at ``/console``: sign in, create and
configure functions, follow their builds, invoke them, watch their invocations and live
logs.

Server-rendered (Jinja2 templates, a little plain JavaScript for live logs and the test
panel); nothing to build or install beyond the Python package. It calls the same engine as
the REST API. Every page needs a session (``session.py``); every state-changing request
carries the session's CSRF token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from cumulo.console.builds import routes as build_routes
from cumulo.console.function_page import routes as function_page_routes
from cumulo.console.functions import routes as function_routes
from cumulo.console.invocations import routes as invocation_routes
from cumulo.console.render import STATIC_DIR, page
from cumulo.console.session import SignInRequired, current, to_sign_in
from cumulo.console.session import routes as session_routes

if TYPE_CHECKING:
    from cumulo.app import Cumulo

#: A session lasts this long after sign-in; then the console asks again.
SESSION_MAX_AGE_S = 12 * 3600


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    viewer = await current(request)
    return page(
        request,
        "error.html",
        status_code=exc.status_code,
        viewer=viewer,
        status=exc.status_code,
        message=exc.detail,
    )


def console_app(core: Cumulo) -> Starlette:
    """The console as an ASGI app, to be mounted at ``/console``."""
    app = Starlette(
        routes=[
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
            *session_routes,
            *function_routes,
            *function_page_routes,
            *build_routes,
            *invocation_routes,
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=core.box.derive("console-session"),
                session_cookie="cumulo_console",
                max_age=SESSION_MAX_AGE_S,
                path="/console",
                same_site="strict",
                https_only=core.settings.tls_certfile is not None,
            )
        ],
        exception_handlers={SignInRequired: to_sign_in, HTTPException: _http_error},
    )
    app.state.cumulo = core
    return app
