"""The OpenAPI document lists every REST route the server serves (and nothing it does not)."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from cumulo.api.ops import openapi_document
from cumulo.app import create_app
from cumulo.settings import Settings


def _shape(path: str) -> str:
    return re.sub(r"{\w+}", "{}", path)


def test_every_v1_route_is_documented(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"), token="t")
    served = {
        (method.lower(), _shape(route.path))
        for route in app.app.routes  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.path.startswith("/v1/")
        for method in route.methods or ()
        if method != "HEAD"
    }
    served.add(("post", _shape("/v1/namespaces/{ns}/functions/{fn}/invocations")))  # fast path
    documented = {
        (method, _shape(path))
        for path, operations in openapi_document()["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    }
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
