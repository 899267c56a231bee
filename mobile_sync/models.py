"""Tables of crew-device sync: registered devices, the change log (also the outbox of live updates), the
counter that numbers it, every client mutation a device pushed (the exactly-once ledger) and GPS breadcrumbs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.clock import utcnow
from core.types import UTCDateTime


class Device(SQLModel, table=True):
    """A phone or tablet registered to one crew; its id is chosen by the device (e.g. a UUID)."""

    id: str = Field(primary_key=True, max_length=100)
    crew_id: int = Field(foreign_key="crew.id", index=True)
    name: str | None = Field(default=None, max_length=200)
    registered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The most recent clock skew seen (device clock minus server clock, seconds; positive = device ahead).
    last_skew_seconds: float | None = None


class SyncCounter(SQLModel, table=True):
    """Named counters: `change` numbers the change log, `relay` is the last sequence published to Redis."""

    __tablename__ = "sync_counter"

    name: str = Field(primary_key=True, max_length=20)
    value: int = 0


class SyncChange(SQLModel, table=True):
    """One row per thing a reader must learn about, numbered in commit order (see mobile_sync.changes).

    topic CREW: ticket `ticket_id` changed for crew `crew_id` (gained, changed or lost);
    topic BOARD: ticket changed (dispatchers); topic CUSTOMER: a customer-visible field of the ticket changed
    (status, ETA, ETR, restoration), `payload` says which and the new values: the notification outbox.
    """

    __tablename__ = "sync_change"
    __table_args__ = (Index("ix_sync_change_topic_crew_seq", "topic", "crew_id", "seq"),)

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    topic: str = Field(max_length=10)
    crew_id: int | None = None
    ticket_id: int | None = None
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    payload: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class ClientMutation(SQLModel, table=True):
    """Every mutation a device pushed, applied or refused, with the answer it got (replays get it again)."""

    __tablename__ = "client_mutation"
    __table_args__ = (UniqueConstraint("device_id", "client_mutation_id", name="uq_client_mutation_device_cmid"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=100, foreign_key="device.id")
    client_mutation_id: str = Field(max_length=100)
    crew_id: int = Field(index=True)
    # sha256 of the mutation's content: the same id with other content is a CONFLICT, not a replay.
    fingerprint: str = Field(max_length=64)
    kind: str = Field(max_length=20)
    ticket_id: int | None = Field(default=None, index=True)
    status: str | None = Field(default=None, max_length=20)
    note: str | None = None
    lat: float | None = None
    lng: float | None = None
    occurred_at: datetime = Field(sa_type=UTCDateTime)  # as the device said
    effective_at: datetime = Field(sa_type=UTCDateTime)  # clamped to the server's clock
    skew_seconds: float = 0.0  # occurred_at - effective_at
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    applied: bool = False
    outcome: str | None = Field(default=None, max_length=40)  # APPLIED, NO_CHANGE, HISTORY, RESOLVED_WINS, ...
    error_code: str | None = Field(default=None, max_length=20)
    error_message: str | None = None
    error_field: str | None = Field(default=None, max_length=100)
    event_id: int | None = Field(default=None, foreign_key="ticket_event.id")


class CrewBreadcrumb(SQLModel, table=True):
    """A GPS fix of a crew, from one LOCATION mutation."""

    __tablename__ = "crew_breadcrumb"
    __table_args__ = (Index("ix_crew_breadcrumb_crew_at", "crew_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    crew_id: int = Field(foreign_key="crew.id")
    device_id: str = Field(max_length=100)
    mutation_id: int = Field(foreign_key="client_mutation.id", unique=True)
    lat: float
    lng: float
    at: datetime = Field(sa_type=UTCDateTime)
