"""Assisting crews of multi-crew jobs: an assignment's role (LEAD, or ASSIST for every other crew of the job).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every existing row is a lead: before this revision a ticket had at most one active assignment.
    with op.batch_alter_table("assignment") as batch:
        batch.add_column(sa.Column("role", sa.String(length=10), nullable=False, server_default="LEAD"))


def downgrade() -> None:
    op.execute("DELETE FROM assignment WHERE role = 'ASSIST'")
    with op.batch_alter_table("assignment") as batch:
        batch.drop_column("role")
