"""The initial schema: namespaces, code packages, functions, invocations, log lines.

Revision ID: 0001
Revises:
Create Date: 2024-01-01

Written out in full rather than derived from ``cumulo.store.schema`` so that this revision
keeps creating the same schema whatever head becomes.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    namespaces = op.create_table(
        "namespaces",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "code_packages",
        sa.Column("sha256", sa.String, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "functions",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column(
            "namespace",
            sa.String,
            sa.ForeignKey("namespaces.name", name="fk_functions_namespace"),
            nullable=False,
        ),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("handler", sa.String, nullable=False),
        sa.Column("code_sha256", sa.String, nullable=False),
        sa.Column("code_size_bytes", sa.BigInteger, nullable=False),
        sa.Column("timeout_s", sa.Double, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("async_run", sa.Boolean, nullable=False),
        sa.Column("max_qps", sa.Integer, nullable=False),
        sa.Column("max_concurrency", sa.Integer, nullable=True),
        sa.Column("retry_attempts", sa.Integer, nullable=False),
        sa.Column("max_event_age_s", sa.Double, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.UniqueConstraint("namespace", "name", name="uq_functions_namespace_name"),
    )
    op.create_table(
        "invocations",
        sa.Column("request_id", sa.String, primary_key=True),
        sa.Column("namespace", sa.String, nullable=False),
        sa.Column("function_name", sa.String, nullable=False),
        sa.Column("function_id", sa.String, nullable=False),
        sa.Column("function_revision", sa.Integer, nullable=False),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("async_run", sa.Boolean, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("run_after", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double, nullable=True),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("duration_ms", sa.Double, nullable=True),
        sa.Column("billed_duration_ms", sa.BigInteger, nullable=True),
        sa.Column("peak_memory_mb", sa.Double, nullable=True),
        sa.Column("idempotency_key", sa.String, nullable=True),
        sa.Column("lease_owner", sa.String, nullable=True),
        sa.Column("lease_expires_at", sa.Double, nullable=True),
        sa.Column("dead_lettered", sa.Boolean, nullable=False),
        sa.Column("terminate_mode", sa.String, nullable=True),
    )
    # Dispatchers claim the oldest due queued rows.
    op.create_index("ix_invocations_claim", "invocations", ["status", "run_after", "created_at"])
    # Listing a namespace, newest first, with (created_at, request_id) as the cursor.
    op.create_index(
        "ix_invocations_list",
        "invocations",
        ["namespace", sa.text("created_at DESC"), "request_id"],
    )
    op.create_index(
        "ix_invocations_function",
        "invocations",
        ["namespace", "function_name", "created_at"],
    )
    # Dispatchers claim for one function at a time when it has a concurrency limit.
    op.create_index(
        "ix_invocations_function_claim",
        "invocations",
        ["function_id", "status", "run_after"],
    )
    # Recovery looks for running rows whose lease ran out.
    op.create_index("ix_invocations_lease", "invocations", ["status", "lease_expires_at"])
    op.create_index(
        "uq_invocations_idempotency",
        "invocations",
        ["function_id", "idempotency_key"],
        unique=True,
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "log_lines",
        sa.Column("request_id", sa.String, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("stream", sa.String, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.bulk_insert(
        namespaces,
        [{"name": "default", "description": "The default namespace.", "created_at": time.time()}],
    )


def downgrade() -> None:
    op.drop_table("log_lines")
    op.drop_table("invocations")
    op.drop_table("functions")
    op.drop_table("code_packages")
    op.drop_table("namespaces")
