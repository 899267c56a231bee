"""Crew events on the database: a meal break taken is recorded and never planned again in that shift; a crew back
from UNAVAILABLE rejoins the plan and takes work (the plan before and after: what moved, what stayed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from core.clock import utcnow
from core.errors import DomainError
from crews.models import Crew
from dispatch.events import active_route, crew_available, crew_unavailable, meal_break_taken
from dispatch.intake import IntakeContext
from dispatch.planning import optimize_and_store, read_planning_input
from tests.dispatch.test_events import EAST, ONE, WEST, crew, ticket


def test_a_meal_break_taken_is_recorded_and_not_planned_again_that_shift(
        session: Session, intake_context: IntakeContext) -> None:
    west = crew(session, "West crew", WEST)  # a 9 h shift: a meal break 3–5 h into it (2–4 h from now)
    for i in range(7):  # a day's work, well into the break window
        ticket(session, intake_context, (30.60 + 0.004 * i, 114.26))
    before = optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    assert str(west.id) in before.stats["breaks"]

    outcome = meal_break_taken(session, west.id or 0, "crew device", settings=ONE, time_limit_s=1.0)

    assert session.get(Crew, west.id).break_taken_at is not None  # type: ignore[union-attr]
    assert outcome.plan.stats["breaks"] == {}
    (planned,) = read_planning_input(session).crews
    assert planned.break_minutes == 0
    again = optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)  # any later re-plan
    assert again.stats["breaks"] == {}
    assert active_route(session, west.id or 0)  # still working: only the break is gone


def test_a_break_recorded_in_an_earlier_shift_does_not_count(session: Session) -> None:
    west = crew(session, "West crew", WEST)
    west.break_taken_at = utcnow() - timedelta(hours=20)  # yesterday's shift
    session.add(west)
    session.commit()
    (planned,) = read_planning_input(session).crews
    assert planned.break_minutes == 30


def test_a_crew_available_again_rejoins_the_plan_and_takes_work_near_it(
        session: Session, intake_context: IntakeContext) -> None:
    west, east = crew(session, "West crew", WEST), crew(session, "East crew", EAST)
    near_west = [ticket(session, intake_context, (30.60 + 0.005 * i, 114.262), "HIGH", customers_affected=40)
                 for i in range(3)]
    near_east = ticket(session, intake_context, (30.60, 114.358))
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    crew_unavailable(session, west.id or 0, "vehicle broken down", settings=ONE, time_limit_s=1.0)
    assert active_route(session, west.id or 0) == []
    assert set(active_route(session, east.id or 0)) == {t.id for t in [*near_west, near_east]}

    outcome = crew_available(session, west.id or 0, note="vehicle repaired", settings=ONE, time_limit_s=1.0)

    assert not session.get(Crew, west.id).unavailable  # type: ignore[union-attr]
    taken = active_route(session, west.id or 0)
    assert taken and set(taken) <= {t.id for t in near_west}  # back on the board, with work next to it
    assert {c.ticket_id for c in outcome.moved} == {str(t) for t in taken}
    for change in outcome.moved:  # what moved: from east to west, and sooner for its customers
        assert (change.crew_before, change.crew_after) == (str(east.id), str(west.id))
        assert change.eta_after is not None and change.eta_before is not None
        assert change.eta_after < change.eta_before
    stayed = outcome.change(near_east.id or 0)  # what stayed: the job next to east
    assert stayed is not None and stayed.crew_after == str(east.id) and stayed.kind in ("kept", "retimed")
    assert "crew available again: West crew (vehicle repaired)" in outcome.plan.stats["event"]


def test_crew_events_refuse_what_does_not_fit_their_rules(session: Session) -> None:
    west = crew(session, "West crew", WEST)
    with pytest.raises(DomainError):
        crew_available(session, west.id or 0, settings=ONE)  # it was never unavailable
    with pytest.raises(DomainError):
        meal_break_taken(session, west.id or 0, at=utcnow() + timedelta(hours=1), settings=ONE)
    with pytest.raises(DomainError):
        meal_break_taken(session, west.id or 0, at=utcnow() - timedelta(hours=3), settings=ONE)  # before its shift
