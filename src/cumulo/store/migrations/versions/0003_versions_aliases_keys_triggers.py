"""Versions and aliases of functions, API keys for the SCF API, triggers; and the version
each invocation runs.

Revision ID: 0003
Revises: 0002
Create Date: 2024-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        batch.add_column(
            sa.Column("function_version", sa.String, nullable=False, server_default="$LATEST")
        )
    op.create_table(
        "function_versions",
        sa.Column("function_id", sa.String, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_table(
        "aliases",
        sa.Column("function_id", sa.String, primary_key=True),
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("function_version", sa.String, nullable=False),
        sa.Column("additional_weights", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("secret_id", sa.String, primary_key=True),
        sa.Column("secret_enc", sa.Text, nullable=False),
        sa.Column("namespace", sa.String, nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("revoked_at", sa.Double, nullable=True),
    )
    op.create_table(
        "triggers",
        sa.Column("function_id", sa.String, primary_key=True),
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("namespace", sa.String, nullable=False),
        sa.Column("function_name", sa.String, nullable=False),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("qualifier", sa.String, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("custom_argument", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_index("ix_triggers_type", "triggers", ["type", "enabled"])


def downgrade() -> None:
    op.drop_index("ix_triggers_type", table_name="triggers")
    op.drop_table("triggers")
    op.drop_table("api_keys")
    op.drop_table("aliases")
    op.drop_table("function_versions")
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("function_version")
