"""``cumulo``: the command line. A thin shell over :class:`cumulo.client.Client`.

Every flag has a ``CUMULO_*`` environment twin, shown in ``--help``. Data goes to stdout
(a result, a request_id, log lines written to stdout), everything else to stderr, so
``id=$(cumulo invoke etl --async)`` works. Errors print ``error: <code>: <message>`` on
stderr and exit with one of the :class:`ExitCode` values; never a traceback.
"""

from __future__ import annotations

from cumulo.cli.aliases import aliases
from cumulo.cli.common import ExitCode, main
from cumulo.cli.functions import build_log, deploy, list_functions, remove
from cumulo.cli.invocations import events, invoke, logs, status, terminate
from cumulo.cli.keys import keys
from cumulo.cli.layers import layers
from cumulo.cli.namespaces import namespaces
from cumulo.cli.server import server
from cumulo.cli.versions import versions

__all__ = ["ExitCode", "main"]

# All the wiring in one place: each module defines its commands, this adds them to `main`.
main.add_command(server)
main.add_command(deploy)
main.add_command(build_log)
main.add_command(list_functions)
main.add_command(remove)
main.add_command(invoke)
main.add_command(status)
main.add_command(logs)
main.add_command(terminate)
main.add_command(events)
main.add_command(keys)
main.add_command(namespaces)
main.add_command(versions)
main.add_command(aliases)
main.add_command(layers)
