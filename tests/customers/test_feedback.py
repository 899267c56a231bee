"""Feedback at the domain level: once per resolved ticket, by number and the caller's last four digits."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from core.errors import DomainError, ErrorCode
from customers.feedback import submit_feedback
from dispatch.enums import TicketStatus
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.tickets import change_status


def test_a_resolved_ticket_takes_one_feedback(session: Session, intake_context: IntakeContext) -> None:
    ticket = create_ticket(session, intake_context, NewTicket(kind="FAULT_REPAIR", channel="APP", summary="停电",
                                                              lat=30.6, lng=114.3, contact_phone="13900135678"),
                           "customer").ticket
    change_status(session, ticket, TicketStatus.RESOLVED, "crew device")
    session.commit()
    with pytest.raises(DomainError) as wrong:
        submit_feedback(session, ticket.number or "", "0000", 5, None)
    assert wrong.value.problems[0].code == ErrorCode.NOT_FOUND
    feedback = submit_feedback(session, ticket.number or "", "5678", 4, "  fast and polite  ")
    assert (feedback.score, feedback.comment) == (4, "fast and polite")
    with pytest.raises(DomainError) as twice:
        submit_feedback(session, ticket.number or "", "5678", 5, None)
    assert twice.value.problems[0].code == ErrorCode.DUPLICATE
