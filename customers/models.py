"""Tables of customers and what they are told: customers and their service points, the network they hang on,
ticket links, published ETA/ETR, the notification outbox and its delivery log, planned outages, feedback and
tracking attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from core.clock import utcnow
from core.types import UTCDateTime


class Feedback(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # Unique: one feedback per ticket, also when two submissions race.
    ticket_id: int = Field(foreign_key="ticket.id", unique=True)
    score: int
    comment: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Customer(SQLModel, table=True):
    """A customer and their service point: where it is and which transformer (and feeder) feeds it."""

    id: int | None = Field(default=None, primary_key=True)
    account_number: str = Field(max_length=64, unique=True)
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32, index=True)
    email: str | None = Field(default=None, max_length=200)
    lat: float | None = None
    lng: float | None = None
    feeder: str | None = Field(default=None, max_length=64, index=True)
    transformer: str | None = Field(default=None, max_length=64, index=True)
    # Life support or a critical site (hospital, water works): urgent updates, never held by quiet hours.
    critical: bool = False
    language: str = Field(default="zh", max_length=8)
    preferred_channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # "22:00-07:00" local time; "" means the customer asked for updates at any hour; None: the default.
    quiet_hours: str | None = Field(default=None, max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class NetworkDevice(SQLModel, table=True):
    """One device of the distribution network: a transformer, a fuse or line section, or a feeder."""

    __tablename__ = "network_device"

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=20)  # TRANSFORMER, FUSE, SECTION, FEEDER
    parent_id: str | None = Field(default=None, max_length=64, index=True)
    feeder: str | None = Field(default=None, max_length=64, index=True)
    lat: float | None = None
    lng: float | None = None


class IncidentScope(SQLModel, table=True):
    """Where an incident was placed: the predicted network device (None when grouped by distance), and the
    ticket whose crew restores it."""

    __tablename__ = "incident_scope"

    incident_id: int = Field(foreign_key="incident.id", primary_key=True)
    device: str | None = Field(default=None, max_length=64)
    device_kind: str = Field(default="AREA", max_length=20)
    lead_ticket_id: int | None = Field(default=None, foreign_key="ticket.id")


class TicketCustomer(SQLModel, table=True):
    """Which customer reported a ticket (linked at intake by account number or phone)."""

    __tablename__ = "ticket_customer"

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)


class TicketPublication(SQLModel, table=True):
    """What customers were last told about a ticket: the ETA, the ETR and the status."""

    __tablename__ = "ticket_publication"

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True)
    status: str | None = Field(default=None, max_length=20)
    eta: datetime | None = Field(default=None, sa_type=UTCDateTime)
    etr: datetime | None = Field(default=None, sa_type=UTCDateTime)
    published_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Notification(SQLModel, table=True):
    """The outbox: one row per recipient, channel and change; `dedup_key` makes every change go out once."""

    __table_args__ = (Index("ix_notification_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=40)
    channel: str = Field(max_length=20)
    recipient: str = Field(max_length=200)
    customer_id: int | None = Field(default=None, index=True)
    ticket_id: int | None = Field(default=None, index=True)
    incident_id: int | None = Field(default=None, index=True)
    planned_outage_id: int | None = Field(default=None, index=True)
    language: str = Field(default="zh", max_length=8)
    body: str
    urgent: bool = False
    status: str = Field(default="PENDING", max_length=20)  # PENDING, SENT, FAILED (gave up or unrenderable)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)


class NotificationDelivery(SQLModel, table=True):
    """The delivery log: every attempt, its outcome and what the sender said."""

    __tablename__ = "notification_delivery"

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    attempt: int
    ok: bool
    detail: str | None = Field(default=None, max_length=500)


class PlannedOutage(SQLModel, table=True):
    __tablename__ = "planned_outage"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    reason: str | None = Field(default=None, max_length=500)
    feeder: str | None = Field(default=None, max_length=64)
    # [[lat, lng], ...] ring of the area, when given as a polygon.
    polygon: list[list[float]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    start_at: datetime = Field(sa_type=UTCDateTime)
    end_at: datetime = Field(sa_type=UTCDateTime)
    restored_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TrackingAttempt(SQLModel, table=True):
    """A failed public tracking look-up, by ticket number and by client: the basis of rate limiting."""

    __tablename__ = "tracking_attempt"
    __table_args__ = (Index("ix_tracking_attempt_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=120)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
