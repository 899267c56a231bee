"""Intake: a report becomes one validated, located, triaged ticket with deadlines and a history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from core.errors import DomainError, ErrorCode
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.models import Ticket, TicketEvent
from dispatch.tickets import TicketFilter, cancel_ticket, is_overdue, list_tickets
from tests.conftest import run_at_once

CITY = (30.60, 114.30)
MONDAY_9AM = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def report(**overrides: object) -> NewTicket:
    values: dict[str, object] = dict(kind="FAULT_REPAIR", channel="HOTLINE", summary="家里停电了",
                                     lat=CITY[0], lng=CITY[1])
    values.update(overrides)
    return NewTicket(**values)  # type: ignore[arg-type]


def test_a_report_gets_a_readable_number_a_priority_an_area_and_deadlines(
        session: Session, intake_context: IntakeContext) -> None:
    result = create_ticket(session, intake_context, report(reported_at=MONDAY_9AM), source="dispatcher")
    ticket = result.ticket
    assert result.created
    assert ticket.number == f"GC261123-{ticket.id:05d}"
    assert (ticket.priority, ticket.area_type, ticket.status) == ("NORMAL", "URBAN", "NEW")
    assert ticket.respond_by == MONDAY_9AM + timedelta(minutes=45)
    assert ticket.resolve_by == MONDAY_9AM + timedelta(minutes=45 + 180)
    events = session.exec(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)).all()
    assert [(e.status, e.source) for e in events] == [("NEW", "dispatcher")]
    assert "priority NORMAL (inferred" in (events[0].note or "")


@pytest.mark.parametrize(("point", "area", "minutes"), [
    ((30.60, 114.30), "URBAN", 45),
    ((30.60 + 0.18, 114.30 - 0.05), "RURAL", 90),   # about 20 km north of the city
    ((30.60 - 0.42, 114.30 - 0.05), "REMOTE", 120),  # about 45 km south
])
def test_the_on_site_deadline_follows_the_area_type(
        session: Session, intake_context: IntakeContext, point: tuple[float, float], area: str, minutes: int) -> None:
    ticket = create_ticket(session, intake_context, report(lat=point[0], lng=point[1], reported_at=MONDAY_9AM),
                           "dispatcher").ticket
    assert ticket.area_type == area
    assert ticket.respond_by == MONDAY_9AM + timedelta(minutes=minutes)


def test_a_complaint_is_answered_in_working_days_skipping_the_weekend(
        session: Session, intake_context: IntakeContext) -> None:
    friday = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    ticket = create_ticket(session, intake_context, report(kind="COMPLAINT", summary="服务态度差", reported_at=friday),
                           "dispatcher").ticket
    assert ticket.respond_by == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # Monday
    assert ticket.resolve_by == datetime(2026, 12, 8, 16, 0, tzinfo=UTC)  # 7 working days


def test_an_address_is_geocoded_by_the_offline_gazetteer_and_a_hospital_is_critical(
        session: Session, intake_context: IntakeContext) -> None:
    ticket = create_ticket(session, intake_context, report(lat=None, lng=None, summary="停电",
                                                           address="岚山市人民医院"), "dispatcher").ticket
    assert ticket.lat is not None and ticket.lng is not None
    assert ticket.priority == "CRITICAL"


def test_an_address_nobody_can_find_is_kept_with_no_location_and_a_warning(
        session: Session, intake_context: IntakeContext) -> None:
    result = create_ticket(session, intake_context, report(lat=None, lng=None, address="火星基地 99 号"), "dispatcher")
    assert result.ticket.id is not None and result.ticket.lat is None
    assert result.warnings
    kinds = session.exec(select(TicketEvent.kind).where(TicketEvent.ticket_id == result.ticket.id)).all()
    assert sorted(kinds) == ["STATUS", "WARNING"]


def test_bad_input_is_reported_field_by_field_and_nothing_is_written(
        session: Session, intake_context: IntakeContext) -> None:
    with pytest.raises(DomainError) as caught:
        create_ticket(session, intake_context, report(summary="x" * 10_000, lat=91.0, customers_affected=-3,
                                                      contact_phone="call me maybe", kind="FIRE"), "dispatcher")
    fields = {p.field[0] for p in caught.value.problems if p.field}
    assert fields == {"summary", "location", "customersAffected", "contactPhone", "kind"}
    assert session.exec(select(func.count()).select_from(Ticket)).one() == 0


def test_an_empty_summary_is_required(session: Session, intake_context: IntakeContext) -> None:
    with pytest.raises(DomainError) as caught:
        create_ticket(session, intake_context, report(summary="   "), "dispatcher")
    assert caught.value.problems[0].code == ErrorCode.REQUIRED


def test_the_same_client_request_id_returns_the_same_ticket(session: Session, intake_context: IntakeContext) -> None:
    first = create_ticket(session, intake_context, report(client_request_id="app-123"), "dispatcher")
    again = create_ticket(session, intake_context, report(client_request_id="app-123"), "dispatcher")
    assert again.ticket.id == first.ticket.id and not again.created


def test_concurrent_retries_with_one_client_request_id_make_one_ticket(
        db: Engine, intake_context: IntakeContext) -> None:
    ids = run_at_once(6, lambda own: create_ticket(own, intake_context, report(client_request_id="storm-1"),
                                                    "app").ticket.id, db)
    assert len(ids) == 6 and len(set(ids)) == 1
    with Session(db) as check:
        assert check.exec(select(func.count()).select_from(Ticket)).one() == 1


def test_overdue_is_computed_at_read_time(session: Session, intake_context: IntakeContext) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    late = create_ticket(session, intake_context, report(reported_at=long_ago), "dispatcher").ticket
    fresh = create_ticket(session, intake_context, report(), "dispatcher").ticket
    assert is_overdue(late) and not is_overdue(fresh)
    page = list_tickets(session, TicketFilter(overdue=True))
    assert [t.id for t in page.tickets] == [late.id]
    assert not is_overdue(late, now=long_ago + timedelta(minutes=10))


def test_listing_pages_newest_first_without_gaps(session: Session, intake_context: IntakeContext) -> None:
    made = [create_ticket(session, intake_context, report(summary=f"outage {i}"), "dispatcher").ticket.id
            for i in range(5)]
    first = list_tickets(session, TicketFilter(), first=2)
    second = list_tickets(session, TicketFilter(), first=2, after=first.cursor(first.tickets[-1]))
    third = list_tickets(session, TicketFilter(), first=2, after=second.cursor(second.tickets[-1]))
    seen = [t.id for page in (first, second, third) for t in page.tickets]
    assert seen == list(reversed(made))
    assert first.total_count == 5 and first.has_next_page and not third.has_next_page


def test_cancelling_needs_a_reason_and_is_final(session: Session, intake_context: IntakeContext) -> None:
    ticket = create_ticket(session, intake_context, report(), "dispatcher").ticket
    with pytest.raises(DomainError):
        cancel_ticket(session, ticket.id or 0, " ", "dispatcher")
    cancel_ticket(session, ticket.id or 0, "customer found the breaker tripped", "dispatcher")
    session.commit()
    assert ticket.status == "CANCELLED"
    with pytest.raises(DomainError) as caught:
        cancel_ticket(session, ticket.id or 0, "again", "dispatcher")
    assert caught.value.problems[0].code == ErrorCode.CONFLICT
