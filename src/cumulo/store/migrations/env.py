"""Alembic environment for cumulo's store.

cumulo runs its migrations itself (``SqlStore.open()``): it hands Alembic an open connection
in ``config.attributes["connection"]``, already inside a transaction, and Alembic runs the
scripts on it. There is no offline (SQL script) mode and no ``alembic.ini`` to configure.
"""

from __future__ import annotations

from alembic import context

from cumulo.store import schema_builds  # noqa: F401 - its tables are part of metadata
from cumulo.store.schema import metadata


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "cumulo's migrations run from SqlStore.open(), which passes a connection in "
            "config.attributes['connection']; open the store instead of calling alembic"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


_run()
