"""A function's build on the console: its state (pending while its ``requirements.txt``
installs, active, failed with the installer's reason), its latest build (status, timings,
installed size, packages, whether the environment was reused), its layers, and the build's
log followed live.

The log is the REST API's follower (``api.invocations.follow`` with ``api.builds.build_end``)
behind the session instead of a bearer token: the same events as ``…/build/logs?follow=1``
(``log`` with ``id`` = seq, then ``end`` with ``{"build_id", "status", "reason"}``),
resumable with ``Last-Event-ID``. ``…/build`` gives the parts of the function page that
change when a build ends, for the page's script to swap in.

While a build of new code runs or after it failed, the function row still holds the code
that serves; the Code panel shows and edits the code of the latest upload instead
(:func:`edited_code`), so that a bad ``requirements.txt`` can be fixed where it was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cumulo.api.builds import build_end
from cumulo.api.invocations import follow
from cumulo.console.functions import RUNTIME
from cumulo.console.render import page
from cumulo.console.session import core_of, require
from cumulo.errors import NotFound
from cumulo.models import Build, BuildStatus, Function, LayerRef, LayerVersion

#: A build with more packages than this lists them folded (``<details>``).
PACKAGES_SHOWN = 8


@dataclass(frozen=True, slots=True)
class LayerUse:
    ref: LayerRef
    #: The version used, or None when it was deleted since.
    layer: LayerVersion | None
    #: The newest version of that layer, when it is newer than the one used.
    newer: int | None


async def latest_build(request: Request, fn: Function) -> Build | None:
    """The function's latest build, or None when its code has had nothing to install."""
    if fn.build_id is None:
        return None
    try:
        return await core_of(request).store.get_build(fn.build_id)
    except NotFound:
        return None


def edited_code(fn: Function, build: Build | None) -> str:
    """The package (sha256) the Code panel shows and a deploy from the editor starts from:
    the latest upload's while it builds or after its build failed, else the serving one."""
    if build is not None and build.status is not BuildStatus.SUCCEEDED:
        return build.target.code_sha256
    return fn.code_sha256


async def _layer_uses(request: Request, fn: Function) -> list[LayerUse]:
    if not fn.layers:
        return []
    layers = core_of(request).layers
    newest = {layer.name: layer.version for layer in await layers.latest()}
    uses = []
    for ref in fn.layers:
        try:
            layer: LayerVersion | None = await layers.get(ref.name, ref.version)
        except NotFound:
            layer = None
        latest = newest.get(ref.name)
        uses.append(LayerUse(ref, layer, latest if latest and latest > ref.version else None))
    return uses


async def build_panel(request: Request, fn: Function) -> dict[str, Any]:
    """What the function page's state badge, Build card and Layers fact need: ``build``
    (or None), ``build_state`` (changes whenever any of them does), ``packages_shown``,
    ``layer_uses``."""
    build = await latest_build(request, fn)
    status = build.status.value if build is not None else ""
    return {
        "build": build,
        "build_state": f"{fn.state.value}:{fn.build_id or ''}:{status}:{fn.revision}",
        "packages_shown": PACKAGES_SHOWN,
        "layer_uses": await _layer_uses(request, fn),
    }


async def _function_or_404(request: Request) -> Function:
    namespace, name = request.path_params["ns"], request.path_params["fn"]
    await require(request, namespace)
    try:
        return await core_of(request).functions.get(namespace, name)
    except NotFound as exc:
        raise HTTPException(404, f"{exc.code}: {exc.message}") from None


async def build_fragment(request: Request) -> Response:
    """``GET …/build``: the function page's state badge, state notice, summary and build
    facts, as the page's script swaps them in when a build ends."""
    fn = await _function_or_404(request)
    context = await build_panel(request, fn)
    response = page(request, "function_build.html", function=fn, runtime=RUNTIME, **context)
    response.headers["Cache-Control"] = "no-store"
    return response


async def build_log_stream(request: Request) -> Response:
    """``GET …/builds/{build}/logs``: the build's log as server-sent events, exactly as REST
    ``…/build/logs?follow=1`` sends it. 404 for a build of another function."""
    fn = await _function_or_404(request)
    build_id = request.path_params["build"]
    core = core_of(request)
    try:
        build = await core.store.get_build(build_id)
    except NotFound as exc:
        return Response(f"{exc.code}: {exc.message}", status_code=404, media_type="text/plain")
    if build.function_id != fn.id:
        return Response(
            f"ResourceNotFound.Build: build {build_id} is not a build of {fn.name}",
            status_code=404,
            media_type="text/plain",
        )
    raw = request.headers.get("last-event-id") or request.query_params.get("after", "0")
    after = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0
    return StreamingResponse(
        follow(core, build.id, after, build_end(core, build.id)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


FN = "/ns/{ns}/functions/{fn}"

routes = [
    Route(FN + "/build", build_fragment, methods=["GET"]),
    Route(FN + "/builds/{build}/logs", build_log_stream, methods=["GET"]),
]
