"""Specification of assisting crews in the database: a multi-crew job committed from a plan gives every crew of it
an active assignment (one LEAD, the others ASSIST, all with the same planned times); they are released together
(reassignment, cancel, lending the lead away, re-plans), and work under way keeps its assisting crews."""

from __future__ import annotations

from sqlmodel import Session, col, select

from crews.models import Crew
from crews.roster import lend_crew
from dispatch.enums import TicketStatus
from dispatch.events import active_route, crew_unavailable
from dispatch.intake import IntakeContext
from dispatch.models import Assignment, AssignmentRole, Ticket
from dispatch.optimizer import evaluate
from dispatch.planning import (
    AssignRequest,
    assign_ticket,
    current_routes,
    fast_insert,
    optimize_and_store,
    read_planning_input,
)
from dispatch.tickets import cancel_ticket, change_status
from tests.dispatch.test_events import EAST, ONE, WEST, crew, notes, ticket

SITE = (30.60, 114.31)  # between the two crews


def active(session: Session, job: Ticket) -> list[Assignment]:
    return list(session.exec(select(Assignment).where(Assignment.ticket_id == job.id, col(Assignment.active).is_(True))
                             .order_by(col(Assignment.role).desc())))  # LEAD before ASSIST


def two_crew_job(session: Session, ctx: IntakeContext) -> tuple[Crew, Crew, Ticket]:
    west, east = crew(session, "West crew", WEST), crew(session, "East crew", EAST)
    job = ticket(session, ctx, SITE, crews_needed=2)
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    session.refresh(job)
    return west, east, job


def test_a_committed_two_crew_job_gives_both_crews_an_active_assignment_arriving_together(
        session: Session, intake_context: IntakeContext) -> None:
    west, east, job = two_crew_job(session, intake_context)

    lead, assist = active(session, job)
    assert [lead.role, assist.role] == [AssignmentRole.LEAD, AssignmentRole.ASSIST]
    assert {lead.crew_id, assist.crew_id} == {west.id, east.id}
    assert assist.planned_arrival == lead.planned_arrival == job.eta
    assert assist.planned_finish == lead.planned_finish
    assert assist.plan_id == lead.plan_id and f"assists crew {lead.crew_id}" in (assist.reason or "")
    assert job.status == TicketStatus.ASSIGNED
    assert any("assisting" in n for n in notes(session, job))
    assert active_route(session, assist.crew_id) == [job.id]  # on the assisting crew's route too


def test_the_current_routes_hold_the_whole_job_so_a_re_plan_starts_from_it_and_keeps_one_lead(
        session: Session, intake_context: IntakeContext) -> None:
    west, east, job = two_crew_job(session, intake_context)
    data = read_planning_input(session)
    routes = current_routes(session, data)
    visits = sorted(k for keys in routes.stats["routes"].values() for k in keys)
    assert visits == [f"A:1:{job.id}", f"T:{job.id}"]
    assert evaluate(routes, data.crews, data.tickets, ONE)["unassigned"] == 0  # a whole job, not half a one

    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    rows = active(session, job)
    assert [r.role for r in rows] == [AssignmentRole.LEAD, AssignmentRole.ASSIST]
    assert {r.crew_id for r in rows} == {west.id, east.id}


def test_reassigning_by_hand_or_cancelling_takes_the_job_off_both_crews(
        session: Session, intake_context: IntakeContext) -> None:
    west, east, job = two_crew_job(session, intake_context)
    result = assign_ticket(session, AssignRequest(ticket_id=job.id or 0, crew_id=west.id or 0), "dispatcher")
    assert [(r.crew_id, r.role) for r in active(session, job)] == [(west.id, AssignmentRole.LEAD)]
    assert any("needs 2 crews" in w for w in result.warnings)

    other = ticket(session, intake_context, (30.61, 114.30), crews_needed=2, summary="这条街停电了")
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    assert len(active(session, other)) == 2
    cancel_ticket(session, other.id or 0, "customer's own contractor does it", "dispatcher")
    session.commit()
    assert active(session, other) == []
    assert other.id not in active_route(session, west.id or 0) + active_route(session, east.id or 0)


def test_lending_the_lead_crew_away_releases_its_assisting_crew(
        session: Session, intake_context: IntakeContext) -> None:
    _west, _east, job = two_crew_job(session, intake_context)
    lead, assist = active(session, job)
    lend_crew(session, lead.crew_id, "north")
    assert active(session, job) == []
    assert active_route(session, assist.crew_id) == []


def test_work_under_way_keeps_its_assisting_crew_through_a_re_plan(
        session: Session, intake_context: IntakeContext) -> None:
    _west, _east, job = two_crew_job(session, intake_context)
    lead, assist = active(session, job)
    change_status(session, job, TicketStatus.EN_ROUTE, "crew device")
    session.commit()

    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    rows = active(session, job)
    assert [(r.crew_id, r.role) for r in rows] == [(lead.crew_id, AssignmentRole.LEAD),
                                                   (assist.crew_id, AssignmentRole.ASSIST)]


def test_when_the_lead_crew_drops_out_the_job_is_re_planned_whole_with_one_lead(
        session: Session, intake_context: IntakeContext) -> None:
    _west, _east, job = two_crew_job(session, intake_context)
    crew(session, "Middle crew", (30.62, 114.31))
    lead, _assist = active(session, job)

    crew_unavailable(session, lead.crew_id, "vehicle broke down", settings=ONE, time_limit_s=1.0)

    rows = active(session, job)
    assert lead.crew_id not in {r.crew_id for r in rows}
    assert [r.role for r in rows] == [AssignmentRole.LEAD, AssignmentRole.ASSIST]
    assert rows[0].planned_arrival == rows[1].planned_arrival


def test_an_assisting_crew_that_drops_out_is_replaced_and_the_lead_keeps_the_job(
        session: Session, intake_context: IntakeContext) -> None:
    _west, _east, job = two_crew_job(session, intake_context)
    middle = crew(session, "Middle crew", (30.62, 114.31))
    lead, assist = active(session, job)

    crew_unavailable(session, assist.crew_id, "ill", settings=ONE, time_limit_s=1.0)

    rows = active(session, job)
    assert [(r.crew_id, r.role) for r in rows] == [(lead.crew_id, AssignmentRole.LEAD),
                                                   (middle.id, AssignmentRole.ASSIST)]


def test_an_emergency_needing_two_crews_is_inserted_at_once_with_both(
        session: Session, intake_context: IntakeContext) -> None:
    west, east = crew(session, "West crew", WEST), crew(session, "East crew", EAST)
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    fire = ticket(session, intake_context, SITE, "EMERGENCY", summary="电线起火冒烟", crews_needed=2)

    lead_row = fast_insert(session, fire, settings=ONE)

    assert lead_row is not None
    rows = active(session, fire)
    assert [r.role for r in rows] == [AssignmentRole.LEAD, AssignmentRole.ASSIST]
    assert {r.crew_id for r in rows} == {west.id, east.id}
    assert rows[0].planned_arrival == rows[1].planned_arrival


def test_an_assisting_crew_stays_with_started_work_until_it_is_planned_to_finish(
        session: Session, intake_context: IntakeContext) -> None:
    _west, _east, job = two_crew_job(session, intake_context)
    lead, assist = active(session, job)
    change_status(session, job, TicketStatus.ON_SITE, "crew device")
    session.commit()
    helper = session.get(Crew, assist.crew_id)
    assert helper is not None
    nearby = ticket(session, intake_context, (helper.home_lat, helper.home_lng + 0.01))

    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)

    later = [a for a in session.exec(select(Assignment).where(Assignment.ticket_id == nearby.id,
                                                              col(Assignment.active).is_(True)))]
    assert len(later) == 1
    if later[0].crew_id == assist.crew_id:  # the helper may take it, but only once the job it assists is done
        assert later[0].planned_arrival >= assist.planned_finish
    assert [(r.crew_id, r.role) for r in active(session, job)] == [(lead.crew_id, AssignmentRole.LEAD),
                                                                   (assist.crew_id, AssignmentRole.ASSIST)]


def test_an_assisting_crew_dropping_out_of_started_work_leaves_the_ticket_with_its_lead(
        session: Session, intake_context: IntakeContext) -> None:
    _west, _east, job = two_crew_job(session, intake_context)
    lead, assist = active(session, job)
    change_status(session, job, TicketStatus.EN_ROUTE, "crew device")
    session.commit()

    crew_unavailable(session, assist.crew_id, "ill", settings=ONE, time_limit_s=1.0)

    session.refresh(job)
    assert job.status == TicketStatus.EN_ROUTE
    assert [(r.crew_id, r.role) for r in active(session, job)][0] == (lead.crew_id, AssignmentRole.LEAD)
    assert any("no longer assisting" in n for n in notes(session, job))
