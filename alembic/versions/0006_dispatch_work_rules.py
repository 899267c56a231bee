"""Dispatch work rules: appointment windows and reported overruns on tickets, crews' home regions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticket") as batch:
        batch.add_column(sa.Column("window_start", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("window_end", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("expected_finish", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("crew") as batch:
        batch.add_column(sa.Column("home_region", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crew") as batch:
        batch.drop_column("home_region")
    with op.batch_alter_table("ticket") as batch:
        batch.drop_column("expected_finish")
        batch.drop_column("window_end")
        batch.drop_column("window_start")
