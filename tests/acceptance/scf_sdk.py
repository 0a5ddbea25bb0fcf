"""The official Tencent Cloud SCF SDK pointed at a test server (imported by the tests as a
module): an API key made through the REST API, and an ``ScfClient`` signing with it."""

from __future__ import annotations

import base64
import io
import zipfile
from typing import Any

import httpx
from cumulo_server import ServerProcess
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import models, scf_client

__all__ = ["make_key", "models", "sdk_client", "zip_b64"]


def make_key(server: ServerProcess, namespace: str | None = None) -> tuple[str, str]:
    """A new (SecretId, SecretKey), for the admin or confined to ``namespace``."""
    answer = httpx.post(
        server.url + "/v1/keys",
        json={"namespace": namespace, "description": "tests"},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
        verify=server.verify,
    )
    answer.raise_for_status()
    body = answer.json()
    return body["secret_id"], body["secret_key"]


def sdk_client(
    server: ServerProcess,
    key: tuple[str, str] | None = None,
    region: str = "ap-guangzhou",
    method: str = "POST",
) -> scf_client.ScfClient:
    secret_id, secret_key = key or make_key(server)
    http = HttpProfile(
        endpoint=f"127.0.0.1:{server.port}", protocol="http", reqMethod=method, reqTimeout=60
    )
    profile = ClientProfile(httpProfile=http, signMethod="TC3-HMAC-SHA256")
    return scf_client.ScfClient(credential.Credential(secret_id, secret_key), region, profile)


def zip_b64(files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buffer.getvalue()).decode()


def request(cls_name: str, params: dict[str, Any]) -> Any:
    """A request model of the SDK, filled from ``params`` as the SDK users do."""
    import json

    model = getattr(models, cls_name)()
    model.from_json_string(json.dumps(params))
    return model
