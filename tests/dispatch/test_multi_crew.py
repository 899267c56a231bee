"""Specification of multi-crew jobs (plain data): a job needing two crews at once (heavy transformer swap, pole
replacement) gets two different crews starting together, the first one there waiting for the other, or none."""

from __future__ import annotations

import dataclasses

import pytest
from sqlmodel import Session

from core.errors import DomainError
from dispatch.enums import TicketStatus
from dispatch.intake import IntakeContext
from dispatch.optimizer import check_feasibility, greedy_plan, solve
from dispatch.optimizer.core import Problem
from dispatch.optimizer.insertion import construct
from dispatch.optimizer.routing import solve_model
from dispatch.planning import optimize_and_store, plan_assignments
from dispatch.tickets import change_status, set_crews_needed
from tests.dispatch.test_events import EAST, ONE, WEST
from tests.dispatch.test_events import crew as db_crew
from tests.dispatch.test_events import ticket as db_ticket
from tests.dispatch.test_replan_events import FAST, crew, ticket


def swap(**kw: object) -> object:
    kw.setdefault("respond_by", 240)
    kw.setdefault("customers_affected", 300)
    return ticket("SWAP", 2, 0, "HIGH", crews_needed=2, service_minutes=90, **kw)


def arrival(plan: object, tid: str) -> int:
    return next(a.planned_arrival for a in plan.assignments if a.ticket_id == tid)  # type: ignore[attr-defined]


def test_a_two_crew_job_gets_two_different_crews_that_start_together() -> None:
    near, far = crew("NEAR", 2, 1), crew("FAR", 2, 12)
    job = swap()
    plan = solve([near, far], [job], [], FAST)
    assert check_feasibility(plan, [near, far], [job], [], FAST) == []
    together = plan.stats["multi_crew"]["SWAP"]
    assert sorted(together["crews"]) == ["FAR", "NEAR"]
    p = Problem.build([near, far], [job], [], FAST)
    far_drive = int(p.minutes[p.crew_point(1), p.ticket_point(0)])
    assert together["start"] == arrival(plan, "SWAP") == far_drive  # the near crew waits for the far one
    assert "2 crews needed, arriving together" in plan.assignments[0].reason


def test_a_two_crew_job_with_one_qualified_crew_gets_none_and_says_why() -> None:
    wrong = dataclasses.replace(crew("WRONG", 1, 1), skills=frozenset({"meter"}))
    plan = solve([crew("ONLY"), wrong], [swap()], [], FAST)
    assert plan.assignments == []
    assert "needs 2 crews at once" in plan.unassigned[0].reason


def test_the_crew_that_waits_for_its_partner_does_other_work_first_and_its_later_jobs_move() -> None:
    near, far = crew("NEAR", 2, 1), crew("FAR", 2, 15)
    small = ticket("SMALL", 2.5, 1, "NORMAL", service_minutes=10, respond_by=60)
    tickets = [swap(), small]
    plan = solve([near, far], tickets, [], FAST)
    assert check_feasibility(plan, [near, far], tickets, [], FAST) == []
    assert plan.route("NEAR")[0] == "SMALL"  # done while the far crew is still driving
    start = plan.stats["multi_crew"]["SWAP"]["start"]
    assert arrival(plan, "SWAP") == start and arrival(plan, "SMALL") < start


def test_every_starting_solution_has_both_crews_or_neither_and_the_objective_times_them_together() -> None:
    crews = [crew("A"), crew("B", 0, 8), crew("C", 8, 0)]
    tickets = [swap(), ticket("N1", 1, 0, respond_by=60), ticket("N2", 0, 7, respond_by=60)]
    p = Problem.build(crews, tickets, [], FAST)
    routes = construct(p)
    visits = [k for keys in routes.values() for k in keys if k.endswith(":SWAP")]
    assert sorted(visits) == ["A:1:SWAP", "T:SWAP"]
    crews_of = {cid for cid, keys in routes.items() for k in keys if k.endswith(":SWAP")}
    assert len(crews_of) == 2
    alone = {cid: [k for k in keys if k != "A:1:SWAP"] for cid, keys in routes.items()}
    assert p.objective(alone) > p.objective(routes)  # half a job is no job: it pays the drop penalty


def test_a_job_needing_more_crews_than_fit_the_shifts_is_left_out_whole() -> None:
    a, b = crew("A", end=60), crew("B", 0, 1, end=60)
    job = swap()  # 90 minutes on site: longer than both shifts plus what overtime may cover
    plan = solve([a, b], [job], [], dataclasses.replace(FAST, overtime_minutes=0))
    assert plan.assignments == [] and plan.stats["multi_crew"] == {}


def test_the_routing_model_alone_puts_the_crews_on_different_routes_with_one_start_and_the_same_cost() -> None:
    near, far = crew("NEAR", 2, 1), crew("FAR", 2, 12)
    tickets = [swap(), ticket("SMALL", 2.5, 1, "NORMAL", service_minutes=10, respond_by=60),
               ticket("N2", 0, 28)]
    p = Problem.build([near, far, crew("X", 0, 30)], tickets, [], FAST)
    routes, info = solve_model(p, "PATH_CHEAPEST_ARC", "GUIDED_LOCAL_SEARCH", 1.0)  # cold: no constructed start
    assert routes is not None
    on = {cid for cid, keys in routes.items() for k in keys if k.endswith(":SWAP")}
    assert on == {"NEAR", "FAR"}
    assert info["solver_objective"] == p.objective(routes)  # the model's waiting equals our synchronised timing


def test_through_planning_a_ticket_taken_in_as_a_two_crew_job_is_planned_with_two_crews(
        session: Session, intake_context: IntakeContext) -> None:
    west, east = db_crew(session, "West crew", WEST), db_crew(session, "East crew", EAST)
    job = db_ticket(session, intake_context, (30.60, 114.31), crews_needed=2)
    assert job.crews_needed == 2
    plan = optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    together = plan.stats["multi_crew"][str(job.id)]
    assert sorted(together["crews"]) == sorted([str(west.id), str(east.id)])
    lead = next(a for a in plan_assignments(session, plan.id or 0) if a.ticket_id == job.id)
    assert "2 crews needed, arriving together" in (lead.reason or "")


def test_a_dispatcher_can_make_a_waiting_job_a_two_crew_job_and_not_a_closed_one(
        session: Session, intake_context: IntakeContext) -> None:
    job = db_ticket(session, intake_context, WEST)
    assert set_crews_needed(session, job.id or 0, 2, "dispatcher").crews_needed == 2
    with pytest.raises(DomainError):
        set_crews_needed(session, job.id or 0, 9, "dispatcher")
    change_status(session, job, TicketStatus.CANCELLED, "dispatcher")
    with pytest.raises(DomainError):
        set_crews_needed(session, job.id or 0, 1, "dispatcher")


def test_the_greedy_baseline_also_sends_both_crews_together_or_none() -> None:
    crews = [crew("NEAR", 2, 1), crew("FAR", 2, 12)]
    tickets = [swap(), ticket("SMALL", 2.5, 1, "NORMAL", service_minutes=10, respond_by=60)]
    plan = greedy_plan(crews, tickets, [], FAST)
    assert check_feasibility(plan, crews, tickets, [], FAST) == []
    assert sorted(plan.stats["multi_crew"]["SWAP"]["crews"]) == ["FAR", "NEAR"]
