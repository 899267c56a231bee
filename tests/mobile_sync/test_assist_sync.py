"""Multi-crew jobs on the crews' devices (conflict rule 10): the assisting crew pulls the job and its removal like
the lead; the ticket's status follows the lead, an assisting crew's status is kept in the history only."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from core.errors import ErrorCode
from crews.models import Crew
from dispatch.models import Assignment, AssignmentRole, Ticket, TicketEvent
from dispatch.planning import optimize_and_store
from dispatch.tickets import cancel_ticket
from mobile_sync.models import Device
from mobile_sync.protocol import pull, push
from tests.dispatch.test_events import ONE
from tests.mobile_sync.conftest import EAST, WEST

World = Any  # the `world` fixture of tests/mobile_sync/conftest.py
SITE = (30.60, 114.31)


def planned_two_crew_job(session: Session, world: World) -> tuple[Device, Device, Ticket]:
    """Two crews with devices and a two-crew job committed from a plan: (lead's device, assisting device, job)."""
    phones = {crew.id: phone for crew, phone in (world.crew("West", WEST), world.crew("East", EAST))}
    job = world.ticket(at=SITE)
    job.crews_needed = 2
    session.add(job)
    session.commit()
    optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    roles = {a.role: a.crew_id for a in session.exec(select(Assignment).where(
        Assignment.ticket_id == job.id, col(Assignment.active).is_(True)))}
    return phones[roles[AssignmentRole.LEAD]], phones[roles[AssignmentRole.ASSIST]], job


def test_both_crews_pull_the_job_with_their_role_and_both_receive_its_removal(
        session: Session, world: World) -> None:
    lead, assist, job = planned_two_crew_job(session, world)

    lead_pull, assist_pull = pull(session, lead.crew_id), pull(session, assist.crew_id)
    assert [t.id for t in assist_pull.tickets] == [job.id]
    assert [(a.crew_id, a.role) for a in assist_pull.assignments] == [(assist.crew_id, AssignmentRole.ASSIST)]
    assert [(a.crew_id, a.role) for a in lead_pull.assignments] == [(lead.crew_id, AssignmentRole.LEAD)]
    assert assist_pull.assignments[0].planned_arrival == lead_pull.assignments[0].planned_arrival

    cancel_ticket(session, job.id or 0, "the customer's contractor replaced it", "dispatcher")
    session.commit()
    assert pull(session, assist.crew_id, assist_pull.cursor).removed_ticket_ids == [job.id]
    assert pull(session, lead.crew_id, lead_pull.cursor).removed_ticket_ids == [job.id]


def test_an_assisting_crews_status_is_history_and_the_ticket_follows_the_lead(
        session: Session, world: World) -> None:
    lead, assist, job = planned_two_crew_job(session, world)
    cursor = pull(session, lead.crew_id).cursor

    [on_way] = push(session, assist.crew_id, assist.id, [world.status(job, "EN_ROUTE")]).results
    session.refresh(job)
    assert on_way.applied and on_way.outcome == "HISTORY" and job.status == "ASSIGNED" and job.responded_at is None
    [arrived] = push(session, assist.crew_id, assist.id, [world.status(job, "ON_SITE")]).results
    session.refresh(job)
    assert arrived.outcome == "HISTORY" and job.status == "ASSIGNED" and job.responded_at is None
    kept = session.exec(select(TicketEvent.note).where(TicketEvent.ticket_id == job.id, TicketEvent.kind == "ASSIST")
                        .order_by(col(TicketEvent.id))).all()
    assert [n.split(" from")[0] for n in kept if n] == ["EN_ROUTE", "ON_SITE"]
    assert job.id in [t.id for t in pull(session, lead.crew_id, cursor).tickets]  # the lead's device hears of it

    [led] = push(session, lead.crew_id, lead.id, [world.status(job, "EN_ROUTE")]).results
    session.refresh(job)
    assert led.outcome == "APPLIED" and job.status == "EN_ROUTE"


def test_a_released_assisting_crew_gets_a_conflict_and_its_resolved_does_not_win(
        session: Session, world: World) -> None:
    lead, assist, job = planned_two_crew_job(session, world)
    world.assign(job, session.get(Crew, lead.crew_id))  # by hand: the lead alone, the assisting crew released

    [late] = push(session, assist.crew_id, assist.id, [world.status(job, "RESOLVED")]).results
    session.refresh(job)
    assert late.outcome == "CONFLICT" and late.error is not None and late.error.code == ErrorCode.CONFLICT
    assert job.status == "ASSIGNED" and job.resolved_at is None
