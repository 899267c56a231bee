"""service quality: tasks, callbacks, caller risk, ticket owners, ticket keywords; indexes for the aggregations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quality_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("caller_key", sa.String(length=64), nullable=True),
        sa.Column("recipient_role", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=20), nullable=True),
        sa.Column("level", sa.String(length=20), nullable=True),
        sa.Column("message", sa.String(length=2000), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_quality_task_ticket_id", "quality_task", ["ticket_id"])
    op.create_index("ix_quality_task_open_recipient", "quality_task", ["status", "recipient"])

    op.create_table(
        "callback_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reached", sa.Boolean(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "resolved_at", name="uq_callback_task_resolution"),
    )
    op.create_index("ix_callback_task_ticket_id", "callback_task", ["ticket_id"])
    op.create_index("ix_callback_task_status", "callback_task", ["status"])

    op.create_table(
        "caller_risk",
        sa.Column("caller_key", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("caller_key"),
    )

    op.create_table(
        "ticket_owner",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.create_index("ix_ticket_owner_unit", "ticket_owner", ["unit"])

    op.create_table(
        "ticket_keyword",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("branch", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("keyword", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ticket_keyword_ticket_id", "ticket_keyword", ["ticket_id"])
    op.create_index("ix_ticket_keyword_created_keyword", "ticket_keyword", ["created_at", "keyword"])

    # The aggregations of serviceStats and repeatCallers: windows by report time, callers by phone or account,
    # reopen events by ticket and status.
    op.create_index("ix_ticket_created_kind", "ticket", ["created_at", "kind"])
    op.create_index("ix_ticket_phone_created", "ticket", ["contact_phone", "created_at"])
    op.create_index("ix_ticket_account_created", "ticket", ["account_number", "created_at"])
    op.create_index("ix_ticket_event_ticket_status", "ticket_event", ["ticket_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_ticket_event_ticket_status", table_name="ticket_event")
    op.drop_index("ix_ticket_account_created", table_name="ticket")
    op.drop_index("ix_ticket_phone_created", table_name="ticket")
    op.drop_index("ix_ticket_created_kind", table_name="ticket")
    op.drop_table("ticket_keyword")
    op.drop_table("ticket_owner")
    op.drop_table("caller_risk")
    op.drop_table("callback_task")
    op.drop_table("quality_task")
