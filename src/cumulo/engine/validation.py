"""Validation of function configuration and code packages.

Every rule raises :class:`InvalidParameter` with the code ``InvalidParameterValue.<Field>``
and a message that says what was wrong and what is allowed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cumulo.errors import InvalidParameter, LimitExceeded, PayloadTooLarge
from cumulo.settings import Settings

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,59}$")
HANDLER_RE = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_./-]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV_PREFIXES = ("CUMULO_", "SCF_", "TENCENTCLOUD_", "QCLOUD_")
RESERVED_ENV_NAMES = frozenset({"USER_CODE_ROOT", "TMPDIR", "HOME", "PYTHONPATH", "PATH"})
MEMORY_MIN_MB, MEMORY_MAX_MB = 64, 3072
RETRY_MAX = 8
MAX_EVENT_AGE_RANGE_S = (60.0, 6 * 3600.0)
MAX_QPS_RANGE = (1, 1_000_000)
DESCRIPTION_MAX = 1000

#: Fixed timestamp for zips made from ``{"files": ...}`` so equal files give equal hashes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


#: Entries a code package may hold (a guard against packages of millions of empty files).
MAX_ZIP_ENTRIES = 100_000
REQUIREMENTS_FILE = "requirements.txt"


@dataclass(frozen=True, slots=True)
class CodePackage:
    zip_bytes: bytes
    sha256: str
    #: What it takes on disk once unpacked (the sum of its entries' sizes).
    unpacked_bytes: int = 0
    #: It has a ``requirements.txt`` at its root.
    has_requirements: bool = False

    @property
    def size_bytes(self) -> int:
        return len(self.zip_bytes)


def check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidParameter(
            f"{field} {name!r} is invalid: use 2-60 characters, a letter first, then letters, "
            "digits, '-' or '_'",
            field=field,
        )
    return name


def check_handler(handler: object) -> str:
    if not isinstance(handler, str) or not HANDLER_RE.fullmatch(handler) or ".." in handler:
        raise InvalidParameter(
            f"handler {handler!r} is invalid: use 'file.function', e.g. 'index.main_handler'",
            field="handler",
        )
    return handler


def handler_file(handler: str) -> str:
    """``index.main_handler`` → ``index.py``; ``pkg/mod.run`` → ``pkg/mod.py``."""
    module, _, _ = handler.rpartition(".")
    return module.replace(".", "/") + ".py" if "/" not in module else module + ".py"


def check_timeout(timeout_s: object, *, async_run: bool, settings: Settings) -> float:
    limit = settings.max_async_timeout_s if async_run else settings.max_sync_timeout_s
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
        raise InvalidParameter("timeout_s must be a number of seconds", field="timeout_s")
    if not 1 <= timeout_s <= limit:
        why = (
            "for an async-run function"
            if async_run
            else "for a normal function (enable async_run for longer runs)"
        )
        raise InvalidParameter(
            f"timeout_s {timeout_s} is out of range: 1 to {limit:g} seconds {why}",
            field="timeout_s",
        )
    return float(timeout_s)


def check_int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"{field} must be an integer", field=field)
    if not low <= value <= high:
        raise InvalidParameter(f"{field} {value} is out of range: {low} to {high}", field=field)
    return value


def check_environment(env: object, settings: Settings) -> dict[str, str]:
    if not isinstance(env, Mapping):
        raise InvalidParameter("environment must be an object of strings", field="environment")
    out: dict[str, str] = {}
    size = 0
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
            raise InvalidParameter(
                f"environment variable name {key!r} is invalid: letters, digits and '_', "
                "not starting with a digit",
                field="environment",
            )
        if key.startswith(RESERVED_ENV_PREFIXES) or key in RESERVED_ENV_NAMES:
            raise InvalidParameter(
                f"environment variable {key!r} is reserved by the platform (reserved: "
                f"{', '.join(p + '*' for p in RESERVED_ENV_PREFIXES)}, "
                f"{', '.join(sorted(RESERVED_ENV_NAMES))})",
                field="environment",
            )
        if not isinstance(value, str):
            raise InvalidParameter(
                f"environment variable {key!r} must be a string", field="environment"
            )
        size += len(key.encode()) + len(value.encode())
        out[key] = value
    if size > settings.max_environment_bytes:
        raise InvalidParameter(
            f"environment is {size} bytes; at most {settings.max_environment_bytes} are allowed",
            field="environment",
        )
    return out


def check_description(value: object) -> str:
    if not isinstance(value, str) or len(value) > DESCRIPTION_MAX:
        raise InvalidParameter(
            f"description must be a string of at most {DESCRIPTION_MAX} characters",
            field="description",
        )
    return value


def package_code(code: object, settings: Settings) -> CodePackage:
    """Turn ``{"files": {path: text}}`` or ``{"zip_base64": "..."}`` into a checked zip."""
    if not isinstance(code, Mapping) or not ({"files", "zip_base64"} & set(code)):
        raise InvalidParameter(
            'code must be {"files": {"index.py": "..."}} or {"zip_base64": "..."}', field="code"
        )
    if "files" in code:
        return zip_files(code["files"], settings)
    raw = code["zip_base64"]
    if not isinstance(raw, str):
        raise InvalidParameter("code.zip_base64 must be a base64 string", field="zip_file")
    if len(raw) * 3 // 4 > settings.max_zip_bytes + 3:
        raise _too_large(len(raw) * 3 // 4, settings)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameter(
            f"code.zip_base64 is not valid base64: {exc}", field="zip_file"
        ) from exc
    return check_zip(data, settings)


def zip_files(files: object, settings: Settings) -> CodePackage:
    if not isinstance(files, Mapping) or not files:
        raise InvalidParameter("code.files must be a non-empty object of path: text", field="code")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in sorted(files.items()):
            if not isinstance(path, str) or not isinstance(text, str):
                raise InvalidParameter("code.files maps paths to text", field="code")
            _check_member(path)
            info = zipfile.ZipInfo(path, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, text)
    return check_zip(buf.getvalue(), settings)


def check_zip(data: bytes, settings: Settings) -> CodePackage:
    if len(data) > settings.max_zip_bytes:
        raise _too_large(len(data), settings)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            entries = zf.infolist()
            unpacked = sum(entry.file_size for entry in entries)
            # Sizes are checked before anything is decompressed: a zip bomb is refused here,
            # at upload, and never unpacked (extraction cannot outgrow the declared sizes).
            check_unpacked_size(unpacked, settings)
            if len(entries) > MAX_ZIP_ENTRIES:
                raise LimitExceeded(
                    f"the code package has {len(entries)} entries; at most {MAX_ZIP_ENTRIES} "
                    "are allowed",
                    code="LimitExceeded.CodeEntries",
                )
            bad = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InvalidParameter(f"code is not a valid zip file: {exc}", field="zip_file") from exc
    if bad is not None:
        raise InvalidParameter(f"code zip is corrupt at {bad!r}", field="zip_file")
    for entry in entries:
        _check_member(entry.filename)
    return CodePackage(
        zip_bytes=data,
        sha256=hashlib.sha256(data).hexdigest(),
        unpacked_bytes=unpacked,
        has_requirements=any(e.filename == REQUIREMENTS_FILE for e in entries),
    )


def check_unpacked_size(unpacked_bytes: int, settings: Settings) -> None:
    """Raise ``LimitExceeded`` (``LimitExceeded.CodeUnpackedSize``) for a package that
    would unpack past the server's limit on a function's files."""
    limit = settings.max_function_bytes
    if unpacked_bytes > limit:
        raise LimitExceeded(
            f"the code package unpacks to {megabytes(unpacked_bytes)}, over the limit of "
            f"{megabytes(limit)} for a function's code, layers and environment together "
            "(the server's --max-function-mb)",
            code="LimitExceeded.CodeUnpackedSize",
        )


def check_function_size(parts: dict[str, int], settings: Settings) -> None:
    """Raise ``LimitExceeded`` (``LimitExceeded.FunctionSize``) when the parts of a
    function (``{"code": bytes, "layer x:1": bytes, "environment": bytes, ...}``) together
    pass the server's limit; the message lists them."""
    limit = settings.max_function_bytes
    total = sum(parts.values())
    if total > limit:
        shown = ", ".join(f"{name} {megabytes(size)}" for name, size in parts.items())
        raise LimitExceeded(
            f"the function would take {megabytes(total)} unpacked ({shown}), over the limit of "
            f"{megabytes(limit)} (the server's --max-function-mb)",
            code="LimitExceeded.FunctionSize",
        )


def megabytes(size: int) -> str:
    """``12.3 MB`` (decimal megabytes, as the limits are given)."""
    return f"{size / 1e6:.1f} MB"


def check_handler_in_package(handler: str, package: CodePackage) -> None:
    with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as zf:
        names = set(zf.namelist())
    wanted = handler_file(handler)
    if wanted not in names:
        listed = ", ".join(sorted(n for n in names if n.endswith(".py"))[:10]) or "none"
        raise InvalidParameter(
            f"handler {handler!r} needs the file {wanted!r} in the code package "
            f"(python files found: {listed})",
            field="handler",
        )


def _check_member(path: str) -> None:
    parts = path.replace("\\", "/").split("/")
    if path.startswith("/") or ".." in parts or not path:
        raise InvalidParameter(
            f"code path {path!r} is not allowed: paths must be relative, without '..'",
            field="zip_file",
        )


def _too_large(size: int, settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"code package is {size} bytes; at most {settings.max_zip_bytes} bytes are allowed",
        code="InvalidParameterValue.CodeSize",
    )


def as_dict(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object")
    return body
