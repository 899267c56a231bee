"""Feedback after resolution: a score of 1 to 5 and a comment, once per ticket."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.errors import DomainError, ErrorCode, Problems
from customers.models import Feedback
from customers.tracking import check_rate, find_for_customer, record_miss
from dispatch.enums import TicketStatus

MAX_COMMENT = 2000


def submit_feedback(session: Session, number: str, phone_last4: str, score: int, comment: str | None,
                    client: str | None = None) -> Feedback:
    """Store the feedback; with `client` (the API passes it) look-ups are rate-limited like tracking."""
    problems = Problems()
    if not 1 <= score <= 5:
        problems.add("score", "score must be 1 to 5")
    if comment and len(comment) > MAX_COMMENT:
        problems.add("comment", f"comment may be at most {MAX_COMMENT} characters")
    problems.raise_if_any()
    if client is not None:
        check_rate(session, number, client)
    ticket = find_for_customer(session, number, phone_last4)
    if ticket is None:
        if client is not None:
            record_miss(session, number, client)
        raise DomainError.one("ticketNumber", "no ticket with that number and phone digits", ErrorCode.NOT_FOUND)
    if ticket.status not in {TicketStatus.RESOLVED, TicketStatus.CLOSED}:
        raise DomainError.one("ticketNumber", "feedback opens once the ticket is resolved", ErrorCode.CONFLICT)
    if session.exec(select(Feedback).where(Feedback.ticket_id == ticket.id)).first():
        raise DomainError.one("ticketNumber", "feedback for this ticket was already given", ErrorCode.DUPLICATE)
    feedback = Feedback(ticket_id=ticket.id or 0, score=score, comment=(comment or "").strip() or None)
    session.add(feedback)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DomainError.one("ticketNumber", "feedback for this ticket was already given",
                              ErrorCode.DUPLICATE) from exc
    return feedback
