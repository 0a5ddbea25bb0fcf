"""The installer seam, and its implementation on uv.

An :class:`Installer` resolves a requirements file into a pinned set (the lock, which keys
an environment) and installs a lock into a folder. :class:`UvInstaller` runs the ``uv``
binary shipped on PyPI as a subprocess: ``uv pip compile`` and ``uv pip install --target``,
for cumulo's clean interpreter, with the host's index settings (:mod:`.indexes`) given as
options, pip's index semantics (``--index-strategy unsafe-best-match``: the best version on
any index, as pip picks), no uv configuration file of the package or the host
(``--no-config``), bytecode compiled at install (the trees are read-only, and a zygote
imports numpy and pandas in a quarter of the time with it), a ``HOME`` of its own, and
nothing of the server's environment but ``PATH``, the locale, proxy settings and the CA
bundle. Index URLs go in its environment, not on its command line.

Every line the installer prints goes to the caller's sink as it comes (the build log).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cumulo.deps.indexes import IndexConfig

#: One line of the installer's output (without the newline).
LineSink = Callable[[str], None]

DEFAULT_INSTALL_TIMEOUT_S = 600.0
#: Variables of the server's environment the installer may see.
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
               "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE")  # fmt: skip
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;]+)")
#: The box-drawing and bullet characters uv decorates its errors with.
_DECORATION = re.compile(r"^[\s×╰─▶│├┬┼┴╭╮╯╮•\-]+")


class InstallError(Exception):
    """Resolving or installing failed; the message is the installer's own account of why
    (e.g. "No solution found when resolving dependencies: Because nosuchpkg was not found in
    the package registry ...")."""


@dataclass(frozen=True, slots=True)
class Installed:
    size_bytes: int
    #: ``(name, version)`` of every package in the folder.
    packages: tuple[tuple[str, str], ...]


class Installer(Protocol):
    async def resolve(self, requirements: Path, *, cwd: Path, on_line: LineSink) -> str:
        """The pinned set that ``requirements`` (read in ``cwd``, the unpacked package)
        resolves to for the clean interpreter: one ``name==version`` (or ``name @ url``)
        per line, sorted. Raises :class:`InstallError`."""

    async def install(self, lock: str, target: Path, *, cwd: Path, on_line: LineSink) -> Installed:
        """Install exactly ``lock`` (nothing else) into ``target``, a new folder. Raises
        :class:`InstallError`; ``target`` may then hold a partial install."""

    def source_args(self) -> list[str]:
        """The options that say where packages come from (part of an environment's key)."""


def pinned_packages(lock: str) -> tuple[tuple[str, str], ...]:
    """``(name, version)`` of each pin of a lock (``name @ url`` lines give ``url``)."""
    out = []
    for line in lock.splitlines():
        match = _PIN.match(line)
        if match:
            out.append((match.group(1), match.group(2)))
        elif " @ " in line:
            name, _, url = line.partition(" @ ")
            out.append((name.strip(), url.strip()))
    return tuple(out)


def installed_packages(target: Path) -> tuple[tuple[str, str], ...]:
    """``(name, version)`` of every distribution installed in ``target`` (from its
    ``*.dist-info/METADATA``), by name."""
    found = []
    for info in target.glob("*.dist-info"):
        name = version = ""
        with contextlib.suppress(OSError):
            for line in (info / "METADATA").read_text(errors="replace").splitlines():
                if not line:
                    break  # the headers end at the first blank line
                key, _, value = line.partition(": ")
                if key == "Name":
                    name = value.strip()
                elif key == "Version":
                    version = value.strip()
        if name:
            found.append((name, version))
    return tuple(sorted(found, key=lambda p: p[0].lower()))


def tree_size(root: Path) -> int:
    """Bytes of every file under ``root`` (links not followed)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


class UvInstaller:
    """See the module docstring. ``uv`` is the binary, ``python`` the clean interpreter,
    ``cache_dir`` uv's cache (``None``: uv's default, shared with the host's own uv).
    ``home`` is the installer's ``HOME`` (a folder of its own: a package's build script must
    not find the operator's ``.netrc``, SSH keys or git credentials).
    ``indexes`` may be replaced before a build starts (the server reads pip's settings when
    it starts)."""

    def __init__(
        self,
        *,
        uv: str,
        python: Path,
        indexes: IndexConfig,
        cache_dir: Path | None = None,
        timeout_s: float = DEFAULT_INSTALL_TIMEOUT_S,
        home: Path | None = None,
    ) -> None:
        self._uv = uv
        self._python = python
        self.indexes = indexes
        self._cache_dir = cache_dir
        self._timeout_s = timeout_s
        self._home = home

    def source_args(self) -> list[str]:
        return self.indexes.fingerprint()

    def _common(self) -> list[str]:
        args = ["--python", str(self._python), "--no-config", "--color", "never"]
        args += ["--index-strategy", "unsafe-best-match", *self.indexes.installer_args()]
        if self._cache_dir is not None:
            args += ["--cache-dir", str(self._cache_dir)]
        return args

    async def resolve(self, requirements: Path, *, cwd: Path, on_line: LineSink) -> str:
        out = await self._run(
            ["pip", "compile", str(requirements), "--no-header", "--no-annotate",
             *self._common()],
            cwd=cwd, on_line=on_line, what="resolving",
        )  # fmt: skip
        pins = sorted(
            {line.strip() for line in out.splitlines() if line.strip() and line[0] not in "# "}
        )
        return "".join(f"{pin}\n" for pin in pins)

    async def install(self, lock: str, target: Path, *, cwd: Path, on_line: LineSink) -> Installed:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="cumulo-lock-") as file:
            file.write(lock)
            file.flush()
            await self._run(
                ["pip", "install", "--target", str(target), "-r", file.name, "--no-deps",
                 "--compile-bytecode", *self._common()],
                cwd=cwd, on_line=on_line, what="installing",
            )  # fmt: skip
        size = await asyncio.to_thread(tree_size, target)
        packages = await asyncio.to_thread(installed_packages, target)
        return Installed(size_bytes=size, packages=packages or pinned_packages(lock))

    async def _run(self, args: Sequence[str], *, cwd: Path, on_line: LineSink, what: str) -> str:
        """Run uv; its stdout, while each stderr line goes to ``on_line``."""
        env = {key: os.environ[key] for key in _PASSED_ENV if key in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(self.indexes.installer_env())
        if self._home is not None:
            self._home.mkdir(parents=True, exist_ok=True, mode=0o700)
            env["HOME"] = str(self._home)
        if self.indexes.cert:
            env["SSL_CERT_FILE"] = self.indexes.cert
        try:
            process = await asyncio.create_subprocess_exec(
                self._uv,
                *args,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise InstallError(f"cannot run the installer {self._uv}: {exc}") from exc
        assert process.stdout is not None and process.stderr is not None
        errors: list[str] = []

        async def relay(stream: asyncio.StreamReader) -> None:
            while raw := await stream.readline():
                line = raw.decode("utf-8", "replace").rstrip("\n")
                errors.append(line)
                del errors[:-200]
                on_line(line)

        relaying = asyncio.create_task(relay(process.stderr))
        reading = asyncio.create_task(process.stdout.read())
        try:
            await asyncio.wait_for(asyncio.gather(relaying, reading, process.wait()),
                                   self._timeout_s)  # fmt: skip
        except TimeoutError:
            raise InstallError(
                f"{what} timed out after {self._timeout_s:g} s (the server's install timeout)"
            ) from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            for task in (relaying, reading):
                task.cancel()
        if process.returncode != 0:
            raise InstallError(summarize(errors) or f"{what} failed (exit {process.returncode})")
        return reading.result().decode("utf-8", "replace")


def find_uv() -> str:
    """The ``uv`` binary of the PyPI package ``uv`` (a dependency of cumulo)."""
    import uv

    return str(uv.find_uv_bin())


def summarize(lines: Sequence[str]) -> str:
    """The installer's error as one line: from its first ``error:`` on, undecorated."""
    start = next(
        (i for i, line in enumerate(lines) if line.lstrip().startswith(("error:", "×"))), None
    )
    if start is None:
        start = max(0, len(lines) - 5)
    parts = []
    for line in lines[start:]:
        text = _DECORATION.sub("", line.strip())
        text = text.removeprefix("error: ").removeprefix("cause: ").strip()
        if text and not text.startswith("hint:"):
            parts.append(text)
    message = ": ".join(parts)
    return message[:2000]
