"""Public tracking of a ticket by its number and the last four digits of the caller's phone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError, ErrorCode
from customers.config import CustomerSettings, get_customer_settings
from customers.models import TrackingAttempt
from dispatch.models import Ticket, TicketEvent
from dispatch.tickets import events_for, get_ticket

# Plain-language lines of the public timeline, per status; notes are never shown (they may name people).
STATUS_MESSAGES = {
    "NEW": "Report received",
    "ASSIGNED": "A repair crew has been assigned",
    "EN_ROUTE": "The crew is on the way",
    "ON_SITE": "The crew has arrived and is working on the fault",
    "ON_HOLD": "Work is paused; we will contact you",
    "RESOLVED": "Repair finished",
    "CLOSED": "Ticket closed",
    "CANCELLED": "Ticket cancelled",
}


@dataclass(frozen=True)
class TrackingLine:
    at: datetime
    message: str


@dataclass(frozen=True)
class Tracking:
    number: str
    status: str
    eta: datetime | None
    etr: datetime | None
    power_restored_at: datetime | None
    timeline: list[TrackingLine]


def find_for_customer(session: Session, number: str, phone_last4: str) -> Ticket | None:
    """The ticket when number and digits match; a wrong digit looks exactly like an unknown number."""
    if not number or len(phone_last4 or "") != 4 or not phone_last4.isdigit():
        return None
    ticket = get_ticket(session, number=number)
    if ticket is None or ticket.phone_last4 != phone_last4:
        return None
    return ticket


def public_timeline(events: list[TicketEvent]) -> list[TrackingLine]:
    lines: list[TrackingLine] = []
    for event in events:
        if event.kind not in {"STATUS", "ASSIGNMENT"}:
            continue
        message = STATUS_MESSAGES.get(event.status, event.status)
        if lines and lines[-1].message == message:
            continue
        lines.append(TrackingLine(event.at, message))
    return lines


def track(session: Session, number: str, phone_last4: str) -> Tracking | None:
    ticket = find_for_customer(session, number, phone_last4)
    if ticket is None:
        return None
    events = events_for(session, [ticket.id or 0])[ticket.id or 0]
    # A report that joined another ticket shows the times of the work that will restore it.
    joined = get_ticket(session, ticket.duplicate_of_id) if ticket.duplicate_of_id else None
    eta = ticket.eta or (joined.eta if joined else None)
    etr = ticket.etr or (joined.etr if joined else None)
    return Tracking(number=ticket.number or "", status=ticket.status, eta=eta, etr=etr,
                    power_restored_at=ticket.power_restored_at, timeline=public_timeline(events))


# ------------------------------------------------------------------ rate limiting


def _keys(number: str, client: str | None) -> tuple[str, str]:
    return f"t:{(number or '').strip().upper()[:60]}", f"c:{(client or 'unknown')[:60]}"


def check_rate(session: Session, number: str, client: str | None, now: datetime | None = None,
               settings: CustomerSettings | None = None) -> None:
    """Refuse once a number or a client has missed too often in the window: keyed by the number as typed, so a
    real number and an unknown one are limited alike, and correct digits don't help once limited."""
    settings = settings or get_customer_settings()
    now = now or utcnow()
    since = now - timedelta(minutes=settings.track_window_minutes)
    by_ticket, by_client = _keys(number, client)
    counts = dict(session.exec(select(TrackingAttempt.key, func.count()).where(
        col(TrackingAttempt.key).in_([by_ticket, by_client]), col(TrackingAttempt.at) >= since)
        .group_by(TrackingAttempt.key)).all())
    if counts.get(by_ticket, 0) >= settings.track_failures_per_ticket or \
            counts.get(by_client, 0) >= settings.track_failures_per_client:
        raise DomainError.one(None, "too many attempts; try again later", ErrorCode.RATE_LIMITED)


def record_miss(session: Session, number: str, client: str | None, now: datetime | None = None) -> None:
    now = now or utcnow()
    for key in _keys(number, client):
        session.add(TrackingAttempt(key=key, at=now))
    session.commit()


def track_guarded(session: Session, number: str, phone_last4: str, client: str | None,
                  now: datetime | None = None) -> Tracking | None:
    """`track`, rate-limited per number and per client: misses are counted, hits are free."""
    check_rate(session, number, client, now)
    result = track(session, number, phone_last4)
    if result is None:
        record_miss(session, number, client, now)
    return result


def prune_attempts(session: Session, now: datetime | None = None, settings: CustomerSettings | None = None) -> None:
    """Forget misses older than the window (they no longer count); run with the notification rounds."""
    settings = settings or get_customer_settings()
    cutoff = (now or utcnow()) - timedelta(minutes=settings.track_window_minutes)
    session.execute(delete(TrackingAttempt).where(col(TrackingAttempt.at) < cutoff))
