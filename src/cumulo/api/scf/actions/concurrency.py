"""SCF actions on a function's reserved concurrency: PutReservedConcurrencyConfig,
GetReservedConcurrencyConfig, DeleteReservedConcurrencyConfig.

SCF reserves *memory* (``ReservedConcurrencyMem``, MB) for a function and caps its
concurrent instances at that memory divided by the function's memory size; cumulo
caps the instances themselves (``max_concurrency``). So a reservation is taken as
``max_concurrency = ReservedConcurrencyMem // MemorySize`` and must be a whole multiple of
the function's memory, at least one instance's worth, and at most the server's
``max_instances`` instances. It is read back as ``max_concurrency × MemorySize``: if the
function's memory changes later, the instance count stays and the memory read back follows.
Calls beyond the cap wait for a free instance (async ones in the queue), as for
``max_concurrency`` set through the REST API.
"""

from __future__ import annotations

from typing import Any

from cumulo.api.scf.actions import action
from cumulo.api.scf.call import ScfCall, check_params
from cumulo.errors import InvalidParameter

_FIELDS = frozenset({"FunctionName", "Namespace"})


@action("PutReservedConcurrencyConfig")
async def put_reserved_concurrency_config(call: ScfCall) -> dict[str, Any]:
    check_params(call, "PutReservedConcurrencyConfig", _FIELDS | {"ReservedConcurrencyMem"})
    fn = await call.function()
    reserved_mb = call.integer("ReservedConcurrencyMem")
    if reserved_mb < fn.memory_mb or reserved_mb % fn.memory_mb:
        raise InvalidParameter(
            f"ReservedConcurrencyMem {reserved_mb} MB must be a whole multiple of the "
            f"function's MemorySize ({fn.memory_mb} MB), at least {fn.memory_mb} MB: cumulo "
            "runs at most ReservedConcurrencyMem / MemorySize instances of it at once",
            code="InvalidParameterValue.ReservedConcurrencyMem",
        )
    instances = reserved_mb // fn.memory_mb
    most = call.core.settings.max_instances
    if instances > most:
        raise InvalidParameter(
            f"ReservedConcurrencyMem {reserved_mb} MB is {instances} instances of "
            f"{fn.memory_mb} MB; this server runs at most {most} instances of a function, "
            f"so at most {most * fn.memory_mb} MB can be reserved",
            code="LimitExceeded.FunctionReservedConcurrencyMemory",
        )
    await call.core.functions.patch(fn.namespace, fn.name, {"max_concurrency": instances})
    return {}


@action("GetReservedConcurrencyConfig")
async def get_reserved_concurrency_config(call: ScfCall) -> dict[str, Any]:
    """``ReservedMem`` is null when nothing is reserved (the function may use as many
    instances as the server allows)."""
    check_params(call, "GetReservedConcurrencyConfig", _FIELDS)
    fn = await call.function()
    reserved = None if fn.max_concurrency is None else fn.max_concurrency * fn.memory_mb
    return {"ReservedMem": reserved}


@action("DeleteReservedConcurrencyConfig")
async def delete_reserved_concurrency_config(call: ScfCall) -> dict[str, Any]:
    check_params(call, "DeleteReservedConcurrencyConfig", _FIELDS)
    fn = await call.function()
    await call.core.functions.patch(fn.namespace, fn.name, {"max_concurrency": None})
    return {}
