"""Builders of the mobile-sync tests, as the `world` fixture: crews with devices, assigned tickets, mutations."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session

from core.clock import utcnow
from crews.models import Crew
from crews.roster import NewCrew, create_crew
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.models import Ticket
from dispatch.planning import AssignRequest, assign_ticket
from mobile_sync.models import Device
from mobile_sync.protocol import MutationIn, register_device

WEST, EAST = (30.60, 114.26), (30.60, 114.36)


class World:
    def __init__(self, session: Session, ctx: IntakeContext) -> None:
        self.session, self.ctx = session, ctx
        self._ids = itertools.count(1)

    def crew(self, name: str, at: tuple[float, float] = WEST, device_id: str | None = None) -> tuple[Crew, Device]:
        """A crew on shift with one registered device."""
        now = utcnow()
        crew = create_crew(self.session, NewCrew(
            name=name, skills=["lv_overhead"], home_lat=at[0], home_lng=at[1],
            shift_start=now - timedelta(hours=1), shift_end=now + timedelta(hours=8)))
        device = register_device(self.session, crew.id or 0, device_id or f"phone-{name.lower().replace(' ', '-')}")
        return crew, device

    def ticket(self, crew: Crew | None = None, at: tuple[float, float] | None = None,
               phone: str | None = None) -> Ticket:
        """A fault ticket, assigned by hand to `crew` when given; each one kms from the others and from another
        caller, so intake does not join them into one incident or mark them duplicates."""
        n = next(self._ids)
        at = at or (30.52 + 0.03 * (n % 8), 114.20 + 0.03 * (n // 8 % 8))
        phone = phone or f"1380000{n:04d}"
        # Reported two hours ago, so device times of the last hour fall after the report.
        ticket = create_ticket(self.session, self.ctx, NewTicket(
            kind="FAULT_REPAIR", channel="HOTLINE", summary="家里停电了", lat=at[0], lng=at[1],
            contact_phone=phone, reported_at=utcnow() - timedelta(hours=2)), "dispatcher").ticket
        if crew is not None:
            self.assign(ticket, crew)
        return ticket

    def assign(self, ticket: Ticket, crew: Crew) -> None:
        assign_ticket(self.session, AssignRequest(ticket_id=ticket.id or 0, crew_id=crew.id or 0), "dispatcher")
        self.session.refresh(ticket)

    def status(self, ticket: Ticket | int | str, value: str, at: datetime | None = None, cmid: str | None = None,
               note: str | None = None) -> MutationIn:
        ticket_id = ticket.id if isinstance(ticket, Ticket) else ticket
        return MutationIn(client_mutation_id=cmid or f"m{next(self._ids)}", kind="STATUS_CHANGE",
                          ticket_id=ticket_id, status=value, occurred_at=at or utcnow(), note=note)

    def location(self, lat: float, lng: float, at: datetime | None = None, cmid: str | None = None) -> MutationIn:
        return MutationIn(client_mutation_id=cmid or f"m{next(self._ids)}", kind="LOCATION", lat=lat, lng=lng,
                          occurred_at=at or utcnow())


@pytest.fixture
def world(session: Session, intake_context: IntakeContext) -> World:
    return World(session, intake_context)
