"""Appointment slots for non-urgent field work: the best time windows for a ticket given the current plan, and
booking one (the window then binds every later plan: no crew before its start, its end is the deadline)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from core.clock import utcnow
from core.errors import DomainError, ErrorCode
from dispatch.enums import TicketStatus
from dispatch.models import Ticket
from dispatch.optimizer import OptimizerSettings
from dispatch.optimizer.core import Problem, sanitize_routes, ticket_key
from dispatch.optimizer.insertion import best_insertion
from dispatch.optimizer.plan import routes_from_plan
from dispatch.planning import current_routes, read_planning_input
from dispatch.tickets import record_event, require_ticket

BOOKABLE = frozenset({TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.ON_HOLD})
URGENT = frozenset({"EMERGENCY", "CRITICAL"})
MIN_LEAD_MINUTES = 60
SLOT_STEP_MINUTES = 60  # candidate windows start on every whole hour


@dataclass(frozen=True)
class Slot:
    """A window the ticket could be booked into, the crew the plan would send and what it adds to the plan's
    cost (lower is better: fits the routes as they are)."""

    start: datetime
    end: datetime
    crew_id: int
    planned_arrival: datetime
    added_cost: float


def _served_ticket(session: Session, ticket_id: int) -> Ticket:
    """The ticket a crew will visit: a duplicate report is served (and booked) with its original."""
    ticket = require_ticket(session, ticket_id)
    seen = {ticket.id}
    while ticket.duplicate_of_id is not None and ticket.duplicate_of_id not in seen:
        seen.add(ticket.duplicate_of_id)
        ticket = require_ticket(session, ticket.duplicate_of_id)
    return ticket


def _bookable(ticket: Ticket) -> None:
    if ticket.priority in URGENT:
        raise DomainError.one("ticketId", f"ticket {ticket.number} is {ticket.priority}: it is dispatched at "
                              "once, not booked", ErrorCode.CONFLICT)
    if ticket.status not in BOOKABLE:
        raise DomainError.one("ticketId", f"ticket {ticket.number} is {ticket.status}; only NEW, ASSIGNED or "
                              "ON_HOLD work can be booked", ErrorCode.CONFLICT)


def recommend_slots(session: Session, ticket_id: int, *, count: int = 5, window_minutes: int = 120,
                    now: datetime | None = None, settings: OptimizerSettings | None = None) -> list[Slot]:
    """The ``count`` (3–5) cheapest windows of ``window_minutes``, starting on whole hours from an hour from
    now until the crews' shifts end: for each, the ticket is inserted where it costs least into the crews'
    current routes, arriving inside the window; windows no qualified crew can keep are left out (so fewer
    may come back on a full day). A duplicate report gets its original's slots."""
    if not 3 <= count <= 5:
        raise DomainError.one("count", "propose 3 to 5 slots")
    if not 30 <= window_minutes <= 480:
        raise DomainError.one("windowMinutes", "a window is 30 minutes to 8 hours long")
    now = now or utcnow()
    ticket = _served_ticket(session, ticket_id)
    _bookable(ticket)
    ticket_id = ticket.id or 0
    s = settings or OptimizerSettings()
    data = read_planning_input(session, ticket.region, now)
    tid = str(ticket_id)
    me = next((t for t in data.tickets if t.id == tid), None)
    if me is None:
        me_status = "has no location" if ticket.lat is None else "is not on the dispatch board"
        raise DomainError.one("ticketId", f"ticket {ticket.number} {me_status}", ErrorCode.INFEASIBLE)
    base = Problem.build(data.crews, data.tickets, data.generators, s)
    routes = sanitize_routes(base, routes_from_plan(current_routes(session, data)))
    routes = {cid: [k for k in keys if k != ticket_key(tid)] for cid, keys in routes.items()}
    horizon = max((c.shift_end for c in data.crews), default=0)
    first = (-now.minute % 60) + MIN_LEAD_MINUTES  # a whole hour, at least an hour ahead
    slots: list[Slot] = []
    for start in range(first, max(first, horizon - 30), SLOT_STEP_MINUTES):
        end = start + window_minutes
        tickets = [dataclasses.replace(t, earliest_start=start, respond_by=end, assigned_crew_id=None,
                                       status="NEW") if t.id == tid else t for t in data.tickets]
        p = Problem(base.crews, tickets, base.generators, s, base.minutes, base.km)
        if tid in p.unserviceable:
            continue
        ins = best_insertion(p, routes, [ticket_key(tid)], p.qualified[p.ticket_index[tid]])
        if ins is None:
            continue
        delta, cid, pos, _ = ins
        route = routes.get(cid, [])[:pos] + [ticket_key(tid)] + routes.get(cid, [])[pos:]
        arrival = p.simulate(p.crew_index[cid], route).arrivals[pos]
        if arrival > end:
            continue
        slots.append(Slot(now + timedelta(minutes=start), now + timedelta(minutes=end), int(cid),
                          now + timedelta(minutes=arrival), float(delta)))
    slots.sort(key=lambda x: (x.added_cost, x.start))
    return sorted(slots[:count], key=lambda x: x.start)


def book_slot(session: Session, ticket_id: int, start: datetime, end: datetime, source: str,
              now: datetime | None = None) -> Ticket:
    """Fix the ticket's window: later plans send no crew before ``start`` and treat ``end`` as its deadline;
    the customer hears of it through the ticket's event. A duplicate report books its original."""
    now = now or utcnow()
    ticket = _served_ticket(session, ticket_id)
    _bookable(ticket)
    if start < now:
        raise DomainError.one("start", "the window must start in the future")
    if not timedelta(minutes=30) <= end - start <= timedelta(hours=8):
        raise DomainError.one("end", "a window is 30 minutes to 8 hours long")
    ticket.window_start, ticket.window_end = start, end
    session.add(ticket)
    record_event(session, ticket, source, note=f"appointment booked {start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC",
                 kind="NOTE")
    session.commit()
    return ticket
