"""Tables of crews and mobile generators."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from core.clock import utcnow
from core.types import UTCDateTime


class CrewStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    BUSY = "BUSY"
    OFF_SHIFT = "OFF_SHIFT"
    UNAVAILABLE = "UNAVAILABLE"


class GeneratorStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    ASSIGNED = "ASSIGNED"
    DEPLOYED = "DEPLOYED"
    MAINTENANCE = "MAINTENANCE"


class Crew(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    skills: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    home_lat: float
    home_lng: float
    lat: float | None = None
    lng: float | None = None
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    shift_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    shift_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    can_tow_generator: bool = False
    # Set by a dispatcher or the crew's device (ill, vehicle broken); AVAILABLE/BUSY/OFF_SHIFT are derived.
    unavailable: bool = False
    region: str = Field(default="default", max_length=64, index=True)
    # The region the crew belongs to; working in another one (mutual aid) costs extra. Migration 0006.
    home_region: str | None = Field(default=None, max_length=64)
    branch: str | None = Field(default=None, max_length=64)
    # When the crew last took its meal break (dispatcher or device); one taken in the current shift is not planned
    # again. Migration 0010.
    break_taken_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MobileGenerator(SQLModel, table=True):
    __tablename__ = "mobile_generator"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    capacity_kw: float
    lat: float
    lng: float
    status: str = Field(default=GeneratorStatus.AVAILABLE, max_length=20)
    assigned_ticket_id: int | None = Field(default=None, foreign_key="ticket.id")
    region: str = Field(default="default", max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
