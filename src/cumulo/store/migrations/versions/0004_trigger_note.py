"""A free-text note on triggers (SCF's trigger ``Description``).

Revision ID: 0004
Revises: 0003
Create Date: 2024-02-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("note", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("note")
