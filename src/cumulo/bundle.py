"""Turn what a user points at (a folder, a ``.zip``, a single ``.py`` file) into a function's
config and code package, and deploy it; used by ``cumulo deploy`` and by the server's
``--examples``.

A folder may hold a ``cumulo.json`` with the function's defaults::

    {"name": "etl", "handler": "index.main_handler", "timeout_s": 3600, "memory_mb": 256,
     "async_run": true, "environment": {"LEVEL": "info"}, "description": "..."}

The zip is deterministic (sorted entries, fixed timestamps), so the same sources always give
the same ``code_sha256``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cumulo.client import ApiError, Client, Progress

#: A function's config (the REST API's function fields, ``name`` included) and its zip.
Bundle = tuple[dict[str, Any], bytes]

CONFIG_FILE = "cumulo.json"
DEFAULT_HANDLER = "index.main_handler"
#: The keys ``cumulo.json`` may hold: the function fields of the REST API, but ``code``.
CONFIG_KEYS = frozenset(
    {
        "name",
        "handler",
        "timeout_s",
        "memory_mb",
        "environment",
        "async_run",
        "max_qps",
        "max_concurrency",
        "retry_attempts",
        "max_event_age_s",
        "description",
        "layers",
        "install_dependency",
    }
)
#: Directory names never packaged: caches, virtualenvs, version control.
SKIPPED_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)
SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})
SKIPPED_FILES = frozenset({".DS_Store"})
#: 1980-01-01, the earliest time a zip entry can hold.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class BundleError(ValueError):
    """The path cannot be packaged: missing, empty, not a zip, or a bad ``cumulo.json``.
    The message says which and what to do."""


def load_function_dir(path: Path) -> Bundle:
    """The config of the function in the folder ``path`` (its ``cumulo.json``, with
    ``name`` defaulting to the folder's name) and the folder zipped, without
    ``cumulo.json``, ``__pycache__``, compiled files and version-control folders.
    Raises :class:`BundleError`."""
    if not path.is_dir():
        raise BundleError(f"{path} is not a folder")
    config = read_config(path / CONFIG_FILE)
    config.setdefault("name", path.resolve().name)
    return config, zip_dir(path)


def load_path(path: Path) -> Bundle:
    """Like :func:`load_function_dir`, but ``path`` may also be a ``.zip`` (sent as it is;
    config ``{"name": <stem>}``) or a single ``.py`` file (packaged alone; its handler
    defaults to ``<stem>.main_handler``). Raises :class:`BundleError`."""
    if path.is_dir():
        return load_function_dir(path)
    if not path.is_file():
        raise BundleError(f"{path} does not exist; give a folder, a .zip or a .py file")
    if path.suffix == ".py":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            _write(archive, path.name, path.read_bytes())
        return {"name": path.stem, "handler": f"{path.stem}.main_handler"}, buffer.getvalue()
    if not zipfile.is_zipfile(path):
        raise BundleError(f"{path} is neither a folder, a .zip nor a .py file")
    return {"name": path.stem}, path.read_bytes()


def examples_in(root: Path) -> list[Path]:
    """The sub-folders of ``root`` that hold a ``cumulo.json``, by name."""
    if not root.is_dir():
        raise BundleError(f"{root} is not a folder of examples")
    return sorted(child for child in root.iterdir() if (child / CONFIG_FILE).is_file())


def read_config(path: Path) -> dict[str, Any]:
    """The object in the ``cumulo.json`` at ``path``, ``{}`` when there is none. Raises
    :class:`BundleError` for bad JSON, a non-object or an unknown key (a typo such as
    ``timeout`` for ``timeout_s`` would otherwise be silently ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise BundleError(f"{path} must hold a JSON object, not {type(config).__name__}")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        allowed = ", ".join(sorted(CONFIG_KEYS))
        raise BundleError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
    return config


def zip_dir(root: Path) -> bytes:
    """The files under ``root`` as a deterministic zip (paths relative to ``root``, ``/``
    separated). Raises :class:`BundleError` when nothing is left to package."""
    buffer = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in _package_files(root):
            _write(archive, file.relative_to(root).as_posix(), file.read_bytes())
            count += 1
    if count == 0:
        raise BundleError(f"{root} holds no file to package")
    return buffer.getvalue()


def _package_files(root: Path, *, top: bool = True) -> Iterator[Path]:
    for child in sorted(root.iterdir()):
        if child.is_dir():
            if child.name not in SKIPPED_DIRS:
                yield from _package_files(child, top=False)
        elif child.suffix in SKIPPED_SUFFIXES or child.name in SKIPPED_FILES:
            continue
        elif not (top and child.name == CONFIG_FILE):
            yield child


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


# -- deploying ------------------------------------------------------------------------


async def deploy_bundle(
    client: Client, config: dict[str, Any], zip_bytes: bytes, progress: Progress | None = None
) -> tuple[str, dict[str, Any]]:
    """Create the function ``config["name"]``, or update the existing one (code and handler
    in one PUT, then the rest of the config in one PATCH). Returns ``("created" |
    "updated", function)``. Raises ``ApiError`` 409 ``UnsupportedOperation.AsyncRunEnable``
    before uploading anything when ``async_run`` would change."""
    name = config.pop("name")
    try:
        existing: dict[str, Any] | None = await client.get_function(name)
    except ApiError as exc:
        if exc.status != 404:
            raise
        existing = None
    if existing is None:
        try:
            created = await client.create_function(
                name, zip_bytes=zip_bytes, progress=progress, **config
            )
            return "created", created
        except ApiError as exc:
            if exc.status != 409:
                raise
            # Somebody created it meanwhile: update it as if it had been there.
            existing = await client.get_function(name)
    async_run = config.pop("async_run", None)
    if async_run is not None and bool(async_run) != bool(existing.get("async_run")):
        raise ApiError(
            409,
            "UnsupportedOperation.AsyncRunEnable",
            f"{name} was created with async_run={existing.get('async_run')}; async_run "
            f"never changes: `cumulo rm {name}` and deploy again",
        )
    handler = config.pop("handler", None)
    install = bool(config.pop("install_dependency", True))
    # Config first: new layers, limits and variables are in place when the new code's build
    # applies (a change of config never undoes it: writes are fenced on the revision).
    if config:
        await client.update_function(name, **config)
    function = await client.put_code(
        name, zip_bytes, handler=handler, progress=progress, install_dependency=install
    )
    return "updated", function
