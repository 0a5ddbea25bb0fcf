"""Verification of Tencent Cloud API v3 (TC3-HMAC-SHA256) request signatures.

A client signs a request with its SecretKey; the server, which keeps the same secret,
rebuilds the signature and compares. The computation follows the official SDKs byte for
byte:

1. **Canonical request**, lines joined by ``\\n``: method, canonical URI, canonical query
   string, one ``name:value\\n`` per signed header (lower-cased name, trimmed value, in the
   order of ``SignedHeaders``), the ``SignedHeaders`` list, and the SHA-256 hex of the
   payload. A GET request's payload is empty (its parameters are the query string). When
   header ``X-TC-Content-SHA256`` is ``UNSIGNED-PAYLOAD`` the payload is that literal
   string, hashed like any other payload (the SDKs do so), and the body is not signed.
2. **String to sign**: ``TC3-HMAC-SHA256``, ``X-TC-Timestamp``, the credential scope
   ``{date}/{service}/tc3_request`` and the SHA-256 hex of the canonical request.
3. **Key chain**: HMAC-SHA256 of ``date`` keyed with ``"TC3" + secret``, then of the service,
   then of ``"tc3_request"``; the signature is the HMAC-SHA256 hex of the string to sign.

Choices where the published algorithm leaves room, or where cumulo is stricter:

* ``SignedHeaders`` must name ``content-type`` and ``host``: a signature that does not
  cover them could be replayed against another endpoint or with another body encoding.
* Header values are used as sent (trimmed), which is what the SDKs sign. The published
  algorithm also lower-cases values, so when a signed value holds capitals that form is
  accepted too; both are keyed with the same secret, so neither weakens the check.
* The canonical query string is the raw query for every method. The SDKs send no query on
  POST (and sign an empty one), so they are unaffected, and a query string added to a
  signed POST fails the check instead of slipping through unsigned.
* The service in the scope must be ``scf`` and its date the UTC date of the timestamp.
* ``X-TC-Token`` (temporary credentials) is accepted and ignored: cumulo issues no
  temporary credentials, and the token is not part of the signature.
* Order of checks: the format of the whole request (``Authorization``, timestamp, scope,
  signed headers present) first, then the timestamp window, then the key lookup, then the
  HMAC. Nothing is looked up for a request that is malformed or stale, so such a request
  learns nothing about which SecretIds exist. A well-formed, fresh request with an unknown
  SecretId gets ``AuthFailure.SecretIdNotFound``, as Tencent Cloud answers.
* A revoked or disabled key is the caller's business: ``lookup_secret`` returns ``None``
  for it, and the client sees ``AuthFailure.SecretIdNotFound`` (Tencent Cloud's code for a
  key that is deleted or disabled). ``AuthFailure.InvalidSecretId`` is not used.

Error codes raised (all :class:`SignatureError`, HTTP 401):

* ``AuthFailure.InvalidAuthorization``: no ``Authorization`` header, or not TC3-HMAC-SHA256.
* ``AuthFailure.SignatureFailure``: malformed ``Authorization`` parts, missing or bad
  ``X-TC-Timestamp``, wrong scope, ``host``/``content-type`` not signed, a signed header not
  sent, a header sent twice, or a signature that does not match.
* ``AuthFailure.SignatureExpire``: ``X-TC-Timestamp`` more than ``max_skew_s`` from now.
* ``AuthFailure.SecretIdNotFound``: ``lookup_secret`` returned ``None``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cumulo.errors import Unauthorized

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "scf"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
DEFAULT_MAX_SKEW_S = 300.0

#: Headers every signature must cover.
REQUIRED_SIGNED_HEADERS = frozenset({"content-type", "host"})

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,10}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME_RE = re.compile(r"[a-z0-9-]+")

_HOW_TO_SIGN = (
    "sign requests with a Tencent Cloud SDK or the CLI, whose default signature method "
    "TC3-HMAC-SHA256 is what cumulo accepts"
)


class SignatureError(Unauthorized):
    """A request's signature was rejected. ``code`` is the Tencent Cloud error code
    (``AuthFailure.*``), ``message`` says what was wrong and what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class SignedRequest:
    """An HTTP request as received, reduced to what the signature covers.

    ``path`` is the canonical URI (``"/"`` for the SDKs), ``query`` the raw query string
    without ``?`` (``""`` when none), ``headers`` the request headers with names in any
    case (a Starlette ``Headers`` object will do; a name sent twice is rejected), ``body``
    the raw body bytes.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class _Authorization:
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def verify(
    request: SignedRequest,
    lookup_secret: Callable[[str], str | None],
    now_s: float,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
    *,
    allow_unsigned_payload: bool = True,
) -> str:
    """Check ``request``'s TC3-HMAC-SHA256 signature; return the SecretId that signed it.

    ``lookup_secret`` maps a SecretId to its plain SecretKey, or ``None`` when the key does
    not exist or must not be used (revoked, disabled). It is called at most once, and only
    for a well-formed request whose timestamp lies within ``max_skew_s`` seconds of
    ``now_s`` (Unix seconds). With ``allow_unsigned_payload=False`` a request marked
    ``X-TC-Content-SHA256: UNSIGNED-PAYLOAD`` (body not covered) is refused.

    Pure: no I/O besides ``lookup_secret``, no clock reads. Raises :class:`SignatureError`
    with one of the codes in the module docstring.
    """
    headers, repeated = _lower_headers(request.headers)
    # A header sent twice is ambiguous only if the signature or its checks read it; others
    # (a proxy's second X-Forwarded-For, say) are none of the signature's business.
    for name in sorted(repeated):
        if name in _READ_HEADERS:
            raise SignatureError(
                "AuthFailure.SignatureFailure",
                f"header {name!r} is sent more than once; send each header once",
            )
    auth = _parse_authorization(headers.get("authorization"))
    timestamp = _parse_timestamp(headers.get("x-tc-timestamp"))
    _check_scope(auth, int(timestamp))
    for name in auth.signed_headers:
        if name in repeated:
            raise SignatureError(
                "AuthFailure.SignatureFailure",
                f"header {name!r} is sent more than once; send each header once",
            )
    values = _signed_values(auth, headers)
    unsigned = headers.get("x-tc-content-sha256", "").strip() == UNSIGNED_PAYLOAD
    if unsigned and not allow_unsigned_payload:
        raise SignatureError(
            "AuthFailure.SignatureFailure",
            "this server does not accept requests whose body is not signed "
            "(X-TC-Content-SHA256: UNSIGNED-PAYLOAD); turn off unsignedPayload in the "
            "client profile so that the body is signed",
        )
    _check_fresh(int(timestamp), now_s, max_skew_s)

    secret = lookup_secret(auth.secret_id)
    if secret is None:
        raise SignatureError(
            "AuthFailure.SecretIdNotFound",
            f"SecretId {auth.secret_id!r} does not exist or has been disabled; "
            "check the SecretId the client uses, or create a new API key",
        )

    if unsigned:
        payload = UNSIGNED_PAYLOAD.encode()
    else:
        # A GET request carries its parameters in the signed query string; a body is ignored.
        payload = b"" if request.method == "GET" else request.body
    candidates = [values]
    lowered = tuple(value.lower() for value in values)
    if lowered != values:
        candidates.append(lowered)
    matched = False
    for candidate in candidates:
        canonical = _canonical_request(request, auth.signed_headers, candidate, payload)
        expected = _signature(secret, auth, timestamp, canonical)
        # Constant-time: the time taken must not tell how many leading characters matched.
        matched = hmac.compare_digest(expected, auth.signature) or matched
    if not matched:
        raise SignatureError(
            "AuthFailure.SignatureFailure",
            "the request signature does not match: check that the SecretKey belongs to "
            f"SecretId {auth.secret_id!r} and that nothing (a proxy rewriting Host or the "
            "body, for instance) changes the request after it is signed",
        )
    return auth.secret_id


#: Headers the verification reads besides the signed ones.
_READ_HEADERS = frozenset({"authorization", "x-tc-timestamp", "x-tc-content-sha256"})


def _lower_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """The headers by lower-cased name (first value), and the names sent more than once."""
    lowered: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in headers.items():
        key = name.lower()
        if key in lowered:
            repeated.add(key)
            continue
        lowered[key] = value
    return lowered, repeated


def _parse_authorization(header: str | None) -> _Authorization:
    if header is None or not header.strip():
        raise SignatureError(
            "AuthFailure.InvalidAuthorization",
            f"the request has no Authorization header; {_HOW_TO_SIGN}",
        )
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(
            "AuthFailure.InvalidAuthorization",
            f"the Authorization header does not use {ALGORITHM} (found {algorithm!r}); "
            f"{_HOW_TO_SIGN}",
        )
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name in parts:
            raise _malformed(f"part {item.strip()!r} is not a single name=value pair")
        parts[name] = value
    if set(parts) != {"Credential", "SignedHeaders", "Signature"}:
        raise _malformed(
            "it must have exactly the parts Credential, SignedHeaders and Signature "
            f"(found {', '.join(sorted(parts)) or 'none'})"
        )

    scope = parts["Credential"].split("/")
    if len(scope) != 4 or not scope[0] or scope[3] != "tc3_request":
        raise _malformed("Credential must read {SecretId}/{YYYY-MM-DD}/{service}/tc3_request")
    secret_id, date, service, _ = scope
    if not _DATE_RE.fullmatch(date):
        raise _malformed(f"the date {date!r} in Credential is not YYYY-MM-DD")

    signed_headers = tuple(parts["SignedHeaders"].split(";"))
    for name in signed_headers:
        if not _HEADER_NAME_RE.fullmatch(name):
            raise _malformed(f"SignedHeaders names {name!r}, not a lower-case header name")
    if len(set(signed_headers)) != len(signed_headers):
        raise _malformed("SignedHeaders names a header more than once")
    missing = REQUIRED_SIGNED_HEADERS - set(signed_headers)
    if missing:
        raise _malformed(
            f"SignedHeaders must include {', '.join(sorted(missing))}: a signature that "
            "does not cover them could be replayed elsewhere"
        )

    signature = parts["Signature"]
    if not _SIGNATURE_RE.fullmatch(signature):
        raise _malformed("Signature must be 64 lower-case hex digits")
    return _Authorization(secret_id, date, service, signed_headers, signature)


def _malformed(detail: str) -> SignatureError:
    return SignatureError(
        "AuthFailure.SignatureFailure",
        f"the Authorization header is malformed: {detail}; {_HOW_TO_SIGN}",
    )


def _parse_timestamp(header: str | None) -> str:
    """Return the timestamp as sent: the string to sign holds it verbatim."""
    if header is None or not _TIMESTAMP_RE.fullmatch(header.strip()):
        raise SignatureError(
            "AuthFailure.SignatureFailure",
            f"header X-TC-Timestamp is missing or not a Unix time in whole seconds; {_HOW_TO_SIGN}",
        )
    return header.strip()


def _check_scope(auth: _Authorization, timestamp_s: int) -> None:
    if auth.service != SERVICE:
        raise SignatureError(
            "AuthFailure.SignatureFailure",
            f"the credential scope names service {auth.service!r}, but this endpoint "
            f"serves {SERVICE!r}; use the SCF client (service {SERVICE!r}) for this endpoint",
        )
    expected = datetime.fromtimestamp(timestamp_s, UTC).strftime("%Y-%m-%d")
    if auth.date != expected:
        raise SignatureError(
            "AuthFailure.SignatureFailure",
            f"the credential scope date {auth.date} is not the UTC date of X-TC-Timestamp "
            f"({expected}); derive the date from the timestamp in UTC",
        )


def _signed_values(auth: _Authorization, headers: Mapping[str, str]) -> tuple[str, ...]:
    values: list[str] = []
    for name in auth.signed_headers:
        value = headers.get(name)
        if value is None:
            raise SignatureError(
                "AuthFailure.SignatureFailure",
                f"header {name!r} is named in SignedHeaders but not sent; send every signed header",
            )
        values.append(value.strip())
    return tuple(values)


def _check_fresh(timestamp_s: int, now_s: float, max_skew_s: float) -> None:
    skew_s = now_s - timestamp_s
    if abs(skew_s) > max_skew_s:
        when = "old" if skew_s > 0 else "in the future"
        raise SignatureError(
            "AuthFailure.SignatureExpire",
            f"X-TC-Timestamp is {abs(skew_s):.0f} s {when}, beyond the allowed "
            f"{max_skew_s:.0f} s; sign each request just before sending it and keep the "
            "client's clock in sync (NTP)",
        )


def _canonical_request(
    request: SignedRequest,
    signed_headers: tuple[str, ...],
    values: tuple[str, ...],
    payload: bytes,
) -> str:
    canonical_headers = "".join(
        f"{name}:{value}\n" for name, value in zip(signed_headers, values, strict=True)
    )
    return "\n".join(
        (
            request.method,
            request.path,
            request.query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        )
    )


def _signature(secret: str, auth: _Authorization, timestamp: str, canonical: str) -> str:
    scope = f"{auth.date}/{auth.service}/tc3_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"
    key = ("TC3" + secret).encode()
    for part in (auth.date, auth.service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
