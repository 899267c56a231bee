"""Real-time events on the database: each re-plans at once and commits; the plan before and after shows what
moved, what stayed and why, and tickets and customers hear of it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError
from crews.models import Crew
from crews.roster import NewCrew, create_crew, lend_crew
from dispatch.enums import TicketStatus
from dispatch.events import (
    active_route,
    crew_unavailable,
    crews_joined,
    customer_not_home,
    emergency_arrived,
    job_overran,
    overruns_by_time,
)
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.models import Assignment, Ticket, TicketEvent
from dispatch.optimizer import OptimizerSettings
from dispatch.planning import AssignRequest, assign_ticket, optimize_and_store
from dispatch.replanner import Replanner
from dispatch.tickets import change_status

ONE = OptimizerSettings(workers=1, time_limit_s=1.0)
WEST, EAST = (30.60, 114.26), (30.60, 114.36)


def crew(session: Session, name: str, at: tuple[float, float], region: str = "default") -> Crew:
    now = utcnow()
    return create_crew(session, NewCrew(name=name, skills=["lv_overhead"], home_lat=at[0], home_lng=at[1],
                                        shift_start=now - timedelta(hours=1), shift_end=now + timedelta(hours=8),
                                        region=region))


def ticket(session: Session, ctx: IntakeContext, at: tuple[float, float], priority: str = "NORMAL",
           summary: str = "家里停电了", **extra: object) -> Ticket:
    return create_ticket(session, ctx, NewTicket(kind="FAULT_REPAIR", channel="HOTLINE", summary=summary,
                                                 lat=at[0], lng=at[1], priority=priority, **extra),  # type: ignore[arg-type]
                         "dispatcher").ticket


def notes(session: Session, t: Ticket) -> list[str]:
    return [n or "" for n in session.exec(select(TicketEvent.note).where(TicketEvent.ticket_id == t.id)
                                          .order_by(col(TicketEvent.id))).all()]


def start(session: Session, t: Ticket, crew_: Crew, status: TicketStatus, on_site_for: int = 0) -> None:
    assign_ticket(session, AssignRequest(ticket_id=t.id or 0, crew_id=crew_.id or 0), "dispatcher")
    change_status(session, t, TicketStatus.EN_ROUTE, "crew device")
    if status == TicketStatus.ON_SITE:
        change_status(session, t, TicketStatus.ON_SITE, "crew device")
        t.responded_at = utcnow() - timedelta(minutes=on_site_for)
    session.add(t)
    session.commit()


def test_an_emergency_diverts_a_crew_driving_to_a_normal_job_and_says_so(
        session: Session, intake_context: IntakeContext) -> None:
    west = crew(session, "West crew", WEST)
    crew(session, "Far crew", (30.80, 114.60))
    normal = ticket(session, intake_context, (30.61, 114.26))
    start(session, normal, west, TicketStatus.EN_ROUTE)
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    fire = ticket(session, intake_context, (30.595, 114.26), "EMERGENCY", summary="电线起火冒烟")

    outcome = emergency_arrived(session, fire.id or 0, settings=ONE, time_limit_s=1.0)

    assert active_route(session, west.id or 0) == [fire.id, normal.id]
    session.refresh(normal)
    assert normal.status == "ASSIGNED"  # not started: back to assigned, behind the emergency
    assert any("diverted" in n for n in notes(session, normal))
    change = outcome.change(normal.id or 0)
    assert change is not None and change.kind == "retimed" and change.crew_after == str(west.id)
    assert outcome.moved == [] and outcome.plan.status == "COMMITTED"


def test_an_emergency_never_interrupts_work_on_site_without_consent(
        session: Session, intake_context: IntakeContext) -> None:
    west = crew(session, "West crew", WEST)
    far = crew(session, "Far crew", (30.70, 114.40))
    on_site = ticket(session, intake_context, (30.60, 114.262))
    start(session, on_site, west, TicketStatus.ON_SITE)
    fire = ticket(session, intake_context, (30.599, 114.262), "EMERGENCY", summary="电线起火冒烟")

    emergency_arrived(session, fire.id or 0, settings=ONE, time_limit_s=1.0)

    session.refresh(on_site)
    assert on_site.status == "ON_SITE" and active_route(session, west.id or 0)[0] == on_site.id
    assert fire.id in active_route(session, west.id or 0) + active_route(session, far.id or 0)


def test_an_overrun_moves_the_next_deadline_job_to_another_crew_and_keeps_the_rest(
        session: Session, intake_context: IntakeContext) -> None:
    west, east = crew(session, "West crew", WEST), crew(session, "East crew", (30.60, 114.32))
    here = ticket(session, intake_context, WEST)
    start(session, here, west, TicketStatus.ON_SITE, on_site_for=50)  # about 10 minutes left
    urgent = ticket(session, intake_context, (30.605, 114.265), "HIGH", customers_affected=50)
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    assert active_route(session, west.id or 0)[:2] == [here.id, urgent.id]

    outcome = job_overran(session, here.id or 0, utcnow() + timedelta(hours=3), settings=ONE, time_limit_s=1.0)

    moved = outcome.change(urgent.id or 0)
    assert moved is not None and moved.kind == "moved" and moved.crew_after == str(east.id)
    assert "moved from" in moved.reason
    assert active_route(session, west.id or 0) == [here.id]
    assert outcome.change(here.id or 0).kind == "kept"  # type: ignore[union-attr]
    assert any("overrun" in n for n in notes(session, here))


def test_an_overrun_found_by_time_passing_moves_the_crews_later_jobs_once(
        session: Session, intake_context: IntakeContext) -> None:
    west = crew(session, "West crew", WEST)
    here = ticket(session, intake_context, WEST)
    start(session, here, west, TicketStatus.ON_SITE, on_site_for=50)
    after = ticket(session, intake_context, (30.61, 114.26))
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    assert overruns_by_time(session, settings=ONE) is None  # nothing is late yet
    eta = session.get(Ticket, after.id).eta  # type: ignore[union-attr]
    later = utcnow() + timedelta(minutes=40)  # the job should have ended about 10 minutes from now

    outcome = overruns_by_time(session, now=later, settings=ONE, time_limit_s=1.0)

    assert outcome is not None and outcome.change(here.id or 0).kind == "kept"  # type: ignore[union-attr]
    session.refresh(here)
    session.refresh(after)
    assert here.expected_finish is not None and after.eta is not None and eta is not None
    assert after.eta >= here.expected_finish > eta
    assert any("overrunning" in n for n in notes(session, here))
    assert overruns_by_time(session, now=later + timedelta(minutes=1), settings=ONE) is None  # not twice


def test_a_crew_going_unavailable_hands_over_its_jobs_and_customers_get_new_etas(
        session: Session, intake_context: IntakeContext) -> None:
    west, east = crew(session, "West crew", WEST), crew(session, "East crew", EAST)
    started = ticket(session, intake_context, (30.60, 114.262))
    start(session, started, west, TicketStatus.ON_SITE)
    waiting = ticket(session, intake_context, (30.605, 114.262))
    theirs = ticket(session, intake_context, (30.60, 114.358))
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    eta_before = session.get(Ticket, waiting.id).eta  # type: ignore[union-attr]

    outcome = crew_unavailable(session, west.id or 0, "vehicle broken down", settings=ONE, time_limit_s=1.0)

    assert active_route(session, west.id or 0) == []
    assert set(active_route(session, east.id or 0)) == {started.id, waiting.id, theirs.id}
    assert {c.ticket_id for c in outcome.moved} == {str(started.id), str(waiting.id)}
    assert outcome.change(theirs.id or 0).crew_after == str(east.id)  # type: ignore[union-attr]
    session.refresh(waiting)
    session.refresh(started)
    assert waiting.eta != eta_before and started.status == "ASSIGNED"
    assert any("vehicle broken down" in n for n in notes(session, started))
    assert session.get(Crew, west.id).unavailable  # type: ignore[union-attr]


def test_a_customer_not_home_puts_the_job_on_hold_with_a_later_window(
        session: Session, intake_context: IntakeContext) -> None:
    west = crew(session, "West crew", WEST)
    first = ticket(session, intake_context, (30.605, 114.26))
    second = ticket(session, intake_context, (30.615, 114.26))
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    gone = session.get(Ticket, active_route(session, west.id or 0)[0])
    assert gone is not None
    now = utcnow()

    customer_not_home(session, gone.id or 0, "nobody answered the door", now=now, retry_after_minutes=180,
                      settings=ONE, time_limit_s=1.0)

    session.refresh(gone)
    assert gone.status == "ON_HOLD" and gone.window_start is not None
    assert gone.window_start >= now + timedelta(minutes=179)
    assert any("nobody answered the door" in n for n in notes(session, gone))
    row = session.exec(select(Assignment).where(Assignment.ticket_id == gone.id,
                                                col(Assignment.active).is_(True))).one()
    assert row.planned_arrival >= gone.window_start  # planned again, in the later window
    assert active_route(session, west.id or 0)[0] != gone.id
    assert {first.id, second.id} == set(active_route(session, west.id or 0))


def test_mutual_aid_crews_join_the_plan_and_their_lending_shows_in_the_reason(
        session: Session, intake_context: IntakeContext) -> None:
    crew(session, "West crew", WEST)
    jobs = [ticket(session, intake_context, (30.60 + 0.01 * i, 114.36), "HIGH", customers_affected=30)
            for i in range(4)]
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    aid = crew(session, "Aid crew", EAST, region="north")
    lend_crew(session, aid.id or 0, "default")
    assert aid.home_region == "north"

    outcome = crews_joined(session, [aid.id or 0], settings=ONE, time_limit_s=1.0)

    taken = active_route(session, aid.id or 0)
    assert taken and set(taken) <= {j.id for j in jobs}
    reasons = [a.reason or "" for a in session.exec(select(Assignment).where(
        Assignment.crew_id == aid.id, col(Assignment.active).is_(True)))]
    assert all("lent from region north" in r for r in reasons)
    assert outcome.plan.stats["score"]["lending"] > 0


def test_events_refuse_what_does_not_fit_their_rules(session: Session, intake_context: IntakeContext) -> None:
    west = crew(session, "West crew", WEST)
    normal = ticket(session, intake_context, WEST)
    with pytest.raises(DomainError):
        emergency_arrived(session, normal.id or 0, settings=ONE)
    with pytest.raises(DomainError):
        job_overran(session, normal.id or 0, utcnow() + timedelta(hours=1), settings=ONE)
    with pytest.raises(DomainError):
        crew_unavailable(session, west.id or 0, "  ", settings=ONE)
    with pytest.raises(DomainError):
        customer_not_home(session, normal.id or 0, "not home", settings=ONE)


def test_the_background_replanner_finds_overruns_by_time_passing_on_its_own(
        db: Engine, session: Session, intake_context: IntakeContext) -> None:
    west = crew(session, "West crew", WEST)
    here = ticket(session, intake_context, WEST)
    start(session, here, west, TicketStatus.ON_SITE, on_site_for=50)
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    row = session.exec(select(Assignment).where(Assignment.ticket_id == here.id, col(Assignment.active))).one()
    row.planned_finish = utcnow() - timedelta(minutes=30)  # the job should have ended half an hour ago
    session.add(row)
    session.commit()

    replanner = Replanner(db, time_limit_s=1.0, overrun_check_s=None)
    try:
        assert replanner.check_overruns("default")  # what the worker does every overrun_check_s
        assert not replanner.check_overruns("default")  # found once, not on every check
    finally:
        replanner.stop()
    session.refresh(here)
    assert here.expected_finish is not None and here.expected_finish > utcnow()
    assert any("overrunning" in n for n in notes(session, here))
