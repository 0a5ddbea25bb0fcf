"""A package's ``requirements.txt``: found at its root, and checked before anything is
installed.

pip's format is accepted (pins, ranges, extras, markers, hashes, ``-r`` and ``-c`` of other
files in the package, wheels or source folders inside the package, URLs); the installer
parses it. What is checked here is what must not pass: a path (in a requirement, ``-r``,
``-c`` or ``--find-links``) that leaves the package, an editable install (the environment
is read-only), an option the installer does not take, and, when the operator says so,
index options inside the file (``--index-url`` and friends), so that functions use only the
operator's indexes. Each refusal says which line and why.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement

REQUIREMENTS_FILE = "requirements.txt"

#: Options that take a file of the package.
_FILE_OPTIONS = {"-r": "requirement", "--requirement": "requirement",
                 "-c": "constraint", "--constraint": "constraint"}  # fmt: skip
_INDEX_OPTIONS = frozenset({"-i", "--index-url", "--extra-index-url", "--no-index",
                            "-f", "--find-links", "--trusted-host"})  # fmt: skip
#: Options passed on to the install as they are (they decide which files are chosen).
_PLAIN_OPTIONS = frozenset({"--pre", "--prefer-binary", "--only-binary", "--no-binary"})
#: URL schemes fetched like any download; anything else (``git+ssh`` with the host's keys,
#: ``git+file`` of a folder outside the package, ...) is refused.
_REMOTE_SCHEMES = frozenset({"http", "https", "git+http", "git+https"})
_TAKES_VALUE = frozenset(
    {*_FILE_OPTIONS, *(_INDEX_OPTIONS - {"--no-index"}), "--only-binary", "--no-binary",
     "-e", "--editable"}
)  # fmt: skip
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MAX_FILES = 20


class RequirementsError(ValueError):
    """A requirements file cannot be used; the message names the file, line and reason."""


@dataclass(frozen=True, slots=True)
class CheckedRequirements:
    #: The package's ``requirements.txt``.
    path: Path
    #: Every file it reads (itself first), relative to the package.
    files: tuple[str, ...]
    #: How many requirement lines in all.
    count: int
    #: The index options the files give (``--index-url X`` ...; a folder of the package as
    #: an absolute path), in order: where packages come from is part of what an
    #: environment is, and its install needs them.
    sources: tuple[str, ...] = ()
    #: Something is installed from inside the package (a wheel, a folder, ``--find-links``
    #: of a folder in it): its environment is this package's alone.
    local: bool = False


@dataclass(slots=True)
class _Scan:
    root: Path
    allow_index: bool
    files: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    local: bool = False


def find(root: Path) -> Path | None:
    """The package's ``requirements.txt`` (at its root), or ``None``."""
    path = root / REQUIREMENTS_FILE
    return path if path.is_file() else None


def check(root: Path, *, allow_index_options: bool = True) -> CheckedRequirements | None:
    """Check the ``requirements.txt`` of the package unpacked at ``root`` and every file it
    includes. ``None`` when there is none. Raises :class:`RequirementsError`."""
    top = find(root)
    if top is None:
        return None
    scan = _Scan(root.resolve(), allow_index_options)
    count = _check_file(top.resolve(), scan)
    return CheckedRequirements(
        path=top,
        files=tuple(scan.files),
        count=count,
        sources=tuple(scan.sources),
        local=scan.local,
    )


def _check_file(path: Path, scan: _Scan) -> int:
    root = scan.root
    name = path.relative_to(root).as_posix()
    if name in scan.files:
        return 0
    scan.files.append(name)
    if len(scan.files) > _MAX_FILES:
        raise RequirementsError(f"{name}: more than {_MAX_FILES} requirement files are included")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequirementsError(f"{name}: cannot be read: {exc}") from exc
    count = 0
    for number, line in _logical_lines(text):
        where = f"{name} line {number}"
        if "${" in line:
            # The installer would put variables of the server's environment there.
            raise RequirementsError(f"{where}: environment variables (${{...}}) are not expanded")
        if line.startswith("-"):
            count += _check_option(line, where, path.parent, scan)
        else:
            scan.local |= _check_requirement(line, where, path.parent, root)
            count += 1
    return count


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """``(first line number, text)`` of each line, continuations joined and comments gone."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        line = raw
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, re.sub(r"(^|\s)#.*$", "", pending).strip()))
    return out


def _check_option(line: str, where: str, base: Path, scan: _Scan) -> int:
    root = scan.root
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise RequirementsError(f"{where}: cannot be read: {exc}") from exc
    option, _, inline = words[0].partition("=")
    takes = option in _TAKES_VALUE
    value = inline or (words[1] if takes and len(words) > 1 else "")
    if takes and not value:
        raise RequirementsError(f"{where}: {option} needs a value")
    if len(words) > (1 if inline or not takes else 2):
        raise RequirementsError(f"{where}: one option per line, please: {line!r}")
    if option in ("--hash", "--require-hashes"):
        raise _no_hashes(where)
    if option in ("-e", "--editable"):
        raise RequirementsError(
            f"{where}: editable installs ({option}) are not supported: the environment is "
            "read-only; list the package, or its folder inside the code package, instead"
        )
    if option in _FILE_OPTIONS:
        if _URL.match(value):
            raise RequirementsError(
                f"{where}: {option} {value}: only files inside the code package can be included"
            )
        included = _inside(base / value, root, where, option)
        if not included.is_file():
            raise RequirementsError(f"{where}: {option} {value}: no such file in the package")
        count = _check_file(included, scan)
        return count if _FILE_OPTIONS[option] == "requirement" else 0
    if option in _INDEX_OPTIONS:
        if not scan.allow_index:
            raise RequirementsError(
                f"{where}: {option} is not allowed in requirements files on this server; "
                "functions install from the indexes the operator set"
            )
        if option in ("-f", "--find-links", "-i", "--index-url", "--extra-index-url"):
            local = _local_path(value, base, where, option)
            if local is not None:
                value = str(_inside(local, root, where, option))
                scan.local = True
        scan.sources.append(f"{option} {value}".strip())
        return 0
    if option in _PLAIN_OPTIONS:
        scan.sources.append(f"{option} {value}".strip())
        return 0
    raise RequirementsError(
        f"{where}: option {option} is not supported here (supported: -r, -c, --index-url, "
        "--extra-index-url, --find-links, --no-index, --pre, --only-binary, --no-binary, "
        "--prefer-binary)"
    )


def _no_hashes(where: str) -> RequirementsError:
    return RequirementsError(
        f"{where}: hash-checking (--hash, --require-hashes) is not supported yet: the "
        "environment installs the resolved pins; drop the hashes (e.g. pip-compile without "
        "--generate-hashes)"
    )


def _local_path(target: str, base: Path, where: str, what: str) -> Path | None:
    """The path ``target`` names on this machine (a relative path from ``base``, or a
    ``file:`` URL), ``None`` for a URL fetched over the network. Raises for any other
    scheme."""
    if not _URL.match(target):
        return base / target
    parsed = urlparse(target)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        return Path(unquote(parsed.path))
    if scheme in _REMOTE_SCHEMES:
        return None
    raise RequirementsError(
        f"{where}: {what} {target}: only http(s) and git+http(s) URLs, or paths inside the "
        "code package, can be installed"
    )


def _check_requirement(line: str, where: str, base: Path, root: Path) -> bool:
    """Check one requirement line; whether it installs something from the package."""
    if re.search(r"\s--hash[=\s]", line):
        raise _no_hashes(where)
    spec = line
    head = spec.split(";")[0].strip()
    if _URL.match(head) or _looks_like_path(head):
        target = head
    else:
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            raise RequirementsError(f"{where}: {spec!r} is not a requirement: {exc}") from exc
        if requirement.url is None:
            return False
        target = requirement.url
    path = _local_path(target, base, where, "a requirement at")
    if path is None:
        return False  # a remote archive or VCS link: fetched like any download
    found = _inside(path, root, where, "a local path")
    if not found.exists():
        raise RequirementsError(f"{where}: {target}: no such file or folder in the package")
    return True


def _looks_like_path(head: str) -> bool:
    """A bare path (``./vendor/pkg``, ``wheels/x.whl``), not ``name[extra] @ url``."""
    if head.startswith((".", "/", "~")) or head.lower().startswith("file:"):
        return True
    if "@" in head or _URL.match(head):
        return False
    return "/" in head or head.endswith((".whl", ".tar.gz", ".zip", ".tar.bz2"))


def _inside(path: Path, root: Path, where: str, what: str) -> Path:
    """``path`` (absolute) resolved, if it stays inside the package at ``root``."""
    resolved = path.resolve()
    if str(path).startswith("~") or (resolved != root and root not in resolved.parents):
        raise RequirementsError(
            f"{where}: {what} {path} is outside the code package; only paths inside it "
            "can be installed"
        )
    return resolved
