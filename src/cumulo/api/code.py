"""Code packages by link: ``GET /v1/code/{sha256}?expires=&signature=`` serves a function's
zip to whoever holds a link made by :func:`signed_code_url` (SCF's GetFunctionAddress), for
``LINK_TTL_S`` seconds, with no token: the link's HMAC is its authority."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.api.http import node
from cumulo.errors import NotFound, Unauthorized

if TYPE_CHECKING:
    from cumulo.app import Cumulo

LINK_TTL_S = 600


def _signature(core: Cumulo, sha256: str, expires: int) -> str:
    key = hashlib.sha256(b"code-link:" + core.token.encode()).digest()
    return hmac.new(key, f"{sha256}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_code_url(core: Cumulo, base_url: str, sha256: str) -> str:
    expires = int(time.time()) + LINK_TTL_S
    signature = _signature(core, sha256, expires)
    return f"{base_url.rstrip('/')}/v1/code/{sha256}?expires={expires}&signature={signature}"


async def download(request: Request) -> Response:
    core = node(request)
    sha256 = request.path_params["sha256"]
    raw_expires = request.query_params.get("expires", "")
    signature = request.query_params.get("signature", "")
    if not (raw_expires.isascii() and raw_expires.isdigit() and len(raw_expires) <= 12):
        raise Unauthorized("this link has no valid expires; ask GetFunctionAddress for a new one")
    expires = int(raw_expires)
    if not hmac.compare_digest(signature.encode(), _signature(core, sha256, expires).encode()):
        raise Unauthorized("this link's signature is not valid")
    if expires < time.time():
        raise Unauthorized("this link has expired; ask GetFunctionAddress for a new one")
    try:
        data = await core.store.load_code(sha256)
    except NotFound:
        raise NotFound(f"no code package {sha256}", code="ResourceNotFound.Code") from None
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{sha256[:12]}.zip"'},
    )


routes = [Route("/v1/code/{sha256}", download, methods=["GET"])]
