"""Tables of tickets, their event history, incidents, dispatch plans and assignments."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from core.clock import utcnow
from core.types import UTCDateTime
from dispatch.enums import IncidentStatus, PlanStatus, TicketStatus


class Incident(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default=IncidentStatus.SUSPECTED, max_length=20, index=True)
    cause: str | None = None
    center_lat: float | None = None
    center_lng: float | None = None
    customers_affected: int = 0
    etr: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Ticket(SQLModel, table=True):
    __table_args__ = (
        Index("ix_ticket_status_priority", "status", "priority"),
        # Service-quality aggregations (migration 0003) and intake's look-ups by place and time (0005); these
        # also serve the look-ups by their first column alone (0011 dropped the single-column copies).
        Index("ix_ticket_created_kind", "created_at", "kind"),
        Index("ix_ticket_phone_created", "contact_phone", "created_at"),
        Index("ix_ticket_account_created", "account_number", "created_at"),
        Index("ix_ticket_lat_lng", "lat", "lng"),
        Index("ix_ticket_region_kind_created", "region", "kind", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    channel: str = Field(max_length=20)
    priority: str = Field(max_length=20)
    status: str = Field(default=TicketStatus.NEW, max_length=20)
    summary: str = Field(max_length=500)
    description: str | None = None
    address: str | None = Field(default=None, max_length=500)
    lat: float | None = None
    lng: float | None = None
    area_type: str = Field(max_length=10)
    branch: str | None = Field(default=None, max_length=64, index=True)
    region: str = Field(default="default", max_length=64)
    required_skills: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    needs_generator: bool = False
    critical_load_kw: float | None = None
    customers_affected: int = 1
    # Crews that must work the job at the same time (heavy transformer swap, pole replacement): they start
    # together or none is sent. Migration 0008.
    crews_needed: int = 1
    # Precedence: this job starts at least depends_gap_minutes after ticket depends_on_id is finished (isolation
    # switching before the repair, tree trimming before line work), and only once that one is planned.
    depends_on_id: int | None = None
    depends_gap_minutes: int = 0
    account_number: str | None = Field(default=None, max_length=64)
    contact_name: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=32)
    phone_last4: str | None = Field(default=None, max_length=4)
    preferred_channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    client_request_id: str | None = Field(default=None, max_length=200, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    respond_by: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    resolve_by: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # When the first step was done: crew on site (field work) or first contact (service-centre work).
    responded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    eta: datetime | None = Field(default=None, sa_type=UTCDateTime)
    etr: datetime | None = Field(default=None, sa_type=UTCDateTime)
    power_restored_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Appointment window (booked slot, or a later try after the customer was not home): no crew before
    # window_start; window_end is the promise. Migration 0006.
    window_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    window_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Work on site reported to take longer (overrun): when the crew now expects to finish. Migration 0006.
    expected_finish: datetime | None = Field(default=None, sa_type=UTCDateTime)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    duplicate_of_id: int | None = Field(default=None, foreign_key="ticket.id")
    # Optimistic lock: every status change bumps it, so concurrent writers can detect each other.
    version: int = 1

    @property
    def number(self) -> str:
        """The reference a customer reads out on the phone: report date and id, e.g. GC261123-00042.

        Derived, not stored: unique without a counter and without a second write at intake.
        """
        return format_ticket_number(self.id or 0, self.created_at)


NUMBER_PATTERN = re.compile(r"^GC(\d{6})-(\d+)$")


def format_ticket_number(ticket_id: int, created_at: datetime) -> str:
    return f"GC{created_at:%y%m%d}-{ticket_id:05d}"


def parse_ticket_number(number: str) -> tuple[str, int] | None:
    """(yymmdd, id) of a well-formed number, else None."""
    match = NUMBER_PATTERN.match(number.strip().upper())
    return (match.group(1), int(match.group(2))) if match else None


class TicketEvent(SQLModel, table=True):
    __tablename__ = "ticket_event"
    __table_args__ = (Index("ix_ticket_event_ticket_status", "ticket_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status: str = Field(max_length=20)
    # STATUS for a change of status, NOTE, WARNING (e.g. address not found), ASSIGNMENT, ...
    kind: str = Field(default="STATUS", max_length=20)
    note: str | None = None
    source: str = Field(max_length=40)


class DispatchPlan(SQLModel, table=True):
    __tablename__ = "dispatch_plan"

    id: int | None = Field(default=None, primary_key=True)
    region: str = Field(default="default", max_length=64)
    status: str = Field(default=PlanStatus.PROPOSED, max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Plan start: planned minutes in the optimizer are counted from here.
    start_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    solve_seconds: float = 0.0
    late_tickets: int = 0
    total_travel_minutes: float = 0.0
    objective: float = 0.0
    trigger: str = Field(default="manual", max_length=40)
    stats: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    unassigned: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class AssignmentRole(StrEnum):
    """A crew's part in a job: the LEAD crew is the one the ticket's status, ETA and customers follow; on a
    multi-crew job (``Ticket.crews_needed`` > 1) every other crew there has an ASSIST assignment."""

    LEAD = "LEAD"
    ASSIST = "ASSIST"


class Assignment(SQLModel, table=True):
    """A crew's job: part of a plan (active once committed) or a dispatcher's manual assignment."""

    __table_args__ = (Index("ix_assignment_active_crew", "active", "crew_id", "sequence"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int | None = Field(default=None, foreign_key="dispatch_plan.id", index=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    crew_id: int = Field(foreign_key="crew.id", index=True)
    generator_id: int | None = Field(default=None, foreign_key="mobile_generator.id")
    sequence: int = 0
    planned_arrival: datetime = Field(sa_type=UTCDateTime)
    planned_finish: datetime = Field(sa_type=UTCDateTime)
    pinned: bool = False
    reason: str | None = None
    # At most one active LEAD assignment per ticket: the one the ticket's status, ETA and customers follow.
    # A multi-crew job also has one active ASSIST row per other crew (same planned times), active with the
    # lead and released with it. Migration 0009.
    active: bool = Field(default=False, index=True)
    role: str = Field(default=AssignmentRole.LEAD, max_length=10)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
