"""What runs inside an instance, called in-process: context, handler lookup, answers."""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from cumulo.errors import InvalidParameter
from cumulo.models import Function
from cumulo.runtime.base import RunRequest
from cumulo.runtime.codecache import check_entry_name
from cumulo.runtime.guest.cumulo_runtime import bootstrap
from cumulo.runtime.instance import env_key, instance_env


def _message(event: Any = None, deadline_in_s: float = 3.0) -> dict[str, Any]:
    return {
        "request_id": "req-1",
        "event": json.dumps(event),
        "context": {
            "function_name": "fn",
            "namespace": "default",
            "function_version": "$LATEST",
            "memory_limit_in_mb": 128,
            "time_limit_in_ms": 3000,
            "deadline": time.time() + deadline_in_s,
        },
    }


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("unit_handlers")
    monkeypatch.setitem(sys.modules, "unit_handlers", module)
    return module


def test_context_is_a_mapping_with_attributes() -> None:
    context = bootstrap.Context.build("req-1", _message()["context"])
    assert context.request_id == context["request_id"] == "req-1"
    assert context.memory_limit_in_mb == 128
    assert 2500 < context.get_remaining_time_in_millis() <= 3000
    assert isinstance(context.environment, dict)
    assert "deadline_s" not in context
    json.dumps(context)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = context.nope


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("index.main_handler", ("index", "main_handler")),
     ("pkg/mod.run", ("pkg.mod", "run")),
     ("a.b.c", ("a.b", "c"))],
)  # fmt: skip
def test_split_handler(spec: str, expected: tuple[str, str]) -> None:
    assert bootstrap.split_handler(spec) == expected


@pytest.mark.parametrize("spec", ["main", ".f", "index."])
def test_split_handler_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match=r"file\.function"):
        bootstrap.split_handler(spec)


def test_invoke_success_and_errors(handlers: types.ModuleType) -> None:
    def echo(event: Any, context: bootstrap.Context) -> Any:
        return {"event": event, "id": context.request_id}

    def boom(event: Any, context: bootstrap.Context) -> Any:
        raise KeyError("missing")

    async def later(event: Any, context: bootstrap.Context) -> Any:
        return event * 2

    def nan(event: Any, context: bootstrap.Context) -> Any:
        return float("nan")

    handlers.echo, handlers.boom, handlers.later, handlers.nan = echo, boom, later, nan

    ok = bootstrap.invoke(_message([1]), "unit_handlers.echo")
    assert ok == {"ok": True, "result": json.dumps({"event": [1], "id": "req-1"})}
    assert bootstrap.invoke(_message(21), "unit_handlers.later") == {"ok": True, "result": "42"}

    failed = bootstrap.invoke(_message(), "unit_handlers.boom")
    assert failed["ok"] is False
    assert failed["error"]["type"] == "KeyError"
    assert "in boom" in failed["error"]["traceback"]
    assert "cumulo_runtime/bootstrap.py" not in failed["error"]["traceback"]

    not_json = bootstrap.invoke(_message(), "unit_handlers.nan")
    assert not_json["error"]["type"] == "ResultNotSerializable"

    missing = bootstrap.invoke(_message(), "unit_handlers.absent")
    assert missing["error"]["type"] == "AttributeError"
    assert "'unit_handlers.absent' not found" in missing["error"]["message"]


def test_system_exit_propagates(handlers: types.ModuleType) -> None:
    def leave(event: Any, context: bootstrap.Context) -> Any:
        raise SystemExit(3)

    handlers.leave = leave
    with pytest.raises(SystemExit):
        bootstrap.invoke(_message(), "unit_handlers.leave")


def _request(**environment: str) -> RunRequest:
    function = Function(
        id="f", namespace="ns", name="fn", handler="index.main_handler", code_sha256="0" * 64,
        code_size_bytes=1, timeout_s=30.0, memory_mb=64, async_run=True, max_qps=1,
        max_concurrency=None, retry_attempts=0, max_event_age_s=1.0, environment=environment,
    )  # fmt: skip
    return RunRequest(
        function=function,
        code_dir=Path("/code"),
        request_id="r",
        event="null",
        timeout_s=5.0,
        platform_env={"REGION": "local"},
    )


def test_instance_env_precedence() -> None:
    env = instance_env(_request(PATH="/mine", HOME="/ignored", K="v"), Path("/inst"))
    assert env["PATH"] == "/mine"  # the function may change what is not the platform's
    assert env["HOME"] == "/inst" and env["TMPDIR"] == "/inst/tmp"
    assert env["K"] == "v" and env["REGION"] == "local"
    assert env["CUMULO_TIMEOUT_S"] == "30" and env["CUMULO_MEMORY_MB"] == "64"
    assert env["SCF_NAMESPACE"] == env["CUMULO_NAMESPACE"] == "ns"
    assert env["USER_CODE_ROOT"] == "/code"
    assert env_key(env) == env_key(instance_env(_request(PATH="/mine", K="v"), Path("/other")))


@pytest.mark.parametrize("name", ["index.py", "lib/a/b.py", "dir/", "a..b.py"])
def test_safe_zip_entry_names(name: str) -> None:
    check_entry_name(name)


@pytest.mark.parametrize("name", ["/abs.py", "../up.py", "a/../../b", "C:\\x.py", "..\\x"])
def test_unsafe_zip_entry_names(name: str) -> None:
    with pytest.raises(InvalidParameter):
        check_entry_name(name)
