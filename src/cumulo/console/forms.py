"""Reading the console's forms: the posted form after the CSRF check, typed fields with
the engine's error codes, environment variables as ``KEY=VALUE`` lines."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from cumulo.console.session import check_csrf, core_of
from cumulo.errors import InvalidParameter, PayloadTooLarge

#: Form fields besides the code may add this much to a request carrying a zip.
FORM_OVERHEAD_BYTES = 2 * 1024 * 1024


async def read_form(request: Request) -> FormData:
    """The posted form (urlencoded or multipart), after the CSRF check. A body larger than a
    zip may be is refused (``InvalidParameterValue.CodeSize``) without being kept."""
    limit = core_of(request).settings.max_zip_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        async for _ in request.stream():
            pass  # Read it all, so the browser gets the page rather than a reset connection.
        raise PayloadTooLarge(
            f"the upload is {declared} bytes; a code package may have at most "
            f"{core_of(request).settings.max_zip_bytes} bytes",
            code="InvalidParameterValue.CodeSize",
        )
    form = await request.form(max_part_size=limit)
    await check_csrf(request, form.get("csrf"))
    return form


def form_text(form: FormData, field: str) -> str:
    """A text field; a browser sends a textarea's line ends as CRLF."""
    value = form.get(field)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def form_upload(form: FormData, field: str) -> UploadFile | None:
    value = form.get(field)
    if isinstance(value, UploadFile) and value.filename:
        return value
    return None


def form_number(text: str, field: str, label: str) -> int | float | None:
    """A number typed in a form field, or None when the field is empty."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameter(f"{label} {text!r} is not a number", field=field) from None
    return int(value) if value.is_integer() else value


def form_integer(text: str, field: str, label: str) -> int | None:
    value = form_number(text, field, label)
    if isinstance(value, float):
        raise InvalidParameter(f"{label} {text.strip()!r} must be a whole number", field=field)
    return value


def parse_environment(text: str) -> dict[str, str]:
    """``KEY=VALUE`` per line; blank lines and ``#`` comments are skipped, spaces around the
    key and the value are trimmed. The engine checks names and sizes."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise InvalidParameter(
                f"environment line {number} ({line.strip()!r}) has no '=': write one "
                "KEY=VALUE per line",
                field="environment",
            )
        out[key.strip()] = value.strip()
    return out


def environment_text(env: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in env.items())


# Create -----------------------------------------------------------------------------------
