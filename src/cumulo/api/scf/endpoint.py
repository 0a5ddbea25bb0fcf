"""``POST /`` (and ``/scf/``): the Tencent Cloud API endpoint the SCF SDKs and ``tccli`` call.

A call is ``X-TC-Action`` + ``X-TC-Version: 2018-04-16`` + a JSON body, signed with
TC3-HMAC-SHA256 by an API key (``cumulo keys create``). Every answer is HTTP 200 with
``Content-Type: application/json`` and ``{"Response": {..., "RequestId"}}``; a failure puts
``{"Error": {"Code", "Message"}}`` in ``Response`` (the SDKs raise it as
``TencentCloudSDKException``). cumulo's own error codes already use SCF's names; the few
that name a field in cumulo's terms are renamed to the SDK's field here.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.api.http import json_response, node, read_body
from cumulo.api.scf import signing
from cumulo.api.scf.actions import load
from cumulo.api.scf.call import ScfCall
from cumulo.engine.keys import Principal
from cumulo.errors import CumuloError, InvalidParameter

if TYPE_CHECKING:
    from cumulo.app import Cumulo

log = logging.getLogger(__name__)

API_VERSION = "2018-04-16"
#: CreateFunction and UpdateFunctionCode carry a base64 zip.
MAX_BODY_BYTES = 72 * 1024 * 1024
_SECRET_ID = re.compile(r"Credential=([^/,\s]+)/")

#: cumulo's field-named codes → the SCF SDK's names for the same field.
_FIELD_CODES = {
    "InvalidParameterValue.Name": "InvalidParameterValue.FunctionName",
    "InvalidParameterValue.TimeoutS": "InvalidParameterValue.Timeout",
    "InvalidParameterValue.MemoryMb": "InvalidParameterValue.MemorySize",
    "InvalidParameterValue.ZipFile": "InvalidParameterValue.ZipFile",
    "InvalidParameterValue.PayloadTooLarge": "InvalidParameter.RequestTooLarge",
    "InvalidParameterValue.MaxConcurrency": "InvalidParameterValue.ReservedConcurrencyMem",
    "InvalidParameterValue.RetryAttempts": "InvalidParameterValue.RetryNum",
    "InvalidParameterValue.MaxEventAgeS": "InvalidParameterValue.MsgTTL",
    "InvalidParameterValue.FunctionVersion": "InvalidParameterValue.Qualifier",
    "InvalidParameterValue.AdditionalWeights": "InvalidParameterValue.AdditionalVersionWeights",
    "InvalidParameterValue.Alias": "InvalidParameterValue.Name",
    "InvalidParameterValue.Note": "InvalidParameterValue.Description",
    "ResourceInUse.Function": "ResourceInUse.Function",
    "UnsupportedOperation.Method": "UnsupportedOperation",
}


async def scf_endpoint(request: Request) -> Response:
    """The Starlette route: GET (a browser, or the SDK's GET form) and any POST the fast
    path did not take."""
    if request.method == "GET" and "x-tc-action" not in request.headers:
        # A browser (or curl) at the root: say what is here rather than fail a signature.
        return json_response(
            {"name": "cumulo", "rest_api": "/v1", "scf_api": "POST / (TC3-HMAC-SHA256)",
             "openapi": "/openapi.json", "health": "/healthz"}
        )  # fmt: skip
    try:
        body = await read_body(request, MAX_BODY_BYTES)
    except CumuloError as exc:
        payload, request_id = envelope_error(exc)
    else:
        payload, request_id = await answer(
            node(request),
            request.method,
            request.url.scheme,
            request.url.query,
            request.headers,
            body,
        )
    return Response(payload, media_type="application/json", headers={"X-TC-RequestId": request_id})


async def answer(
    core: Cumulo, method: str, scheme: str, query: str, headers: Headers, body: bytes
) -> tuple[bytes, str]:
    """The whole answer to one call: the JSON envelope (success or error) and its
    RequestId. Never raises."""
    request_id = str(uuid.uuid4())
    try:
        payload = await _handle(core, method, scheme, query, headers, body, request_id)
    except CumuloError as exc:
        payload = _error(exc)
    except Exception:
        log.exception("SCF call crashed")
        payload = {"Error": {"Code": "InternalError", "Message": "internal error; see the log"}}
    payload["RequestId"] = request_id
    return orjson.dumps({"Response": payload}), request_id


def envelope_error(exc: CumuloError) -> tuple[bytes, str]:
    """The envelope of a call refused before it could be read (e.g. a body too large)."""
    request_id = str(uuid.uuid4())
    payload = {**_error(exc), "RequestId": request_id}
    return orjson.dumps({"Response": payload}), request_id


def _error(exc: CumuloError) -> dict[str, Any]:
    if exc.http_status >= 500:
        log.warning("SCF call failed: %s %s", exc.code, exc.message)
    return {"Error": {"Code": scf_code(exc), "Message": exc.message}}


async def _handle(
    core: Cumulo,
    method: str,
    scheme: str,
    query: str,
    headers: Headers,
    body: bytes,
    request_id: str,
) -> dict[str, Any]:
    signed = signing.SignedRequest(
        method=method,
        # ``/scf/`` is the same API mounted where a proxy can route it by path; clients
        # sign the API's root, as the SDKs do (their canonical URI is always "/").
        path="/",
        query=query,
        headers=headers,
        body=body,
    )
    principal = await _authenticate(core, signed, headers)
    action_name = headers.get("x-tc-action", "")
    version = headers.get("x-tc-version", "")
    if version != API_VERSION:
        raise InvalidParameter(
            f"X-TC-Version {version!r} is not served here; cumulo speaks SCF {API_VERSION}",
            code="InvalidParameterValue.Version",
        )
    handler = load().get(action_name)
    if handler is None:
        raise CumuloError(
            f"the action {action_name!r} does not exist or is not served by cumulo",
            code="InvalidAction",
        )
    call = ScfCall(
        core=core,
        principal=principal,
        params=_params(method, query, body),
        region=headers.get("x-tc-region", ""),
        request_id=request_id,
        base_url=f"{scheme}://{headers.get('host', 'localhost')}",
    )
    return await handler(call)


async def _authenticate(core: Cumulo, signed: signing.SignedRequest, headers: Headers) -> Principal:
    """Verify the signature with the key it names; the key's principal.

    The request's form and clock are checked before any key is looked up (a forged or stale
    request costs no store read and no decryption); then the signature.

    As the SDKs sign (``SignedHeaders=content-type;host``), the signature covers the body
    and the host, not ``X-TC-Action``: within the clock window a captured request could be
    sent again under another action over the same body. That is TC3's design, and why
    Tencent Cloud is reached over TLS; run the SCF API over HTTPS (``--tls-cert``, or a TLS
    proxy) wherever the network is not trusted. A body the signature does not cover
    (``UNSIGNED-PAYLOAD``) is refused unless the operator allows it."""
    now = time.time()
    settings = core.settings
    allow_unsigned = settings.scf_allow_unsigned_payload
    match = _SECRET_ID.search(headers.get("authorization", ""))
    secret_id = match.group(1) if match else ""
    hit, found = core.keys.cached(secret_id)
    if not hit:
        # Form and clock first: only then may the request cost a store read.
        try:
            signing.verify(signed, lambda _: None, now, settings.scf_max_skew_s,
                           allow_unsigned_payload=allow_unsigned)  # fmt: skip
        except signing.SignatureError as exc:
            if exc.code != "AuthFailure.SecretIdNotFound":
                raise
        found = await core.keys.lookup(secret_id) if secret_id else None

    def lookup(candidate: str) -> str | None:
        return found[1] if found is not None and candidate == secret_id else None

    signing.verify(signed, lookup, now, settings.scf_max_skew_s,
                   allow_unsigned_payload=allow_unsigned)  # fmt: skip
    if found is None:  # verify raised already; this keeps the types honest
        raise signing.SignatureError("AuthFailure.SecretIdNotFound", "unknown SecretId")
    return found[0]


def _params(method: str, query: str, body: bytes) -> dict[str, Any]:
    if method == "GET":
        return dict(parse_qsl(query))
    if not body.strip():
        return {}
    try:
        params = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(
            f"the request body is not valid JSON: {exc}", code="InvalidParameter.Payload"
        ) from exc
    if not isinstance(params, dict):
        raise InvalidParameter(
            "the request body must be a JSON object of parameters",
            code="InvalidParameter.Payload",
        )
    return params


def scf_code(exc: CumuloError) -> str:
    return _FIELD_CODES.get(exc.code, exc.code)


routes = [
    Route("/", scf_endpoint, methods=["POST", "GET"]),
    Route("/scf/", scf_endpoint, methods=["POST", "GET"]),
    Route("/scf", scf_endpoint, methods=["POST", "GET"]),
]
