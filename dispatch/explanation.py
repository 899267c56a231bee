"""Answers to a dispatcher's "why?": why this crew goes to a ticket, why another one does not, what keeps a
ticket unassigned — read from the committed routes with the same costs as the optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core.errors import DomainError, ErrorCode
from crews.roster import require_crew
from dispatch.models import Assignment, AssignmentRole
from dispatch.optimizer import OptimizerSettings
from dispatch.optimizer.core import Problem, sanitize_routes
from dispatch.optimizer.explain import blocking_reason, why_not
from dispatch.optimizer.plan import routes_from_plan
from dispatch.planning import current_routes, read_planning_input
from dispatch.tickets import require_ticket


@dataclass(frozen=True)
class TicketExplanation:
    ticket_id: int
    crew_id: int | None  # the crew on its way (active assignment), if any
    reason: str  # why that crew, or what blocks the ticket
    other_crew_id: int | None = None
    why_not_other: str | None = None  # why ``other_crew_id`` is not the one going


def explain_ticket(session: Session, ticket_id: int, crew_id: int | None = None, now: datetime | None = None,
                   settings: OptimizerSettings | None = None) -> TicketExplanation:
    """Why the ticket has its crew (or none) and, with ``crew_id``, why that crew is not the one going."""
    ticket = require_ticket(session, ticket_id)
    other = require_crew(session, crew_id) if crew_id is not None else None
    active = session.exec(select(Assignment).where(Assignment.ticket_id == ticket_id,
                                                   col(Assignment.active).is_(True),
                                                   Assignment.role == AssignmentRole.LEAD.value)).first()
    data = read_planning_input(session, ticket.region, now)
    tid = str(ticket_id)
    if all(t.id != tid for t in data.tickets):
        if active is not None:
            return TicketExplanation(ticket_id, active.crew_id, active.reason or "", crew_id, None)
        raise DomainError.one("ticketId", f"ticket {ticket.number} is {ticket.status}: not on the dispatch board",
                              ErrorCode.CONFLICT)
    p = Problem.build(data.crews, data.tickets, data.generators, settings or OptimizerSettings())
    routes = sanitize_routes(p, routes_from_plan(current_routes(session, data)))
    reason = (active.reason or "") if active is not None else blocking_reason(p, routes, tid)
    why = None
    if other is not None:
        why = (why_not(p, routes, tid, str(other.id)) if str(other.id) in p.crew_index
               else f"{other.name} is not on region {ticket.region}'s board (unavailable, off shift or elsewhere)")
    return TicketExplanation(ticket_id, active.crew_id if active else None, reason, crew_id, why)
