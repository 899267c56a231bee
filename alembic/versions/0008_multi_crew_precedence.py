"""Multi-crew jobs and precedence: how many crews a ticket needs at the same time; the ticket it waits for.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticket") as batch:
        batch.add_column(sa.Column("crews_needed", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("depends_on_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("depends_gap_minutes", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("ticket") as batch:
        batch.drop_column("depends_gap_minutes")
        batch.drop_column("depends_on_id")
        batch.drop_column("crews_needed")
