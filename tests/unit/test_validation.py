"""Every validation rule for functions, with the error code a caller sees."""

import base64
import io
import zipfile

import pytest

from cumulo.engine import validation as v
from cumulo.errors import CumuloError
from cumulo.settings import Settings

S = Settings()


def code_of(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(CumuloError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value.code


@pytest.mark.parametrize("name", ["a", "1abc", "-ab", "a b", "x" * 61, "ab.c", "", None, 5])
def test_bad_names(name: object) -> None:
    assert code_of(v.check_name, name) == "InvalidParameterValue.Name"


@pytest.mark.parametrize("name", ["ab", "a-b_c9", "A" * 60, "etl_2"])
def test_good_names(name: str) -> None:
    assert v.check_name(name) == name


@pytest.mark.parametrize("handler", ["index", "index.", ".main", "index.main-x", "../x.main", 3])
def test_bad_handlers(handler: object) -> None:
    assert code_of(v.check_handler, handler) == "InvalidParameterValue.Handler"


def test_handler_file_mapping() -> None:
    assert v.handler_file("index.main_handler") == "index.py"
    assert v.handler_file("pkg/mod.run") == "pkg/mod.py"
    assert v.handler_file("pkg.mod.run") == "pkg/mod.py"


def test_handler_must_exist_in_package() -> None:
    package = v.zip_files({"other.py": "x = 1"}, S)
    assert code_of(v.check_handler_in_package, "index.main", package) == (
        "InvalidParameterValue.Handler"
    )
    v.check_handler_in_package("other.main", package)


def test_timeout_ranges_depend_on_mode() -> None:
    assert v.check_timeout(900, async_run=False, settings=S) == 900.0
    assert code_of(v.check_timeout, 901, async_run=False, settings=S) == (
        "InvalidParameterValue.TimeoutS"
    )
    assert v.check_timeout(86_400, async_run=True, settings=S) == 86_400.0
    assert code_of(v.check_timeout, 86_401, async_run=True, settings=S) == (
        "InvalidParameterValue.TimeoutS"
    )
    raised = S.with_changes(max_async_timeout_s=172_800.0)
    assert v.check_timeout(172_800, async_run=True, settings=raised) == 172_800.0
    assert code_of(v.check_timeout, 0, async_run=True, settings=S).endswith("TimeoutS")
    assert code_of(v.check_timeout, "10", async_run=True, settings=S).endswith("TimeoutS")
    assert code_of(v.check_timeout, True, async_run=True, settings=S).endswith("TimeoutS")


@pytest.mark.parametrize("memory", [63, 3073, 128.5, "128", True])
def test_memory_range(memory: object) -> None:
    assert code_of(v.check_int, memory, "memory_mb", 64, 3072) == "InvalidParameterValue.MemoryMb"


def test_environment_rules() -> None:
    assert v.check_environment({"A": "1"}, S) == {"A": "1"}
    assert code_of(v.check_environment, {"SCF_X": "1"}, S) == "InvalidParameterValue.Environment"
    assert code_of(v.check_environment, {"CUMULO_X": "1"}, S).endswith("Environment")
    assert code_of(v.check_environment, {"PATH": "/x"}, S).endswith("Environment")
    assert code_of(v.check_environment, {"1A": "1"}, S).endswith("Environment")
    assert code_of(v.check_environment, {"A": 1}, S).endswith("Environment")
    assert code_of(v.check_environment, ["A"], S).endswith("Environment")
    assert code_of(v.check_environment, {"BIG": "x" * 4096}, S).endswith("Environment")


def _zip(entries: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in entries.items():
            zf.writestr(name, text)
    return buf.getvalue()


def test_zip_rules() -> None:
    good = base64.b64encode(_zip({"index.py": "def main_handler(e, c): return 1"})).decode()
    assert v.package_code({"zip_base64": good}, S).size_bytes > 0
    assert code_of(v.package_code, {"zip_base64": "not base64!"}, S) == (
        "InvalidParameterValue.ZipFile"
    )
    not_zip = base64.b64encode(b"hello, this is not a zip").decode()
    assert code_of(v.package_code, {"zip_base64": not_zip}, S) == "InvalidParameterValue.ZipFile"
    evil = base64.b64encode(_zip({"../evil.py": "x"})).decode()
    assert code_of(v.package_code, {"zip_base64": evil}, S) == "InvalidParameterValue.ZipFile"
    small = S.with_changes(max_zip_bytes=100)
    big = base64.b64encode(_zip({"index.py": "x = 1\n" * 1000})).decode()
    assert code_of(v.package_code, {"zip_base64": big}, small) == "InvalidParameterValue.CodeSize"
    assert code_of(v.package_code, {"nothing": 1}, S) == "InvalidParameterValue.Code"
    assert code_of(v.package_code, {"files": {}}, S) == "InvalidParameterValue.Code"


def test_files_give_a_stable_hash() -> None:
    files = {"index.py": "def main_handler(e, c):\n    return 1\n"}
    assert v.zip_files(files, S).sha256 == v.zip_files(dict(files), S).sha256
