"""First-responsibility (首问负责): the first receiving unit owns a ticket until an explicit, recorded handover."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError, ErrorCode
from dispatch.models import Ticket
from dispatch.tickets import record_event, require_ticket
from geo.areas import RegionConfig
from quality.common import check_unit
from quality.models import TicketOwner
from quality.rules import QualitySettings


@dataclass(frozen=True)
class Owner:
    unit: str
    # True when the ticket has no location and no handover: it sits with the default unit and is flagged.
    defaulted: bool


def first_unit(ticket: Ticket, settings: QualitySettings) -> Owner:
    """The unit that first received the ticket: its branch by location, else the default unit (flagged)."""
    if ticket.branch:
        return Owner(ticket.branch, defaulted=False)
    return Owner(settings.default_unit.code, defaulted=True)


def owners_of(session: Session, tickets: Sequence[Ticket], settings: QualitySettings) -> dict[int, Owner]:
    """The current owner of each ticket (handovers first, then the first unit), in one query."""
    ids = [t.id for t in tickets if t.id is not None]
    handed = {o.ticket_id: o.unit for o in session.exec(select(TicketOwner).where(col(TicketOwner.ticket_id)
                                                                                  .in_(ids)))} if ids else {}
    return {t.id or 0: Owner(handed[t.id], False) if t.id in handed else first_unit(t, settings) for t in tickets}


def owner_of(session: Session, ticket: Ticket, settings: QualitySettings) -> Owner:
    return owners_of(session, [ticket], settings)[ticket.id or 0]


def handover_ticket(session: Session, ticket_id: int, to_unit: str, reason: str, source: str,
                    region: RegionConfig, settings: QualitySettings, at: datetime | None = None) -> Ticket:
    """Hand a ticket over to `to_unit`, recorded as a HANDOVER event; the new unit owns it from now on."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError.one("reason", "say why the ticket is handed over", ErrorCode.REQUIRED)
    if len(reason) > 2000:
        raise DomainError.one("reason", "reason may be at most 2000 characters")
    check_unit(to_unit, region, settings, field="toUnit")
    ticket = require_ticket(session, ticket_id)
    current = owner_of(session, ticket, settings)
    if current.unit == to_unit:
        raise DomainError.one("toUnit", f"ticket {ticket.number} is already owned by {to_unit}", ErrorCode.CONFLICT)
    at = at or utcnow()
    row = session.get(TicketOwner, ticket.id)
    if row is None:
        row = TicketOwner(ticket_id=ticket.id or 0, unit=to_unit, since=at)
    else:
        row.unit, row.since = to_unit, at
    session.add(row)
    record_event(session, ticket, source, note=f"handed over from {current.unit} to {to_unit}: {reason}",
                 kind="HANDOVER", at=at)
    return ticket
