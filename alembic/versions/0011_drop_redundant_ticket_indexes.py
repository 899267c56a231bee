"""Drop the ticket indexes that a composite index already leads with: every one of them is written on each
report (intake writes a ticket per call, and a storm brings thousands an hour) and none is needed for a read.

  ix_ticket_kind            low selectivity; kind is read with created_at (ix_ticket_created_kind) or region
  ix_ticket_region          ix_ticket_region_kind_created starts with region
  ix_ticket_created_at      ix_ticket_created_kind starts with created_at
  ix_ticket_account_number  ix_ticket_account_created starts with account_number
  ix_ticket_contact_phone   ix_ticket_phone_created starts with contact_phone

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 16:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REDUNDANT = {
    "ix_ticket_kind": ["kind"],
    "ix_ticket_region": ["region"],
    "ix_ticket_created_at": ["created_at"],
    "ix_ticket_account_number": ["account_number"],
    "ix_ticket_contact_phone": ["contact_phone"],
}


def upgrade() -> None:
    for name in REDUNDANT:
        op.drop_index(name, table_name="ticket")


def downgrade() -> None:
    for name, columns in REDUNDANT.items():
        op.create_index(name, "ticket", columns)
