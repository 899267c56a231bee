"""customers, network, notifications, planned outages, tracking attempts

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _dt(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lng", sa.Float(), nullable=True),
        sa.Column("feeder", sa.String(length=64), nullable=True),
        sa.Column("transformer", sa.String(length=64), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("preferred_channels", sa.JSON(), nullable=False),
        sa.Column("quiet_hours", sa.String(length=20), nullable=True),
        _dt("created_at", False),
        _dt("updated_at", False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_number"),
    )
    op.create_index("ix_customer_phone", "customer", ["phone"])
    op.create_index("ix_customer_feeder", "customer", ["feeder"])
    op.create_index("ix_customer_transformer", "customer", ["transformer"])

    op.create_table(
        "network_device",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("feeder", sa.String(length=64), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lng", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_network_device_parent_id", "network_device", ["parent_id"])
    op.create_index("ix_network_device_feeder", "network_device", ["feeder"])

    op.create_table(
        "incident_scope",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("device_kind", sa.String(length=20), nullable=False),
        sa.Column("lead_ticket_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["lead_ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("incident_id"),
    )

    op.create_table(
        "ticket_customer",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"]),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.create_index("ix_ticket_customer_customer_id", "ticket_customer", ["customer_id"])

    op.create_table(
        "ticket_publication",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=True),
        _dt("eta"),
        _dt("etr"),
        _dt("published_at", False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("ticket_id"),
    )

    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("planned_outage_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _dt("next_attempt_at", False),
        _dt("created_at", False),
        _dt("sent_at"),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key"),
    )
    op.create_index("ix_notification_due", "notification", ["status", "next_attempt_at"])
    op.create_index("ix_notification_customer_id", "notification", ["customer_id"])
    op.create_index("ix_notification_ticket_id", "notification", ["ticket_id"])
    op.create_index("ix_notification_incident_id", "notification", ["incident_id"])
    op.create_index("ix_notification_planned_outage_id", "notification", ["planned_outage_id"])

    op.create_table(
        "notification_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        _dt("at", False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notification_delivery_notification_id", "notification_delivery", ["notification_id"])

    op.create_table(
        "planned_outage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("feeder", sa.String(length=64), nullable=True),
        sa.Column("polygon", sa.JSON(), nullable=True),
        _dt("start_at", False),
        _dt("end_at", False),
        _dt("restored_at"),
        _dt("created_at", False),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "tracking_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        _dt("at", False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tracking_attempt_key_at", "tracking_attempt", ["key", "at"])


def downgrade() -> None:
    for table in ("tracking_attempt", "planned_outage", "notification_delivery", "notification",
                  "ticket_publication", "ticket_customer", "incident_scope", "network_device", "customer"):
        op.drop_table(table)
