"""TC3-HMAC-SHA256 verification against requests signed by the official Tencent Cloud SDK.

Every request here is built and signed by the SDK's own code, so cumulo is held to what
the SDK really sends rather than to a re-implementation of the algorithm.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tencentcloud.common import abstract_client, credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import models, scf_client

from cumulo.api.scf import signing
from cumulo.api.scf.signing import SignatureError, SignedRequest, verify

# The SDK derives the scope date with datetime.utcfromtimestamp, deprecated in Python 3.12.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:datetime\.datetime\.utcfromtimestamp\(\) is deprecated:DeprecationWarning"
)

SECRET_ID = "AKIDcumuloTestKey0001"
SECRET_KEY = "s3cr3t-Key-for-cumulo-tests"
ENDPOINT = "127.0.0.1:8900"
SIGNED_AT_S = 1_700_000_000  # 2023-11-14T22:13:20Z
PARAMS: dict[str, Any] = {"Namespace": "default", "Limit": 20, "Filters": [{"Name": "a"}]}


class KeyStore:
    """``lookup_secret`` that records the SecretIds it was asked for."""

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        self.keys = {SECRET_ID: SECRET_KEY} if keys is None else keys
        self.asked: list[str] = []

    def __call__(self, secret_id: str) -> str | None:
        self.asked.append(secret_id)
        return self.keys.get(secret_id)


@pytest.fixture(autouse=True)
def sdk_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Freeze the clock the SDK reads when it stamps X-TC-Timestamp."""
    monkeypatch.setattr(abstract_client, "time", types.SimpleNamespace(time=lambda: SIGNED_AT_S))
    yield


def make_client(
    *,
    secret_id: str = SECRET_ID,
    secret_key: str = SECRET_KEY,
    token: str | None = None,
    method: str = "POST",
    endpoint: str = ENDPOINT,
    unsigned_payload: bool = False,
) -> scf_client.ScfClient:
    http = HttpProfile(protocol="http", endpoint=endpoint, reqMethod=method)
    profile = ClientProfile(httpProfile=http)
    profile.unsignedPayload = unsigned_payload
    cred = credential.Credential(secret_id, secret_key, token)
    return scf_client.ScfClient(cred, "ap-guangzhou", profile)


def sdk_sign(
    client: scf_client.ScfClient,
    action: str = "ListFunctions",
    params: dict[str, Any] | None = None,
) -> RequestInternal:
    """Have the SDK build and sign a request the way its ``_call`` does."""
    method = client.profile.httpProfile.reqMethod
    req = RequestInternal(client._get_endpoint(), method, client._requestPath, header={})
    client._build_req_with_tc3_signature(action, PARAMS if params is None else params, req)
    return req


def to_signed(req: RequestInternal) -> SignedRequest:
    """What the server sees of the request the SDK sends (see ApiRequest._request)."""
    data = req.data.encode() if isinstance(req.data, str) else req.data
    if req.method == "GET":
        return SignedRequest(req.method, req.uri, req.data, dict(req.header), b"")
    return SignedRequest(req.method, req.uri, "", dict(req.header), data)


def with_header(request: SignedRequest, name: str, value: str | None) -> SignedRequest:
    headers = {k: v for k, v in request.headers.items() if k.lower() != name.lower()}
    if value is not None:
        headers[name] = value
    return SignedRequest(request.method, request.path, request.query, headers, request.body)


def signed(**client_options: Any) -> SignedRequest:
    return to_signed(sdk_sign(make_client(**client_options)))


def rejected(
    request: SignedRequest, keys: KeyStore | None = None, now_s: float = SIGNED_AT_S, **kw: Any
) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        verify(request, keys or KeyStore(), now_s, **kw)
    assert info.value.message, "every rejection says what was wrong"
    return info.value


def test_a_request_signed_by_the_sdk_verifies_and_names_its_secret_id() -> None:
    keys = KeyStore()
    request = signed()
    assert request.headers["X-TC-Timestamp"] == str(SIGNED_AT_S)
    assert verify(request, keys, now_s=SIGNED_AT_S + 1) == SECRET_ID
    assert keys.asked == [SECRET_ID]


def test_a_request_captured_from_the_sdk_public_call_verifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole SDK path (extra headers such as X-TC-TraceId), captured at the socket."""
    client = make_client()
    captured: list[RequestInternal] = []

    def send_request(req: RequestInternal) -> None:
        captured.append(req)
        raise RuntimeError("captured, not sent")

    monkeypatch.setattr(client.request, "send_request", send_request)
    with pytest.raises(TencentCloudSDKException, match="captured, not sent"):
        client.ListFunctions(models.ListFunctionsRequest())
    (req,) = captured
    assert "X-TC-TraceId" in req.header
    assert verify(to_signed(req), KeyStore(), SIGNED_AT_S) == SECRET_ID


def test_a_get_form_request_verifies() -> None:
    req = sdk_sign(make_client(method="GET"))
    assert req.header["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Filters.0.Name=a" in req.data
    assert verify(to_signed(req), KeyStore(), SIGNED_AT_S) == SECRET_ID


def test_a_tampered_get_query_is_rejected() -> None:
    request = to_signed(sdk_sign(make_client(method="GET")))
    query = request.query.replace("Limit=20", "Limit=21")
    forged = SignedRequest("GET", "/", query, request.headers, b"")
    assert forged.query != request.query
    assert rejected(forged).code == "AuthFailure.SignatureFailure"


def test_a_get_request_signs_no_body() -> None:
    request = to_signed(sdk_sign(make_client(method="GET")))
    with_body = SignedRequest("GET", "/", request.query, request.headers, b"ignored")
    assert verify(with_body, KeyStore(), SIGNED_AT_S) == SECRET_ID


def test_a_query_added_to_a_signed_post_is_rejected() -> None:
    request = signed()
    forged = SignedRequest("POST", "/", "Namespace=other", request.headers, request.body)
    assert rejected(forged).code == "AuthFailure.SignatureFailure"


def test_the_wrong_secret_key_is_rejected() -> None:
    keys = KeyStore({SECRET_ID: SECRET_KEY + "x"})
    error = rejected(signed(), keys)
    assert error.code == "AuthFailure.SignatureFailure"
    assert error.http_status == 401


def test_an_unknown_secret_id_is_reported_as_not_found() -> None:
    keys = KeyStore()
    error = rejected(signed(secret_id="AKIDnobodyHasThisKey"), keys)
    assert error.code == "AuthFailure.SecretIdNotFound"
    assert keys.asked == ["AKIDnobodyHasThisKey"]


def test_a_tampered_body_is_rejected() -> None:
    request = signed()
    body = request.body.replace(b'"default"', b'"prod"')
    assert body != request.body
    forged = SignedRequest("POST", "/", "", request.headers, body)
    assert rejected(forged).code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    ("name", "value"),
    [("Host", "127.0.0.1:8901"), ("Content-Type", "application/x-www-form-urlencoded")],
)
def test_a_tampered_signed_header_is_rejected(name: str, value: str) -> None:
    request = signed()
    assert request.headers[name] != value
    assert rejected(with_header(request, name, value)).code == "AuthFailure.SignatureFailure"


def test_an_unsigned_header_may_change() -> None:
    request = with_header(signed(), "X-TC-Region", "ap-shanghai")
    assert verify(request, KeyStore(), SIGNED_AT_S) == SECRET_ID


def test_a_signed_header_that_is_not_sent_is_rejected() -> None:
    keys = KeyStore()
    error = rejected(with_header(signed(), "Content-Type", None), keys)
    assert error.code == "AuthFailure.SignatureFailure"
    assert "content-type" in error.message
    assert keys.asked == []


class RawHeaders(dict[str, str]):
    """Headers as received, repeats kept (as Starlette's ``Headers.items()`` gives them)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        super().__init__(items)
        self._items = items

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return self._items


def test_a_signed_header_sent_twice_is_rejected() -> None:
    request = signed()
    items = [*request.headers.items(), ("host", "evil.example:80")]
    forged = SignedRequest("POST", "/", "", RawHeaders(items), request.body)
    assert rejected(forged).code == "AuthFailure.SignatureFailure"


def test_an_unsigned_header_sent_twice_is_none_of_its_business() -> None:
    request = signed()
    items = [*request.headers.items(), ("x-forwarded-for", "10.0.0.1"),
             ("x-forwarded-for", "10.0.0.2")]  # fmt: skip
    proxied = SignedRequest("POST", "/", "", RawHeaders(items), request.body)
    assert verify(proxied, KeyStore(), SIGNED_AT_S) == SECRET_ID


def test_the_path_is_signed() -> None:
    request = signed()
    forged = SignedRequest("POST", "/other/", "", request.headers, request.body)
    assert rejected(forged).code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("skew_s", [0, 299, 300, -300])
def test_a_timestamp_within_the_skew_is_accepted(skew_s: int) -> None:
    assert verify(signed(), KeyStore(), SIGNED_AT_S + skew_s) == SECRET_ID


@pytest.mark.parametrize("skew_s", [301, 3600, -301, -3600])
def test_a_timestamp_beyond_the_skew_is_expired(skew_s: int) -> None:
    keys = KeyStore()
    error = rejected(signed(), keys, SIGNED_AT_S + skew_s)
    assert error.code == "AuthFailure.SignatureExpire"
    assert ("future" in error.message) == (skew_s < 0)
    assert keys.asked == [], "a stale request must not reach the key lookup"


def test_the_skew_is_configurable() -> None:
    assert rejected(signed(), now_s=SIGNED_AT_S + 61, max_skew_s=60).code == (
        "AuthFailure.SignatureExpire"
    )


def test_a_replay_after_the_skew_window_is_expired() -> None:
    captured = signed()
    assert verify(captured, KeyStore(), SIGNED_AT_S + 5) == SECRET_ID
    replayed = SignedRequest(
        captured.method, captured.path, captured.query, dict(captured.headers), captured.body
    )
    assert rejected(replayed, now_s=SIGNED_AT_S + 301).code == "AuthFailure.SignatureExpire"


def test_an_sdk_clock_set_in_the_future_is_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        abstract_client, "time", types.SimpleNamespace(time=lambda: SIGNED_AT_S + 1000)
    )
    assert rejected(signed(), now_s=SIGNED_AT_S).code == "AuthFailure.SignatureExpire"


def test_a_temporary_credential_token_is_accepted() -> None:
    request = signed(token="session-token-123")
    assert request.headers["X-TC-Token"] == "session-token-123"
    assert verify(request, KeyStore(), SIGNED_AT_S) == SECRET_ID


def test_an_unsigned_payload_verifies_unless_refused() -> None:
    request = signed(unsigned_payload=True)
    assert request.headers["X-TC-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert verify(request, KeyStore(), SIGNED_AT_S) == SECRET_ID
    other_body = SignedRequest("POST", "/", "", request.headers, b"{}")
    assert verify(other_body, KeyStore(), SIGNED_AT_S) == SECRET_ID
    error = rejected(request, allow_unsigned_payload=False)
    assert error.code == "AuthFailure.SignatureFailure"
    assert "UNSIGNED-PAYLOAD" in error.message


def test_dropping_the_unsigned_payload_marker_is_rejected() -> None:
    request = with_header(signed(unsigned_payload=True), "X-TC-Content-SHA256", None)
    assert rejected(request).code == "AuthFailure.SignatureFailure"


def test_header_names_are_matched_in_any_case() -> None:
    request = signed()
    lowered = {k.lower(): v for k, v in request.headers.items()}
    upper = {k.upper(): v for k, v in request.headers.items()}
    for headers in (lowered, upper):
        again = SignedRequest("POST", "/", "", headers, request.body)
        assert verify(again, KeyStore(), SIGNED_AT_S) == SECRET_ID


def test_header_values_signed_as_sent_or_lower_cased_verify() -> None:
    client = make_client(endpoint="LocalHost:8900")
    req = sdk_sign(client)
    assert req.header["Host"] == "LocalHost:8900"
    as_sent = to_signed(req)
    assert verify(as_sent, KeyStore(), SIGNED_AT_S) == SECRET_ID

    # The published algorithm lower-cases header values: sign that form with the SDK.
    lowered = copy.deepcopy(req)
    lowered.header["Host"] = lowered.header["Host"].lower()
    date = datetime.fromtimestamp(SIGNED_AT_S, UTC).strftime("%Y-%m-%d")
    signature = client._get_tc3_signature(PARAMS, lowered, date, "scf", SECRET_KEY)
    authorization = req.header["Authorization"].rsplit("Signature=", 1)[0]
    request = with_header(as_sent, "Authorization", f"{authorization}Signature={signature}")
    assert request.headers["Authorization"] != as_sent.headers["Authorization"]
    assert verify(request, KeyStore(), SIGNED_AT_S) == SECRET_ID


def test_the_wrong_service_in_the_scope_is_rejected() -> None:
    client = make_client()
    client._service = "cvm"
    keys = KeyStore()
    error = rejected(to_signed(sdk_sign(client)), keys)
    assert error.code == "AuthFailure.SignatureFailure"
    assert "'cvm'" in error.message
    assert keys.asked == []


def test_a_scope_date_other_than_the_timestamp_date_is_rejected() -> None:
    request = signed()
    auth = request.headers["Authorization"]
    assert "/2023-11-14/" in auth
    error = rejected(
        with_header(request, "Authorization", auth.replace("2023-11-14", "2023-11-15"))
    )
    assert error.code == "AuthFailure.SignatureFailure"
    assert "UTC date" in error.message


def _auth(request: SignedRequest) -> str:
    return request.headers["Authorization"]


INVALID = "AuthFailure.InvalidAuthorization"
FAILURE = "AuthFailure.SignatureFailure"


def _upper_signature(auth: str) -> str:
    head, sig = auth.rsplit("Signature=", 1)
    return f"{head}Signature={sig.upper()}"


def _signed_headers(value: str) -> Callable[[str], str]:
    return lambda auth: auth.replace("SignedHeaders=content-type;host", f"SignedHeaders={value}")


MALFORMED: list[tuple[str, Callable[[str], str | None], str]] = [
    ("missing", lambda auth: None, INVALID),
    ("empty", lambda auth: "", INVALID),
    ("other algorithm", lambda auth: auth.replace("TC3-HMAC-SHA256", "HMAC-SHA1"), INVALID),
    ("basic auth", lambda auth: "Basic dXNlcjpwYXNz", INVALID),
    ("no parts", lambda auth: "TC3-HMAC-SHA256", FAILURE),
    ("garbage", lambda auth: "TC3-HMAC-SHA256 x", FAILURE),
    ("no signature", lambda auth: auth.split(", Signature=")[0], FAILURE),
    ("short signature", lambda auth: auth[:-2], FAILURE),
    ("upper-case signature", _upper_signature, FAILURE),
    ("part twice", lambda auth: auth + ", Signature=" + "0" * 64, FAILURE),
    ("unknown part", lambda auth: auth + ", Extra=1", FAILURE),
    ("short scope", lambda auth: auth.replace("/scf/tc3_request", "/scf"), FAILURE),
    ("bad terminator", lambda auth: auth.replace("tc3_request", "tc4_request"), FAILURE),
    ("bad date", lambda auth: auth.replace("2023-11-14", "14-11-2023"), FAILURE),
    ("host not signed", _signed_headers("content-type"), FAILURE),
    ("content-type not signed", _signed_headers("host"), FAILURE),
    ("capitals", _signed_headers("Content-Type;Host"), FAILURE),
    ("named twice", _signed_headers("content-type;host;host"), FAILURE),
]


@pytest.mark.parametrize(
    ("change", "expected_code"),
    [(change, code) for _, change, code in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
def test_a_malformed_authorization_is_rejected_before_the_key_lookup(
    change: Callable[[str], str | None], expected_code: str
) -> None:
    request = signed()
    keys = KeyStore()
    changed = change(_auth(request))
    assert changed != _auth(request)
    error = rejected(with_header(request, "Authorization", changed), keys)
    assert error.code == expected_code
    assert keys.asked == [], "a malformed request must not learn whether its key exists"


@pytest.mark.parametrize("timestamp", [None, "", "soon", "1.7e9", "-1700000000", "１７"])
def test_a_missing_or_malformed_timestamp_is_rejected(timestamp: str | None) -> None:
    keys = KeyStore()
    error = rejected(with_header(signed(), "X-TC-Timestamp", timestamp), keys)
    assert error.code == "AuthFailure.SignatureFailure"
    assert "X-TC-Timestamp" in error.message
    assert keys.asked == []


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    real = signing.hmac.compare_digest
    calls: list[tuple[str, str]] = []

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", recording)
    request = signed()
    assert verify(request, KeyStore(), SIGNED_AT_S) == SECRET_ID
    sent = _auth(request).rsplit("Signature=", 1)[1]
    assert calls and all(b == sent for _, b in calls)
    calls.clear()
    rejected(request, KeyStore({SECRET_ID: "wrong"}))
    assert calls
