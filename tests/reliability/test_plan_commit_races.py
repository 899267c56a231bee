"""A plan commit racing intake, a dispatcher and a crew device on PostgreSQL loses no deadlock, and neither do
they: every writer takes its rows in the lock order of dispatch writes (dispatch/locks.py), the plan commit
politely. Afterwards the board is consistent: every report committed, no ticket with two active assignments,
one committed plan.

The tickets sit close together so that intake groups them into incidents: a committed plan then refreshes each
incident, writing its ETR onto all of its tickets while intake writes the same incident and tickets, which is
how background re-plans used to lose deadlocks in the storm benchmark. PostgreSQL only (SQLite serialises
writers).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError
from crews.roster import NewCrew, create_crew
from dispatch.enums import PlanStatus
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.models import Assignment, DispatchPlan, Ticket
from dispatch.optimizer import AssignmentOut, Plan
from dispatch.planning import AssignRequest, assign_ticket, commit_plan, read_planning_input, store_plan
from mobile_sync.protocol import MutationIn, push, register_device

CENTRE = (30.600, 114.300)
PLAN_ROUNDS = 6
REPORTS_PER_CLERK = 8
ASSIGNMENTS = 10
DEVICE_BATCHES = 10


def site(rng: random.Random) -> tuple[float, float]:
    """Within a few hundred metres of the centre: one incident's reach, not one site's (no duplicates)."""
    return CENTRE[0] + rng.uniform(-0.003, 0.003), CENTRE[1] + rng.uniform(-0.003, 0.003)


def report(ctx: IntakeContext, at: tuple[float, float], key: str, session: Session) -> Ticket:
    return create_ticket(session, ctx, NewTicket(kind="FAULT_REPAIR", channel="HOTLINE", summary="家里停电了",
                                                 lat=at[0], lng=at[1], client_request_id=key), "dispatcher").ticket


def rotated_plan(session: Session, crew_ids: list[int], round_: int) -> None:
    """Commit a plan that hands every open ticket to another crew with new ETAs (no solve: the race is the
    point, not the routes)."""
    data = read_planning_input(session, "default")
    sequence: dict[int, int] = {}
    assignments = []
    for i, t in enumerate(sorted(data.tickets, key=lambda t: int(t.id))):
        crew = crew_ids[(i + round_) % len(crew_ids)]
        seq = sequence[crew] = sequence.get(crew, -1) + 1
        arrival = 20 * (seq + 1) + 7 * round_
        assignments.append(AssignmentOut(ticket_id=t.id, crew_id=str(crew), sequence=seq, planned_arrival=arrival,
                                         planned_finish=arrival + 60, generator_id=None, pinned=False,
                                         late_minutes=0, reason="test rotation"))
    plan = Plan(assignments=assignments, unassigned=[], solve_seconds=0.0, late_tickets=0,
                total_travel_minutes=0.0, objective=0.0, customer_minutes=0.0, stats={})
    row = store_plan(session, data, plan, "default", trigger="test")
    commit_plan(session, row, "system")
    session.commit()


def run_together(engine: Engine, workers: list[Callable[[Session], None]]) -> list[BaseException]:
    barrier = threading.Barrier(len(workers))
    failures: list[BaseException] = []

    def one(work: Callable[[Session], None]) -> None:
        with Session(engine, expire_on_commit=False) as own:
            barrier.wait()
            try:
                work(own)
            except BaseException as exc:  # noqa: BLE001  (handed to the test)
                failures.append(exc)

    threads = [threading.Thread(target=one, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return failures


def test_plan_commits_intake_assignments_and_pushes_race_without_deadlocks(
        db: Engine, session: Session, intake_context: IntakeContext) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite serialises writers")
    rng = random.Random(7)
    now = utcnow()
    crew_ids = [create_crew(session, NewCrew(
        name=f"crew {i}", skills=["lv_overhead"], home_lat=CENTRE[0] + 0.01 * i, home_lng=CENTRE[1],
        shift_start=now - timedelta(hours=1), shift_end=now + timedelta(hours=8))).id or 0 for i in range(3)]
    for i in range(12):
        report(intake_context, site(rng), f"seed-{i}", session)
    rotated_plan(session, crew_ids, 0)
    register_device(session, crew_ids[0], "race-device")
    ticket_ids = list(session.exec(select(Ticket.id)).all())

    def planner(own: Session) -> None:
        for round_ in range(1, PLAN_ROUNDS + 1):
            rotated_plan(own, crew_ids, round_)

    def clerk(name: str) -> Callable[[Session], None]:
        def work(own: Session) -> None:
            local = random.Random(name)
            for i in range(REPORTS_PER_CLERK):
                report(intake_context, site(local), f"{name}-{i}", own)
        return work

    def dispatcher(own: Session) -> None:
        local = random.Random(3)
        for _ in range(ASSIGNMENTS):
            try:
                assign_ticket(own, AssignRequest(ticket_id=local.choice(ticket_ids), crew_id=local.choice(crew_ids)),
                              "dispatcher")
            except DomainError:  # CONFLICT or INFEASIBLE is an answer, not a failure
                own.rollback()

    def device(own: Session) -> None:
        for batch in range(DEVICE_BATCHES):
            mutations = [MutationIn(client_mutation_id=f"m{batch}-{i}", kind="NOTE", occurred_at=utcnow(),
                                    ticket_id=t, note="cable down") for i, t in enumerate(ticket_ids[:4])]
            mutations.append(MutationIn(client_mutation_id=f"m{batch}-loc", kind="LOCATION", occurred_at=utcnow(),
                                        lat=CENTRE[0], lng=CENTRE[1] + 0.001 * batch))
            push(own, crew_ids[0], "race-device", mutations, retries=0)  # a lost deadlock would surface here

    failures = run_together(db, [planner, clerk("a"), clerk("b"), dispatcher, device])

    deadlocks = [f for f in failures if isinstance(f, DBAPIError) and getattr(f.orig, "sqlstate", None) == "40P01"]
    assert not deadlocks, deadlocks[0]
    assert not failures, failures[0]
    session.expire_all()
    keys = set(session.exec(select(Ticket.client_request_id)).all())
    assert {f"{name}-{i}" for name in "ab" for i in range(REPORTS_PER_CLERK)} <= keys  # every report committed
    doubled = session.exec(select(Assignment.ticket_id).where(col(Assignment.active).is_(True))
                           .group_by(col(Assignment.ticket_id)).having(func.count() > 1)).all()
    assert doubled == []
    committed = session.exec(select(func.count()).select_from(DispatchPlan).where(
        DispatchPlan.region == "default", DispatchPlan.status == PlanStatus.COMMITTED)).one()
    assert committed == 1
