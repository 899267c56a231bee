"""Tickets after intake: lookup, filtered listing with cursor pages, the overdue rule, status changes."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import Session, col, select

# Writes the change log (crew sync, live updates, customer outbox) in the flush of every ticket change.
import mobile_sync.changes  # noqa: F401
from core.clock import utcnow
from core.errors import DomainError, ErrorCode
from dispatch.enums import FIELD_KINDS, OPEN_STATUSES, TicketStatus
from dispatch.models import Assignment, AssignmentRole, Ticket, TicketEvent, parse_ticket_number

# Which status may follow which; RESOLVED is final for the field (CLOSED/cancel are office steps).
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    TicketStatus.NEW: frozenset({TicketStatus.ASSIGNED, TicketStatus.ON_HOLD, TicketStatus.RESOLVED,
                                 TicketStatus.CANCELLED, TicketStatus.EN_ROUTE, TicketStatus.ON_SITE}),
    TicketStatus.ASSIGNED: frozenset({TicketStatus.EN_ROUTE, TicketStatus.ON_SITE, TicketStatus.ON_HOLD,
                                      TicketStatus.RESOLVED, TicketStatus.NEW, TicketStatus.CANCELLED,
                                      TicketStatus.ASSIGNED}),
    TicketStatus.EN_ROUTE: frozenset({TicketStatus.ON_SITE, TicketStatus.ON_HOLD, TicketStatus.RESOLVED,
                                      TicketStatus.ASSIGNED, TicketStatus.CANCELLED}),
    TicketStatus.ON_SITE: frozenset({TicketStatus.RESOLVED, TicketStatus.ON_HOLD, TicketStatus.CANCELLED}),
    TicketStatus.ON_HOLD: frozenset({TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.EN_ROUTE,
                                     TicketStatus.ON_SITE, TicketStatus.RESOLVED, TicketStatus.CANCELLED}),
    TicketStatus.RESOLVED: frozenset({TicketStatus.CLOSED, TicketStatus.NEW}),
    TicketStatus.CLOSED: frozenset(),
    TicketStatus.CANCELLED: frozenset(),
}


def is_overdue(ticket: Ticket, now: datetime | None = None) -> bool:
    """Open, and a deadline has passed with its step not done (computed on every read, never stored)."""
    now = now or utcnow()
    if ticket.status not in OPEN_STATUSES:
        return False
    late_response = ticket.respond_by is not None and ticket.responded_at is None and ticket.respond_by < now
    late_resolution = ticket.resolve_by is not None and ticket.resolved_at is None and ticket.resolve_by < now
    return late_response or late_resolution


def overdue_clause(now: datetime) -> ColumnElement[bool]:
    """The same rule as `is_overdue`, as SQL, so listing filters and counts run in the database."""
    return and_(
        col(Ticket.status).in_([s.value for s in OPEN_STATUSES]),
        or_(
            and_(col(Ticket.respond_by).is_not(None), col(Ticket.responded_at).is_(None),
                 col(Ticket.respond_by) < now),
            and_(col(Ticket.resolve_by).is_not(None), col(Ticket.resolved_at).is_(None),
                 col(Ticket.resolve_by) < now),
        ),
    )


def get_ticket(session: Session, ticket_id: int | None = None, number: str | None = None) -> Ticket | None:
    if ticket_id is not None:
        return session.get(Ticket, ticket_id)
    parsed = parse_ticket_number(number) if number else None
    if parsed is None:
        return None
    day, found_id = parsed
    ticket = session.get(Ticket, found_id)
    # The date part must match too: a number is not just an id with decoration.
    return ticket if ticket is not None and f"{ticket.created_at:%y%m%d}" == day else None


def require_ticket(session: Session, ticket_id: int, field: str = "ticketId") -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise DomainError.one(field, f"ticket {ticket_id} does not exist", ErrorCode.NOT_FOUND)
    return ticket


@dataclass(frozen=True)
class TicketFilter:
    status: Sequence[str] | None = None
    kind: Sequence[str] | None = None
    priority: Sequence[str] | None = None
    overdue: bool | None = None
    region: str | None = None
    branch: str | None = None
    search: str | None = None


@dataclass(frozen=True)
class TicketPage:
    tickets: list[Ticket]
    total_count: int
    has_next_page: bool
    has_previous_page: bool

    def cursor(self, ticket: Ticket) -> str:
        return encode_cursor(ticket.id or 0)


def encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"ticket:{ticket_id}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "ticket":
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError.one("after", "malformed cursor: pass back an endCursor you were given") from exc


def list_tickets(
    session: Session, filters: TicketFilter, first: int = 50, after: str | None = None,
    max_page_size: int = 200, now: datetime | None = None,
) -> TicketPage:
    """Newest first, keyset-paginated by id (stable while new tickets arrive)."""
    if first < 0:
        raise DomainError.one("first", "first must be zero or more")
    if first > max_page_size:
        raise DomainError.one("first", f"first may be at most {max_page_size}")
    now = now or utcnow()
    conditions: list[ColumnElement[bool]] = []
    if filters.status:
        conditions.append(col(Ticket.status).in_(list(filters.status)))
    if filters.kind:
        conditions.append(col(Ticket.kind).in_(list(filters.kind)))
    if filters.priority:
        conditions.append(col(Ticket.priority).in_(list(filters.priority)))
    if filters.region:
        conditions.append(col(Ticket.region) == filters.region)
    if filters.branch:
        conditions.append(col(Ticket.branch) == filters.branch)
    if filters.search:
        pattern = f"%{filters.search}%"
        by_number = parse_ticket_number(filters.search)
        conditions.append(or_(col(Ticket.summary).ilike(pattern), col(Ticket.address).ilike(pattern),
                              col(Ticket.id) == (by_number[1] if by_number else -1)))
    if filters.overdue is not None:
        clause = overdue_clause(now)
        conditions.append(clause if filters.overdue else ~clause)
    total = session.exec(select(func.count()).select_from(Ticket).where(*conditions)).one()
    query = select(Ticket).where(*conditions)
    after_id = decode_cursor(after) if after else None
    if after_id is not None:
        query = query.where(col(Ticket.id) < after_id)
    rows = list(session.exec(query.order_by(col(Ticket.id).desc()).limit(first + 1)))
    return TicketPage(tickets=rows[:first], total_count=total, has_next_page=len(rows) > first,
                      has_previous_page=after_id is not None)


def record_event(
    session: Session, ticket: Ticket, source: str, note: str | None = None, kind: str = "STATUS",
    at: datetime | None = None,
) -> TicketEvent:
    event = TicketEvent(ticket_id=ticket.id or 0, at=at or utcnow(), status=ticket.status, kind=kind,
                        note=note, source=source)
    session.add(event)
    from customers.updates import ticket_changed  # customers hear of ETA/ETR/status changes (issue 7)

    ticket_changed(session, ticket, at=event.at)
    return event


def change_status(
    session: Session, ticket: Ticket, status: TicketStatus, source: str, note: str | None = None,
    at: datetime | None = None,
) -> TicketEvent:
    """Move a ticket to `status` by the state machine and record the event in the same transaction."""
    current = TicketStatus(ticket.status)
    if status not in TRANSITIONS[current]:
        raise DomainError.one("status", f"a {current.value} ticket cannot become {status.value}",
                              ErrorCode.CONFLICT)
    at = at or utcnow()
    ticket.status = status.value
    ticket.version += 1
    ticket.updated_at = at
    is_field = ticket.kind in {k.value for k in FIELD_KINDS}
    if ticket.responded_at is None and (status == TicketStatus.ON_SITE or (not is_field and status != current)):
        ticket.responded_at = at
    if status == TicketStatus.RESOLVED and ticket.resolved_at is None:
        ticket.resolved_at = at
    if status == TicketStatus.NEW:  # reopened
        ticket.resolved_at = None
    session.add(ticket)
    return record_event(session, ticket, source, note, at=at)


def events_for(session: Session, ticket_ids: Sequence[int]) -> dict[int, list[TicketEvent]]:
    """Events of many tickets in one query, oldest first (the dataloader of `Ticket.events`)."""
    grouped: dict[int, list[TicketEvent]] = {i: [] for i in ticket_ids}
    rows = session.exec(select(TicketEvent).where(col(TicketEvent.ticket_id).in_(list(ticket_ids)))
                        .order_by(col(TicketEvent.at), col(TicketEvent.id)))
    for event in rows:
        grouped[event.ticket_id].append(event)
    return grouped


def active_assignments_for(session: Session, ticket_ids: Sequence[int]) -> dict[int, Assignment]:
    """The active LEAD assignment of each ticket (the crew its status, ETA and customers follow)."""
    rows = session.exec(select(Assignment).where(col(Assignment.ticket_id).in_(list(ticket_ids)),
                                                 col(Assignment.active).is_(True),
                                                 Assignment.role == AssignmentRole.LEAD.value))
    return {a.ticket_id: a for a in rows}


def crew_assignments_for(session: Session, ticket_ids: Sequence[int]) -> dict[int, list[Assignment]]:
    """All active assignments of each ticket: the lead first, then the assisting crews of a multi-crew job."""
    grouped: dict[int, list[Assignment]] = {i: [] for i in ticket_ids}
    rows = session.exec(select(Assignment).where(col(Assignment.ticket_id).in_(list(ticket_ids)),
                                                 col(Assignment.active).is_(True))
                        .order_by(col(Assignment.ticket_id), col(Assignment.crew_id)))
    for a in rows:
        grouped[a.ticket_id].append(a)
    for rows_of in grouped.values():
        rows_of.sort(key=lambda a: a.role != AssignmentRole.LEAD)
    return grouped


def crew_job_ids(session: Session, crew_id: int) -> set[int]:
    """Tickets the crew has been given at any time (as lead or assisting crew): the jobs its devices may read."""
    return set(session.exec(select(Assignment.ticket_id).where(Assignment.crew_id == crew_id).distinct()))


def release_assignments(session: Session, ticket_ids: Sequence[int]) -> list[Assignment]:
    """Take the tickets off every crew's route: the lead's assignment and the assisting crews' go together
    (each crew's device then receives a removal). Returns the rows released."""
    if not ticket_ids:
        return []
    rows = list(session.exec(select(Assignment).where(col(Assignment.ticket_id).in_(list(ticket_ids)),
                                                      col(Assignment.active).is_(True))))
    for assignment in rows:
        assignment.active = False
        session.add(assignment)
    return rows


def cancel_ticket(session: Session, ticket_id: int, reason: str, source: str) -> Ticket:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError.one("reason", "say why the ticket is cancelled", ErrorCode.REQUIRED)
    if len(reason) > 2000:
        raise DomainError.one("reason", "reason may be at most 2000 characters")
    ticket = require_ticket(session, ticket_id)
    if ticket.status in {TicketStatus.RESOLVED, TicketStatus.CLOSED, TicketStatus.CANCELLED}:
        raise DomainError.one("ticketId", f"ticket {ticket.number} is already {ticket.status}", ErrorCode.CONFLICT)
    change_status(session, ticket, TicketStatus.CANCELLED, source, note=reason)
    release_assignments(session, [ticket_id])
    return ticket


def set_crews_needed(session: Session, ticket_id: int, crews_needed: int, source: str) -> Ticket:
    """Say how many crews must work a job at the same time (found on site: a heavy transformer swap needs two);
    the next plan sends that many together, or none. Not for work under way or closed."""
    from dispatch.intake import MAX_CREWS_NEEDED

    ticket = require_ticket(session, ticket_id)
    if not 1 <= crews_needed <= MAX_CREWS_NEEDED:
        raise DomainError.one("crewsNeeded", f"crewsNeeded must be between 1 and {MAX_CREWS_NEEDED}")
    if TicketStatus(ticket.status) not in OPEN_STATUSES:
        raise DomainError.one("ticketId", f"ticket {ticket.number} is {ticket.status}", ErrorCode.CONFLICT)
    if ticket.crews_needed != crews_needed:
        ticket.crews_needed = crews_needed
        ticket.version += 1
        ticket.updated_at = utcnow()
        session.add(ticket)
        record_event(session, ticket, source, note=f"needs {crews_needed} crew(s) at the same time", kind="NOTE")
    session.commit()
    return ticket


MAX_DEPENDENCY_GAP = 24 * 60


def set_dependency(session: Session, ticket_id: int, depends_on_id: int | None, gap_minutes: int,
                   source: str) -> Ticket:
    """Make a job wait for another (isolation switching before the repair, restoration switching after it, tree
    trimming before line work): later plans start it at least ``gap_minutes`` after the other is finished and only
    plan it with that one. ``depends_on_id=None`` removes the dependency. No cycles."""
    ticket = require_ticket(session, ticket_id)
    if TicketStatus(ticket.status) not in OPEN_STATUSES:
        raise DomainError.one("ticketId", f"ticket {ticket.number} is {ticket.status}", ErrorCode.CONFLICT)
    if not 0 <= gap_minutes <= MAX_DEPENDENCY_GAP:
        raise DomainError.one("gapMinutes", f"gapMinutes must be between 0 and {MAX_DEPENDENCY_GAP}")
    note = "no longer waits for another job"
    if depends_on_id is not None:
        first = require_ticket(session, depends_on_id, "dependsOnId")
        cur: Ticket | None = first
        for _ in range(100):  # walk the chain: it must not lead back to this ticket
            if cur is None or cur.depends_on_id is None:
                break
            if cur.depends_on_id == ticket.id:
                cur = ticket
                break
            cur = session.get(Ticket, cur.depends_on_id)
        if first.id == ticket.id or cur is ticket:
            raise DomainError.one("dependsOnId", "a job cannot wait for itself, directly or down a chain",
                                  ErrorCode.CONFLICT)
        note = f"waits for {first.number}" + (f" + {gap_minutes} min" if gap_minutes else "")
    ticket.depends_on_id, ticket.depends_gap_minutes = depends_on_id, gap_minutes if depends_on_id else 0
    ticket.version += 1
    ticket.updated_at = utcnow()
    session.add(ticket)
    record_event(session, ticket, source, note=note, kind="NOTE")
    session.commit()
    return ticket
