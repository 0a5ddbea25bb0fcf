"""The requirements check on real files: what passes, and every way out of the package
that must not (each refusal names the file and line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.deps.requirements import RequirementsError, check

REFUSED = {
    "x @ FILE:///etc\n": "outside the code package",
    "FILE:///etc/x.whl\n": "outside the code package",
    "file:///etc/hostname\n": "outside the code package",
    "../outside.whl\n": "outside the code package",
    "x @ git+file:///var/lib/repo\n": "only http(s) and git+http(s) URLs",
    "x @ git+ssh://git@example.com/private/repo\n": "only http(s) and git+http(s) URLs",
    "-f FILE:///etc\n": "outside the code package",
    "--find-links=File:///etc\n": "outside the code package",
    "-i file:///etc\n": "outside the code package",
    "-r a.txt --find-links /etc\n": "one option per line",
    "-r ../../etc/passwd\n": "outside the code package",
    "-c https://example.com/c.txt\n": "only files inside the code package",
    "-r missing.txt\n": "no such file in the package",
    "-e ./vendor\n": "editable installs",
    "--use-feature=fast-deps\n": "is not supported here",
    "six==1.16.0 --hash=sha256:00\n": "hash-checking",
    "--require-hashes\nsix==1.16.0\n": "hash-checking",
    "https://example.com/${HTTPS_PROXY}/x.whl\n": "environment variables",
    "not a [requirement\n": "is not a requirement",
}
ACCEPTED = {
    "six\nnumpy>=2,<3  # a comment\n": ((), False),
    "requests[socks] ; python_version >= '3.8'\n": ((), False),
    "x @ https://example.com/x.whl\n": ((), False),
    "git+https://github.com/example/repo\n": ((), False),
    "--only-binary :all:\nsix\n": (("--only-binary :all:",), False),
    "./vendor\n": ((), True),
    "wheels/x-1.0-py3-none-any.whl\n": ((), True),
    "-r a.txt\n-c a.txt\n": ((), False),
    "--extra-index-url https://mirror.example/simple\nsix \\\n  ==1.16.0\n": (
        ("--extra-index-url https://mirror.example/simple",), False,
    ),
}  # fmt: skip


def package(tmp_path: Path, text: str) -> Path:
    (tmp_path / "requirements.txt").write_text(text)
    (tmp_path / "a.txt").write_text("six\n")
    (tmp_path / "vendor").mkdir()
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "x-1.0-py3-none-any.whl").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("text", sorted(REFUSED))
def test_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(RequirementsError) as refused:
        check(package(tmp_path, text))
    assert REFUSED[text] in str(refused.value)
    assert "line 1" in str(refused.value)


@pytest.mark.parametrize("text", sorted(ACCEPTED))
def test_accepted(tmp_path: Path, text: str) -> None:
    checked = check(package(tmp_path, text))
    assert checked is not None
    assert (checked.sources, checked.local) == ACCEPTED[text]


def test_find_links_inside_the_package_becomes_absolute(tmp_path: Path) -> None:
    checked = check(package(tmp_path, "--find-links ./wheels\nsix\n"))
    assert checked is not None and checked.local
    assert checked.sources == (f"--find-links {(tmp_path / 'wheels').resolve()}",)


def test_index_options_can_be_denied(tmp_path: Path) -> None:
    with pytest.raises(RequirementsError) as refused:
        check(package(tmp_path, "--index-url https://x/simple\nsix\n"), allow_index_options=False)
    assert "not allowed in requirements files on this server" in str(refused.value)


def test_no_requirements_file(tmp_path: Path) -> None:
    assert check(tmp_path) is None
