"""Widen ``ix_invocations_function_claim`` to the whole claim order.

Dispatchers claim one function at a time, ``ORDER BY run_after, created_at, request_id``.
With only ``(function_id, status, run_after)`` indexed, PostgreSQL either sorted every due
row of the function (no statistics yet) or, once it had statistics, walked the
``(status, run_after)`` index past every other function's due rows; either way a claim
grew with the depth of the queue. With the whole order in the index, a claim of ``n`` rows
reads ``n`` index entries on both backends.

Revision ID: 0002
Revises: 0001
Create Date: 2024-01-02
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_NAME = "ix_invocations_function_claim"


def upgrade() -> None:
    op.drop_index(_NAME, table_name="invocations")
    op.create_index(
        _NAME,
        "invocations",
        ["function_id", "status", "run_after", "created_at", "request_id"],
    )


def downgrade() -> None:
    op.drop_index(_NAME, table_name="invocations")
    op.create_index(_NAME, "invocations", ["function_id", "status", "run_after"])
