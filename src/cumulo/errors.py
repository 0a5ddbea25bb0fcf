"""One error tree; each error knows its API code and HTTP status.

::

    CumuloError (500 InternalError)
    ├── InvalidParameter (400 InvalidParameterValue[.<Field>])
    │   ├── MissingParameter (400 MissingParameter)
    │   └── MalformedJSON (400 InvalidParameterValue.Json)
    ├── UnsupportedOperation (400 UnsupportedOperation[.<What>])
    ├── UnauthorizedOperation (403)
    ├── PayloadTooLarge (413 InvalidParameterValue.PayloadTooLarge)
    ├── Unauthorized (401 AuthFailure)
    ├── NotFound (404)
    │   ├── FunctionNotFound (ResourceNotFound.Function)
    │   ├── NamespaceNotFound (ResourceNotFound.Namespace)
    │   └── InvocationNotFound (ResourceNotFound.AsyncEvent)
    ├── LimitExceeded (400 LimitExceeded[.<What>])
    ├── Conflict (409)
    │   ├── FunctionExists (ResourceInUse.Function)
    │   ├── FunctionChanged (FailedOperation.FunctionChanged)
    │   ├── NamespaceExists (ResourceInUse.Namespace)
    │   ├── AsyncRunLocked (UnsupportedOperation.AsyncRunEnable)
    │   └── FunctionUnavailable (ResourceUnavailable.Function)
    ├── RequestLimitExceeded (429, carries retry_after_s)
    ├── ConcurrencyLimitExceeded (429 ResourceInsufficient.Concurrency)
    ├── StoreUnavailable (503 InternalError.Store)
    └── BusUnavailable (503 InternalError.Bus)

Driver errors (sqlite3, asyncpg, nats) are translated into these at the seam that meets
them; the API layer turns any of them into ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations


class CumuloError(Exception):
    code: str = "InternalError"
    http_status: int = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidParameter(CumuloError):
    """A field has a bad value. ``field`` names it: the code is
    ``InvalidParameterValue.<Field>``."""

    http_status = 400
    code = "InvalidParameterValue"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        if code is None and field is not None:
            code = f"InvalidParameterValue.{_camel(field)}"
        super().__init__(message, code=code)
        self.field = field


class MissingParameter(InvalidParameter):
    """A required parameter is absent (SCF's ``MissingParameter``)."""

    code = "MissingParameter"


class UnsupportedOperation(CumuloError):
    """A valid request for something cumulo does not serve (a field, a trigger kind)."""

    http_status = 400
    code = "UnsupportedOperation"


class UnauthorizedOperation(CumuloError):
    """Signed in, but not allowed here (a key confined to another namespace)."""

    http_status = 403
    code = "UnauthorizedOperation"


class MalformedJSON(InvalidParameter):
    code = "InvalidParameterValue.Json"

    def __init__(self, message: str) -> None:
        super().__init__(message, code=self.code)


class PayloadTooLarge(CumuloError):
    http_status = 413
    code = "InvalidParameterValue.PayloadTooLarge"


class Unauthorized(CumuloError):
    http_status = 401
    code = "AuthFailure"


class NotFound(CumuloError):
    http_status = 404
    code = "ResourceNotFound"


class FunctionNotFound(NotFound):
    code = "ResourceNotFound.Function"


class NamespaceNotFound(NotFound):
    code = "ResourceNotFound.Namespace"


class InvocationNotFound(NotFound):
    code = "ResourceNotFound.AsyncEvent"


class Conflict(CumuloError):
    http_status = 409
    code = "ResourceInUse"


class FunctionExists(Conflict):
    code = "ResourceInUse.Function"


class NamespaceExists(Conflict):
    code = "ResourceInUse.Namespace"


class AsyncRunLocked(Conflict):
    code = "UnsupportedOperation.AsyncRunEnable"


class FunctionChanged(Conflict):
    """A write lost to another one of the same function (its revision moved on)."""

    code = "FailedOperation.FunctionChanged"


class FunctionUnavailable(Conflict):
    """The function cannot run now: its first build is still running, or it failed."""

    code = "ResourceUnavailable.Function"


class LimitExceeded(CumuloError):
    """Something is larger than the operator allows (an unpacked package, code with its
    layers and environment)."""

    http_status = 400
    code = "LimitExceeded"


class RequestLimitExceeded(CumuloError):
    http_status = 429
    code = "RequestLimitExceeded"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ConcurrencyLimitExceeded(CumuloError):
    http_status = 429
    code = "ResourceInsufficient.Concurrency"


class StoreUnavailable(CumuloError):
    http_status = 503
    code = "InternalError.Store"


class BusUnavailable(CumuloError):
    """The bus (NATS) cannot be reached or refused an operation."""

    http_status = 503
    code = "InternalError.Bus"


def _camel(field: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))
