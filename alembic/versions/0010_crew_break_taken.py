"""A crew's meal break as taken: when it last took it, so later re-plans of the same shift plan no other.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("crew") as batch:
        batch.add_column(sa.Column("break_taken_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crew") as batch:
        batch.drop_column("break_taken_at")
