"""Indexes for intake's look-ups: repeat reports at a site and outage calls near each other in time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 12:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ticket_lat_lng", "ticket", ["lat", "lng"])
    op.create_index("ix_ticket_region_kind_created", "ticket", ["region", "kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_ticket_region_kind_created", table_name="ticket")
    op.drop_index("ix_ticket_lat_lng", table_name="ticket")
