"""The SCF actions, one module per resource; each registers its handlers by action name.

A handler takes the :class:`~cumulo.api.scf.call.ScfCall` and returns the fields of
``Response`` (without ``RequestId``); it raises ``cumulo.errors`` for what went wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cumulo.api.scf.call import ScfCall

Handler = Callable[[ScfCall], Awaitable[dict[str, Any]]]

#: Action name → handler. Filled by the modules below when they are imported.
ACTIONS: dict[str, Handler] = {}


def action(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in ACTIONS:
            raise RuntimeError(f"action {name} is registered twice")
        ACTIONS[name] = handler
        return handler

    return register


def load() -> dict[str, Handler]:
    """Import every action module (each registers itself) and return the registry."""
    from cumulo.api.scf.actions import (  # noqa: F401
        concurrency,
        events,
        functions,
        invoke,
        layers,
        logs,
        namespaces,
        triggers,
        versions,
    )

    return ACTIONS
