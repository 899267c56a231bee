"""Appointment slots: the best windows given the current plan, and booking one binds later plans."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError
from dispatch.intake import IntakeContext
from dispatch.models import Assignment
from dispatch.optimizer import OptimizerSettings
from dispatch.planning import optimize_and_store
from dispatch.slots import book_slot, recommend_slots
from tests.dispatch.test_events import WEST, crew, notes, ticket

ONE = OptimizerSettings(workers=1, time_limit_s=1.0)


def test_slots_are_three_to_five_windows_a_crew_can_keep_cheapest_first(
        session: Session, intake_context: IntakeContext) -> None:
    crew(session, "West crew", WEST)
    for i in range(3):
        ticket(session, intake_context, (30.60 + 0.01 * i, 114.26), "HIGH", customers_affected=20)
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    meter = ticket(session, intake_context, (30.605, 114.265), "LOW")
    now = utcnow()

    slots = recommend_slots(session, meter.id or 0, count=4, now=now, settings=ONE)

    assert 3 <= len(slots) <= 4
    assert [s.start for s in slots] == sorted(s.start for s in slots)
    for s in slots:
        assert s.start >= now + timedelta(minutes=60) and s.end - s.start == timedelta(hours=2)
        assert s.start <= s.planned_arrival <= s.end
    five = recommend_slots(session, meter.id or 0, count=5, now=now, settings=ONE)
    three = recommend_slots(session, meter.id or 0, count=3, now=now, settings=ONE)
    cheapest = sorted(five, key=lambda s: (s.added_cost, s.start))[:3]
    assert [s.start for s in three] == sorted(s.start for s in cheapest)


def test_booking_a_slot_fixes_the_window_for_every_later_plan(session: Session, intake_context: IntakeContext) -> None:
    west = crew(session, "West crew", WEST)
    meter = ticket(session, intake_context, (30.605, 114.265), "LOW")
    slot = recommend_slots(session, meter.id or 0, count=3, settings=ONE)[-1]

    book_slot(session, meter.id or 0, slot.start, slot.end, "dispatcher")
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)

    planned = session.exec(select(Assignment).where(Assignment.ticket_id == meter.id,
                                                    col(Assignment.active).is_(True))).one()
    assert planned.crew_id == west.id
    assert slot.start - timedelta(seconds=60) <= planned.planned_arrival <= slot.end
    assert any("appointment booked" in n for n in notes(session, meter))


def test_urgent_or_past_or_odd_windows_cannot_be_booked(session: Session, intake_context: IntakeContext) -> None:
    crew(session, "West crew", WEST)
    fire = ticket(session, intake_context, WEST, "EMERGENCY", summary="电线起火冒烟")
    meter = ticket(session, intake_context, WEST, "LOW")
    now = utcnow()
    with pytest.raises(DomainError):
        recommend_slots(session, fire.id or 0)
    with pytest.raises(DomainError):
        book_slot(session, meter.id or 0, now - timedelta(hours=1), now + timedelta(hours=1), "dispatcher")
    with pytest.raises(DomainError):
        book_slot(session, meter.id or 0, now + timedelta(hours=1), now + timedelta(hours=20), "dispatcher")
    with pytest.raises(DomainError):
        recommend_slots(session, meter.id or 0, count=9)
