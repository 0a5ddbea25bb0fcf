"""cumulo's clean interpreter: the Python that zygotes and instances run on.

It is a virtual environment of the server's own base interpreter with nothing installed in
it but one ``.pth`` file naming the runtime's folder (``runtime/guest``). Started with
``-I`` (isolated), its ``sys.path`` is the standard library and :mod:`cumulo_runtime`; the
function's code, environment and layers are added by the runtime itself. None of the
server's packages are on it, so ``import starlette`` fails in a function that did not ask for
it, and a function that pins another version of one of them gets its own. A handler's child
``python`` (``sys.executable``, or ``python3`` on its ``PATH``) is this interpreter too.

:func:`locate` says where it is (no I/O); :func:`ensure` makes it once per data dir and
checks it on every start (a few milliseconds); it is remade when the server's base
interpreter or cumulo's runtime folder moved.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: The runtime's folder: it holds only the ``cumulo_runtime`` package.
GUEST_DIR = Path(__file__).resolve().parent / "guest"
_PTH_NAME = "cumulo-runtime.pth"


@dataclass(frozen=True, slots=True)
class Interpreter:
    #: The folder of the virtual environment.
    root: Path
    #: Its ``python`` (what zygotes and instances are started with).
    python: Path
    #: Its ``bin`` folder (first on an instance's ``PATH``).
    bin_dir: Path
    #: What an installed package set depends on: implementation, version, ABI and
    #: platform, e.g. ``cpython-3.11-cp311-linux-x86_64``.
    tag: str


def interpreter_tag() -> str:
    """The part of an environment's key that the interpreter decides (see
    :class:`Interpreter`)."""
    impl = sys.implementation
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"{impl.name}-{version}-{impl.cache_tag}-{sysconfig.get_platform()}"


def locate(root: Path) -> Interpreter:
    """The clean interpreter that lives (or will, after :func:`ensure`) under ``root``."""
    return Interpreter(root=root, python=root / "bin" / "python", bin_dir=root / "bin",
                       tag=interpreter_tag())  # fmt: skip


def ensure(interpreter: Interpreter) -> None:
    """Make (or check) the clean interpreter. Idempotent; safe to call on every start.
    Raises ``OSError`` when it cannot be made."""
    root = interpreter.root
    site_packages = _site_packages(root)
    pth = site_packages / _PTH_NAME
    wanted = f"{GUEST_DIR}\n"
    marker = root / ".cumulo-base"
    base = _base_fingerprint()
    if interpreter.python.exists() and _read(pth) == wanted and _read(marker) == base:
        return
    if root.exists():
        shutil.rmtree(root)
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(root)
    site_packages.mkdir(parents=True, exist_ok=True)
    pth.write_text(wanted)
    marker.write_text(base)
    logger.info("made the clean interpreter in %s", root)


def _site_packages(root: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return root / "lib" / version / "site-packages"


def _base_fingerprint() -> str:
    """Which base interpreter the environment was made from (it is remade if that moved)."""
    base = getattr(sys, "_base_executable", sys.executable)
    return hashlib.sha256(f"{base}\n{sys.version}".encode()).hexdigest() + "\n"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
