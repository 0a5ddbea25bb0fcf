"""Function dependencies: a function's state and build, installed environments shared by
content, layer versions.

Revision ID: 0005
Revises: 0004
Create Date: 2024-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("state", sa.String, nullable=False, server_default="active"))
        batch.add_column(sa.Column("state_reason", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("ready", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("deps_key", sa.String, nullable=True))
        batch.add_column(sa.Column("layers", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("install_dependency", sa.Boolean, nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("build_id", sa.String, nullable=True))
    op.create_table(
        "builds",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("function_id", sa.String, nullable=True),
        sa.Column("namespace", sa.String, nullable=False),
        sa.Column("function_name", sa.String, nullable=False),
        sa.Column("layer_name", sa.String, nullable=True),
        sa.Column("layer_version", sa.Integer, nullable=True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("node_id", sa.String, nullable=True),
        sa.Column("lease_expires_at", sa.Double, nullable=True),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("duration_ms", sa.Double, nullable=True),
        sa.Column("deps_key", sa.String, nullable=True),
        sa.Column("reused", sa.Boolean, nullable=False),
        sa.Column("installed_bytes", sa.BigInteger, nullable=True),
        sa.Column("packages", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_builds_status", "builds", ["status", "lease_expires_at"])
    op.create_index("ix_builds_function", "builds", ["function_id"])
    op.create_table(
        "environments",
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("requirements", sa.Text, nullable=False),
        sa.Column("interpreter", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("builder", sa.String, nullable=True),
        sa.Column("lease_expires_at", sa.Double, nullable=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("packages", sa.Text, nullable=False),
        sa.Column("build_ms", sa.Double, nullable=False),
        sa.Column("unused_since", sa.Double, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.create_table(
        "layer_versions",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("code_sha256", sa.String, nullable=False),
        sa.Column("code_size_bytes", sa.BigInteger, nullable=False),
        sa.Column("unpacked_bytes", sa.BigInteger, nullable=False),
        sa.Column("compatible_runtimes", sa.Text, nullable=False),
        sa.Column("license_info", sa.Text, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False),
        sa.Column("deps_key", sa.String, nullable=True),
        sa.Column("build_id", sa.String, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("layer_versions")
    op.drop_table("environments")
    op.drop_index("ix_builds_function", "builds")
    op.drop_index("ix_builds_status", "builds")
    op.drop_table("builds")
    with op.batch_alter_table("functions") as batch:
        for column in (
            "build_id",
            "install_dependency",
            "layers",
            "deps_key",
            "ready",
            "state_reason",
            "state",
        ):
            batch.drop_column(column)
