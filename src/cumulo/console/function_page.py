"""A function's console page: configuration (editable except async execution), code (edit
a file of the package and deploy, or upload a zip), the Test panel, delete; with the
function's state, latest build and layers from ``builds.py`` and its recent invocations and
charts from ``invocations.py``.

Every action calls the engine the REST API calls (``core.functions``, ``core.admission``);
an engine error is shown as its code and message in the page's alert, with what the user
typed kept in the form.
"""

from __future__ import annotations

import importlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cumulo.api.http import error_response, invocation_json, json_response, read_body
from cumulo.console.builds import build_panel, edited_code, latest_build
from cumulo.console.forms import (
    environment_text,
    form_integer,
    form_number,
    form_text,
    form_upload,
    parse_environment,
    read_form,
)
from cumulo.console.functions import DONE_KEY, SAMPLE_EVENT_KEY, namespaces_for
from cumulo.console.render import page
from cumulo.console.session import Viewer, check_csrf, core_of, require
from cumulo.engine import validation as v
from cumulo.errors import CumuloError, InvalidParameter, MalformedJSON, NotFound
from cumulo.models import Function, Invocation, InvocationType

RUNTIME = "Python 3"

#: Files of a package up to this size that decode as UTF-8 can be edited in the page.
EDITABLE_MAX_BYTES = 512 * 1024
#: ``{"event": ..., "mode": ...}`` around an event adds at most this much.
INVOKE_OVERHEAD_BYTES = 1024
#: Fixed timestamp for files added to a zip, so equal contents give equal hashes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
CONFIG_FIELDS = (
    "handler", "timeout_s", "memory_mb", "environment", "description", "max_concurrency",
    "retry_attempts", "max_event_age_s", "max_qps",
)  # fmt: skip


# The function page ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeFile:
    path: str
    size_bytes: int
    #: The file's text when it can be edited in the page (UTF-8, not too large), else None.
    text: str | None


def package_files(zip_bytes: bytes) -> list[CodeFile]:
    files = []
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            text = None
            if info.file_size <= EDITABLE_MAX_BYTES:
                try:
                    text = zf.read(info).decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                if text is not None and "\x00" in text:
                    text = None
            files.append(CodeFile(info.filename, info.file_size, text))
    return sorted(files, key=lambda f: f.path)


def replace_file(zip_bytes: bytes, path: str, text: str) -> bytes:
    """``zip_bytes`` with ``path`` holding ``text`` (added when missing); every other entry
    and every entry's metadata is kept, so an unchanged file gives the same package."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(zip_bytes)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        found = False
        for info in src.infolist():
            if info.filename == path:
                found = True
                dst.writestr(info, text.encode("utf-8"))
            else:
                dst.writestr(info, src.read(info))
        if not found:
            info = zipfile.ZipInfo(path, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, text.encode("utf-8"))
    return out.getvalue()


def config_values(fn: Function) -> dict[str, str]:
    return {
        "handler": fn.handler,
        "timeout_s": f"{fn.timeout_s:g}",
        "memory_mb": str(fn.memory_mb),
        "environment": environment_text(fn.environment),
        "description": fn.description,
        "max_concurrency": "" if fn.max_concurrency is None else str(fn.max_concurrency),
        "retry_attempts": str(fn.retry_attempts),
        "max_event_age_s": f"{fn.max_event_age_s:g}",
        "max_qps": str(fn.max_qps),
    }


async def _function_or_404(request: Request, namespace: str, name: str) -> Function:
    try:
        return await core_of(request).functions.get(namespace, name)
    except NotFound as exc:
        raise HTTPException(404, f"{exc.code}: {exc.message}") from None


async def _invocation_panels(request: Request, fn: Function) -> dict[str, Any]:
    """What the invocations module gives the page's invocation and chart panels, when it
    offers ``invocation_panels`` (looked up at run time: the two pages grow separately)."""
    module = importlib.import_module("cumulo.console.invocations")
    panels = getattr(module, "invocation_panels", None)
    if panels is None:
        return {}
    found: dict[str, Any] = await panels(request, fn)
    return found


def _sample_event(request: Request, fn: Function) -> str:
    sample = request.session.get(SAMPLE_EVENT_KEY)
    if isinstance(sample, list) and sample[:2] == [fn.namespace, fn.name]:
        return str(sample[2])
    return "{}"


async def _function_page(
    request: Request,
    viewer: Viewer,
    fn: Function,
    *,
    error: tuple[str, str] | None = None,
    status_code: int = 200,
    config: Mapping[str, str] | None = None,
    code_path: str | None = None,
    code_text: str | None = None,
    test_event: str | None = None,
) -> Response:
    core = core_of(request)
    s = core.settings
    context: dict[str, Any] = await _invocation_panels(request, fn)
    context.update(await build_panel(request, fn))
    code_sha256 = edited_code(fn, context["build"])
    try:
        files = package_files(await core.store.load_code(code_sha256))
    except (CumuloError, zipfile.BadZipFile) as exc:
        files = []
        error = error or (getattr(exc, "code", "InternalError.Code"), str(exc))
    handler_path = v.handler_file(fn.handler)
    path = code_path or request.query_params.get("file") or handler_path
    current = next((f for f in files if f.path == path), None)
    if current is None and code_text is None:
        path = handler_path
        current = next((f for f in files if f.path == path), None)
    if code_text is None:
        code_text = current.text if current is not None and current.text is not None else ""
    editable = current is None or current.text is not None
    done = request.session.pop(DONE_KEY, None)
    context.update(
        function=fn,
        namespace=fn.namespace,
        runtime=RUNTIME,
        config=config or config_values(fn),
        files=files,
        code_sha256=code_sha256,
        code_path=path,
        code_text=code_text,
        code_editable=editable,
        handler_path=handler_path,
        test_event=test_event if test_event is not None else _sample_event(request, fn),
        max_sync_timeout_s=s.max_sync_timeout_s,
        max_async_timeout_s=s.max_async_timeout_s,
        max_zip_bytes=s.max_zip_bytes,
        max_sync_payload_bytes=s.max_sync_payload_bytes,
        max_async_payload_bytes=s.max_async_payload_bytes,
        memory_range=(v.MEMORY_MIN_MB, v.MEMORY_MAX_MB),
        retry_max=v.RETRY_MAX,
        event_age_range_s=v.MAX_EVENT_AGE_RANGE_S,
        max_instances=s.max_instances,
        done=done if done in ("created", "config", "code") else None,
    )
    return page(
        request,
        "function.html",
        status_code=status_code,
        viewer=viewer,
        section="functions",
        namespaces=await namespaces_for(request, viewer),
        error=error,
        **context,
    )


async def function_page(request: Request) -> Response:
    namespace, name = request.path_params["ns"], request.path_params["fn"]
    viewer = await require(request, namespace)
    fn = await _function_or_404(request, namespace, name)
    return await _function_page(request, viewer, fn)


def _config_body(fn: Function, form: FormData, values: Mapping[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "handler": values["handler"].strip(),
        "environment": parse_environment(values["environment"]),
        "description": values["description"],
        "max_concurrency": form_integer(
            values["max_concurrency"], "max_concurrency", "max concurrency"
        ),
    }
    if "async_run" in form:
        # The page shows it disabled; a changed value still goes to the engine, which says
        # why it cannot change.
        body["async_run"] = form.get("async_run") == "on"
    numbers: list[tuple[str, str, bool]] = [
        ("timeout_s", "timeout", False),
        ("memory_mb", "memory", True),
    ]
    if fn.async_run:
        numbers.append(("max_qps", "max QPS", True))
    else:
        numbers += [
            ("retry_attempts", "retry attempts", True),
            ("max_event_age_s", "max event age", False),
        ]
    for field, label, whole in numbers:
        value = (form_integer if whole else form_number)(values[field], field, label)
        if value is not None:
            body[field] = value
    return body


async def save_config(request: Request) -> Response:
    namespace, name = request.path_params["ns"], request.path_params["fn"]
    viewer = await require(request, namespace)
    fn = await _function_or_404(request, namespace, name)
    values: dict[str, str] = {}
    try:
        form = await read_form(request)
        values = {field: form_text(form, field) for field in CONFIG_FIELDS}
        body = _config_body(fn, form, values)
        await core_of(request).functions.patch(namespace, name, body)
    except CumuloError as exc:
        return await _function_page(
            request,
            viewer,
            fn,
            error=(exc.code, exc.message),
            status_code=exc.http_status,
            config={**config_values(fn), **values},
        )
    request.session[DONE_KEY] = "config"
    return RedirectResponse(f"/console/ns/{namespace}/functions/{name}#config", status_code=303)


async def save_code(request: Request) -> Response:
    namespace, name = request.path_params["ns"], request.path_params["fn"]
    viewer = await require(request, namespace)
    fn = await _function_or_404(request, namespace, name)
    core = core_of(request)
    path, text = None, None
    try:
        form = await read_form(request)
        path, text = form_text(form, "path").strip() or None, form_text(form, "code")
        upload = form_upload(form, "zip_file")
        handler = form_text(form, "handler").strip()
        if upload is not None:
            package = v.check_zip(await upload.read(), core.settings)
        elif "code" not in form:
            raise InvalidParameter(
                "this file cannot be edited in the page: choose a zip to upload", field="zip_file"
            )
        else:
            if path is None:
                raise InvalidParameter("say which file of the package to save", field="path")
            # The package the page showed: the latest upload's while it builds or failed,
            # with the handler it was uploaded with.
            build = await latest_build(request, fn)
            base = edited_code(fn, build)
            zip_bytes = await core.store.load_code(base)
            package = v.check_zip(replace_file(zip_bytes, path, text), core.settings)
            handler = build.target.handler if build and base != fn.code_sha256 else ""
        await core.functions.put_code(
            namespace, name, package, handler if handler and handler != fn.handler else None
        )
    except CumuloError as exc:
        return await _function_page(
            request,
            viewer,
            fn,
            error=(exc.code, exc.message),
            status_code=exc.http_status,
            code_path=path,
            code_text=text,
        )
    request.session[DONE_KEY] = "code"
    query = f"?file={quote(path)}" if path else ""
    return RedirectResponse(
        f"/console/ns/{namespace}/functions/{name}{query}#code", status_code=303
    )


async def delete_function(request: Request) -> Response:
    namespace, name = request.path_params["ns"], request.path_params["fn"]
    viewer = await require(request, namespace)
    fn = await _function_or_404(request, namespace, name)
    try:
        await read_form(request)
        await core_of(request).functions.delete(namespace, name)
    except CumuloError as exc:
        return await _function_page(
            request, viewer, fn, error=(exc.code, exc.message), status_code=exc.http_status
        )
    return RedirectResponse(f"/console/ns/{namespace}/functions", status_code=303)


# The Test panel ---------------------------------------------------------------------------


async def _admit(request: Request, fn: Function, event: bytes, mode: str) -> Invocation:
    """Admit ``event`` as the REST API's invoke does (same limits, same errors)."""
    try:
        requested = InvocationType(mode)
    except ValueError:
        raise InvalidParameter(
            f"mode {mode!r} is invalid: use sync or async", field="mode"
        ) from None
    admission = core_of(request).admission
    kind = admission.effective_type(fn, requested)
    admitted = await admission.admit(fn, kind, event)
    return admitted.invocation


async def invoke(request: Request) -> Response:
    """``POST .../invoke``: from the page's script, ``{"event": ..., "mode": "sync" | "async"}``
    with the ``X-CSRF-Token`` header, answered with JSON (the invocation, or
    ``{"error": {"code", "message"}}``); from a plain form (no script), the fields ``event``
    and ``mode``, answered with a redirect to the invocation's page."""
    namespace, name = request.path_params["ns"], request.path_params["fn"]
    viewer = await require(request, namespace)
    core = core_of(request)
    if not request.headers.get("content-type", "").startswith("application/json"):
        return await _invoke_form(request, viewer, namespace, name)
    try:
        await check_csrf(request)
    except HTTPException as exc:
        return json_response(
            {"error": {"code": "AuthFailure.CsrfToken", "message": exc.detail}}, 403
        )
    try:
        fn = await core.functions.get(namespace, name)
        limit = core.settings.max_sync_payload_bytes + INVOKE_OVERHEAD_BYTES
        try:
            body = orjson.loads(await read_body(request, limit))
        except orjson.JSONDecodeError as exc:
            raise MalformedJSON(f"the request is not valid JSON: {exc}") from exc
        if not isinstance(body, dict) or "event" not in body:
            raise InvalidParameter('send {"event": ..., "mode": "sync" or "async"}')
        mode = body.get("mode", "sync")
        inv = await _admit(request, fn, orjson.dumps(body["event"]), str(mode))
    except CumuloError as exc:
        return error_response(exc)
    answer = invocation_json(inv)
    answer["link"] = f"/console/ns/{namespace}/invocations/{inv.request_id}"
    done = inv.type is InvocationType.SYNC and inv.status.terminal
    return json_response(answer, 200 if done else 202)


async def _invoke_form(request: Request, viewer: Viewer, namespace: str, name: str) -> Response:
    fn = await _function_or_404(request, namespace, name)
    event_text = ""
    try:
        form = await read_form(request)
        event_text = form_text(form, "event")
        inv = await _admit(request, fn, event_text.encode(), form_text(form, "mode") or "sync")
    except CumuloError as exc:
        return await _function_page(
            request,
            viewer,
            fn,
            error=(exc.code, exc.message),
            status_code=exc.http_status,
            test_event=event_text,
        )
    return RedirectResponse(
        f"/console/ns/{namespace}/invocations/{inv.request_id}", status_code=303
    )


FN = "/ns/{ns}/functions/{fn}"

routes = [
    Route(FN, function_page, methods=["GET"]),
    Route(FN + "/config", save_config, methods=["POST"]),
    Route(FN + "/code", save_code, methods=["POST"]),
    Route(FN + "/invoke", invoke, methods=["POST"]),
    Route(FN + "/delete", delete_function, methods=["POST"]),
]
