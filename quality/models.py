"""Tables of service quality: tasks and notifications, callbacks, caller risk levels, owners, ticket keywords."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.clock import utcnow
from core.types import UTCDateTime


class QualityTask(SQLModel, table=True):
    """Something a unit, a manager or a department must do: a supervision notice (督办) or a risk-level task.

    `key` is unique: the same escalation (ticket, step, level, recipient) is written once, however often the
    supervisor runs.
    """

    __tablename__ = "quality_task"
    __table_args__ = (Index("ix_quality_task_open_recipient", "status", "recipient"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    # SUPERVISION_WARNING, SUPERVISION_OVERDUE, RISK_LEVEL
    kind: str = Field(max_length=30)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    caller_key: str | None = Field(default=None, max_length=64)
    # UNIT (a branch / 供电分局), MANAGER (its manager), DEPARTMENT (from the risk rules)
    recipient_role: str = Field(max_length=20)
    recipient: str = Field(max_length=200)
    unit: str = Field(max_length=64)
    step: str | None = Field(default=None, max_length=20)
    level: str | None = Field(default=None, max_length=20)
    message: str = Field(max_length=2000)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default="OPEN", max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CallbackTask(SQLModel, table=True):
    """A return call (回访) after a resolution; one per ticket and resolution."""

    __tablename__ = "callback_task"
    __table_args__ = (UniqueConstraint("ticket_id", "resolved_at", name="uq_callback_task_resolution"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    resolved_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(max_length=20)  # COMPLAINT or SAMPLE
    due_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="PENDING", max_length=20, index=True)  # PENDING, DONE
    reached: bool | None = None
    score: int | None = None
    resolved: bool | None = None
    note: str | None = Field(default=None, max_length=2000)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CallerRisk(SQLModel, table=True):
    """The last risk level seen for a caller (phone or account), so a change of level is noticed once."""

    __tablename__ = "caller_risk"

    caller_key: str = Field(primary_key=True, max_length=64)
    level: str | None = Field(default=None, max_length=20)
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TicketOwner(SQLModel, table=True):
    """The unit owning a ticket after an explicit handover (first-responsibility: before any, the first unit)."""

    __tablename__ = "ticket_owner"

    ticket_id: int = Field(primary_key=True, foreign_key="ticket.id")
    unit: str = Field(max_length=64, index=True)
    since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TicketKeyword(SQLModel, table=True):
    """Keywords of a ticket's text, once per ticket and keyword; a ticket without any has one row with NULL.

    Branch, kind and report time are copied from the ticket so that hotspots aggregate this table alone.
    """

    __tablename__ = "ticket_keyword"
    __table_args__ = (Index("ix_ticket_keyword_created_keyword", "created_at", "keyword"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    branch: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=20)
    keyword: str | None = Field(default=None, max_length=64)
    label: str | None = Field(default=None, max_length=64)
    weight: float = 1.0
