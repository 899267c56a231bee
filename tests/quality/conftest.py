"""Fixtures of the service-quality tests: tickets written straight to the database, with the fields under test."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from dispatch.models import Ticket, TicketEvent
from dispatch.rules import ServiceRules, load_rules
from geo.areas import RegionConfig, load_region
from quality.rules import QualitySettings, RiskRules, load_quality_settings, load_risk_rules

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def risk_rules() -> RiskRules:
    return load_risk_rules()


@pytest.fixture(scope="session")
def quality_settings() -> QualitySettings:
    return load_quality_settings()


@pytest.fixture(scope="session")
def region() -> RegionConfig:
    return load_region()


@pytest.fixture(scope="session")
def service_rules() -> ServiceRules:
    return load_rules()


MakeTicket = Callable[..., Ticket]


@pytest.fixture
def make_ticket(session: Session) -> MakeTicket:
    """A ticket with sensible defaults; `ago` is a timedelta before NOW (or pass created_at)."""

    def make(ago: timedelta = timedelta(days=1), **values: Any) -> Ticket:
        created = values.pop("created_at", NOW - ago)
        fields: dict[str, Any] = dict(kind="FAULT_REPAIR", channel="HOTLINE", priority="NORMAL", status="NEW",
                                      summary="停电", area_type="URBAN", branch="CITY", lat=30.6, lng=114.3,
                                      created_at=created, updated_at=created)
        fields.update(values)
        ticket = Ticket(**fields)
        session.add(ticket)
        session.flush()
        session.add(TicketEvent(ticket_id=ticket.id or 0, at=created, status="NEW", source="test"))
        session.commit()
        return ticket

    return make
