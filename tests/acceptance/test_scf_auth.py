"""Who may call the SCF API, shown against a real server with requests signed by the
official SDK: every refusal answers HTTP 200 with SCF's error envelope and code, exactly
as Tencent Cloud does, so the SDK raises it as a ``TencentCloudSDKException``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
from cumulo_server import ServerProcess
from scf_sdk import make_key, request, sdk_client
from tencentcloud.common import abstract_client
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.scf.v20180416 import scf_client

pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

MAX_SKEW_S = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module, with a short clock-skew window (to show replays refused
    without waiting five minutes)."""
    srv = ServerProcess(
        tmp_path_factory.mktemp("auth") / "data", ["--scf-max-skew", str(MAX_SKEW_S)]
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def signed(client: scf_client.ScfClient, action: str, params: dict[str, object]) -> RequestInternal:
    """A request built and signed by the SDK, not sent."""
    req = RequestInternal(client._get_endpoint(), "POST", client._requestPath, header={})
    client._build_req_with_tc3_signature(action, params, req)
    return req


def send(server: ServerProcess, req: RequestInternal, body: bytes | None = None) -> httpx.Response:
    data = req.data.encode() if isinstance(req.data, str) else req.data
    return httpx.post(
        server.url + "/", content=data if body is None else body, headers=dict(req.header)
    )


def error_code(answer: httpx.Response) -> str:
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    envelope = answer.json()["Response"]
    assert envelope["RequestId"]
    return str(envelope["Error"]["Code"]) if "Error" in envelope else ""


def test_a_signed_call_answers_the_sdk_envelope(server: ServerProcess) -> None:
    client = sdk_client(server)
    answer = send(server, signed(client, "ListFunctions", {}))
    assert error_code(answer) == ""
    assert answer.json()["Response"]["TotalCount"] == 0


def test_an_unknown_secret_id(server: ServerProcess) -> None:
    client = sdk_client(server, key=("AKIDnotakeyofthisserver000000000000", "whatever"))
    with pytest.raises(TencentCloudSDKException) as caught:
        client.ListFunctions(request("ListFunctionsRequest", {}))
    assert caught.value.code == "AuthFailure.SecretIdNotFound"


def test_a_wrong_secret_key(server: ServerProcess) -> None:
    secret_id, _ = make_key(server)
    client = sdk_client(server, key=(secret_id, "x" * 40))
    with pytest.raises(TencentCloudSDKException) as caught:
        client.ListFunctions(request("ListFunctionsRequest", {}))
    assert caught.value.code == "AuthFailure.SignatureFailure"


def test_a_tampered_body(server: ServerProcess) -> None:
    client = sdk_client(server)
    req = signed(client, "ListFunctions", {"Namespace": "default"})
    assert error_code(send(server, req)) == ""
    tampered = json.dumps({"Namespace": "other"}).encode()
    assert error_code(send(server, req, tampered)) == "AuthFailure.SignatureFailure"


def test_a_tampered_action_header(server: ServerProcess) -> None:
    """Only content-type and host are signed (as the SDK signs), so the action is bound to
    the request through the body and timestamp; a changed signed header is caught."""
    client = sdk_client(server)
    req = signed(client, "ListFunctions", {})
    req.header["Host"] = "elsewhere.example:443"
    assert error_code(send(server, req)) == "AuthFailure.SignatureFailure"


def test_an_expired_timestamp(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk_client(server)
    past = time.time() - 10 * MAX_SKEW_S
    monkeypatch.setattr(abstract_client, "time", SimpleNamespace(time=lambda: past))
    with pytest.raises(TencentCloudSDKException) as caught:
        client.ListFunctions(request("ListFunctionsRequest", {}))
    assert caught.value.code == "AuthFailure.SignatureExpire"


def test_a_timestamp_from_the_future(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = sdk_client(server)
    ahead = time.time() + 10 * MAX_SKEW_S
    monkeypatch.setattr(abstract_client, "time", SimpleNamespace(time=lambda: ahead))
    with pytest.raises(TencentCloudSDKException) as caught:
        client.ListFunctions(request("ListFunctionsRequest", {}))
    assert caught.value.code == "AuthFailure.SignatureExpire"


def test_a_replayed_request_is_refused_once_old(server: ServerProcess) -> None:
    client = sdk_client(server)
    req = signed(client, "ListFunctions", {})
    assert error_code(send(server, req)) == ""
    time.sleep(MAX_SKEW_S + 1.5)
    assert error_code(send(server, req)) == "AuthFailure.SignatureExpire"


def test_no_or_foreign_authorization(server: ServerProcess) -> None:
    client = sdk_client(server)
    req = signed(client, "ListFunctions", {})
    del req.header["Authorization"]
    assert error_code(send(server, req)) == "AuthFailure.InvalidAuthorization"
    req.header["Authorization"] = f"Bearer {server.token}"
    assert error_code(send(server, req)) == "AuthFailure.InvalidAuthorization"


def test_a_revoked_key(server: ServerProcess) -> None:
    key = make_key(server)
    client = sdk_client(server, key=key)
    client.ListFunctions(request("ListFunctionsRequest", {}))
    revoked = httpx.delete(
        f"{server.url}/v1/keys/{key[0]}", headers={"Authorization": f"Bearer {server.token}"}
    )
    assert revoked.status_code == 200
    with pytest.raises(TencentCloudSDKException) as caught:
        client.ListFunctions(request("ListFunctionsRequest", {}))
    assert caught.value.code == "AuthFailure.SecretIdNotFound"


def test_an_unknown_action_and_version(server: ServerProcess) -> None:
    client = sdk_client(server)
    with pytest.raises(TencentCloudSDKException) as caught:
        client.call_json("NoSuchAction", {})
    assert caught.value.code == "InvalidAction"
    req = signed(client, "ListFunctions", {})
    req.header["X-TC-Version"] = "2017-01-01"
    assert error_code(send(server, req)) == "InvalidParameterValue.Version"


def test_missing_unknown_and_unsupported_parameters(server: ServerProcess) -> None:
    client = sdk_client(server)
    with pytest.raises(TencentCloudSDKException) as caught:
        client.call_json("GetFunction", {})
    assert caught.value.code == "MissingParameter"
    with pytest.raises(TencentCloudSDKException) as caught:
        client.call_json("GetFunction", {"FunctionName": "f", "Bogus": 1})
    assert caught.value.code == "UnknownParameter"
    with pytest.raises(TencentCloudSDKException) as caught:
        client.call_json("GetFunction", {"FunctionName": 12})
    assert caught.value.code == "InvalidParameterValue.FunctionName"


def test_a_body_that_is_not_json(server: ServerProcess) -> None:
    """Signed correctly (with the SDK's own signature code) over a body that is not JSON."""
    key = make_key(server)
    client = sdk_client(server, key=key)
    req = signed(client, "ListFunctions", {})
    req.data = "{not json"
    date = time.strftime("%Y-%m-%d", time.gmtime(int(req.header["X-TC-Timestamp"])))
    signature = client._get_tc3_signature({}, req, date, "scf", key[1])
    req.header["Authorization"] = (
        f"TC3-HMAC-SHA256 Credential={key[0]}/{date}/scf/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )
    assert error_code(send(server, req)) == "InvalidParameter.Payload"


def test_the_root_answers_a_browser(server: ServerProcess) -> None:
    answer = httpx.get(server.url + "/")
    assert answer.status_code == 200
    assert answer.json()["scf_api"].startswith("POST /")


def test_the_same_api_under_scf_path(server: ServerProcess) -> None:
    """A proxy may route ``/scf/`` to cumulo unchanged; what the SDK signed still holds."""
    client = sdk_client(server)
    req = signed(client, "ListFunctions", {})
    data = req.data.encode() if isinstance(req.data, str) else req.data
    answer = httpx.post(server.url + "/scf/", content=data, headers=dict(req.header))
    assert error_code(answer) == ""
    assert answer.json()["Response"]["Functions"] == []


def test_an_unsigned_payload_is_refused(server: ServerProcess) -> None:
    client = sdk_client(server)
    client.profile.unsignedPayload = True
    with pytest.raises(TencentCloudSDKException) as caught:
        client.ListFunctions(request("ListFunctionsRequest", {}))
    assert caught.value.code == "AuthFailure.SignatureFailure"
    assert "UNSIGNED-PAYLOAD" in caught.value.message
