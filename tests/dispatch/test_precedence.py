"""Specification of job dependencies (plain data): isolation switching by an `mv_switching` crew is finished before
the repair starts, restoration switching comes after it, tree trimming before line work; each with a minimum gap.
A job waiting for another is served only if that one is."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlmodel import Session

from core.errors import DomainError
from dispatch.enums import TicketStatus
from dispatch.intake import IntakeContext
from dispatch.optimizer import Plan, check_feasibility, greedy_plan, solve
from dispatch.optimizer.core import Problem
from dispatch.optimizer.routing import solve_model
from dispatch.planning import optimize_and_store, plan_assignments
from dispatch.tickets import change_status, set_dependency
from tests.dispatch.test_events import EAST, ONE, WEST
from tests.dispatch.test_events import crew as db_crew
from tests.dispatch.test_events import ticket as db_ticket
from tests.dispatch.test_replan_events import FAST, crew, ticket

SWITCHING = frozenset({"mv_switching"})


def switcher(cid: str, *pos: float, **kw: object) -> object:
    return dataclasses.replace(crew(cid, *pos, **kw), skills=SWITCHING)  # type: ignore[arg-type]


def times(plan: Plan, tid: str) -> tuple[int, int]:
    a = next(a for a in plan.assignments if a.ticket_id == tid)
    return a.planned_arrival, a.planned_finish


def test_isolation_then_repair_then_restoration_each_after_the_other_with_its_gap() -> None:
    crews = [switcher("SW", 0, 0), crew("LINE", 3, 0)]
    isolate = ticket("ISOLATE", 1, 0, "HIGH", required_skills=SWITCHING, service_minutes=20, respond_by=120)
    repair = ticket("REPAIR", 2, 0, "HIGH", service_minutes=60, respond_by=120, customers_affected=200,
                    depends_on="ISOLATE", depends_gap_minutes=10)
    restore = ticket("RESTORE", 1, 0, "HIGH", required_skills=SWITCHING, service_minutes=20, respond_by=240,
                     depends_on="REPAIR", depends_gap_minutes=5)
    tickets = [restore, repair, isolate]
    plan = solve(crews, tickets, [], FAST)
    assert check_feasibility(plan, crews, tickets, [], FAST) == []
    assert plan.crew_of("ISOLATE") == "SW" and plan.crew_of("REPAIR") == "LINE" and plan.crew_of("RESTORE") == "SW"
    assert times(plan, "REPAIR")[0] == times(plan, "ISOLATE")[1] + 10  # the line crew waits for the isolation
    assert times(plan, "RESTORE")[0] >= times(plan, "REPAIR")[1] + 5
    assert "after ticket ISOLATE is done (+10 min)" in next(a.reason for a in plan.assignments
                                                           if a.ticket_id == "REPAIR")


def test_line_work_waits_for_tree_trimming_on_the_same_crew_too() -> None:
    crews = [crew("A")]
    trim = ticket("TRIM", 1, 0, "NORMAL", kind="REPORT", service_minutes=40, respond_by=300)
    line = ticket("LINE", 0.5, 0, "HIGH", service_minutes=30, respond_by=30, customers_affected=50,
                  depends_on="TRIM", depends_gap_minutes=15)
    plan = solve(crews, [line, trim], [], FAST)
    assert plan.route("A") == ["TRIM", "LINE"]  # although LINE is nearer and more urgent
    assert times(plan, "LINE")[0] >= times(plan, "TRIM")[1] + 15


def test_a_job_whose_predecessor_cannot_be_served_is_not_served_either() -> None:
    crews = [crew("LINE")]  # nobody can switch
    isolate = ticket("ISOLATE", 1, 0, required_skills=SWITCHING)
    repair = ticket("REPAIR", 2, 0, depends_on="ISOLATE")
    plan = solve(crews, [isolate, repair], [], FAST)
    assert plan.assignments == []
    reason = next(u.reason for u in plan.unassigned if u.ticket_id == "REPAIR")
    assert "waits for ticket ISOLATE" in reason


def test_a_dependency_on_work_already_done_is_no_constraint() -> None:
    plan = solve([crew("A")], [ticket("REPAIR", 1, 0, depends_on="DONE-LAST-WEEK", depends_gap_minutes=60)], [],
                 FAST)
    assert times(plan, "REPAIR")[0] < 60


def test_the_routing_model_alone_keeps_the_order_and_gap_and_costs_what_we_compute() -> None:
    crews = [switcher("SW", 0, 0), crew("LINE", 3, 0)]
    tickets = [ticket("ISOLATE", 1, 0, "HIGH", required_skills=SWITCHING, service_minutes=20),
               ticket("REPAIR", 2, 0, "HIGH", service_minutes=60, depends_on="ISOLATE", depends_gap_minutes=25)]
    p = Problem.build(crews, tickets, [], FAST)
    routes, info = solve_model(p, "PATH_CHEAPEST_ARC", "GUIDED_LOCAL_SEARCH", 1.0)  # cold: no constructed start
    assert routes == {"SW": ["T:ISOLATE"], "LINE": ["T:REPAIR"]}
    sync = p.sync_starts(routes)
    isolate_finish = p.simulate(0, routes["SW"]).finishes[0]
    assert sync["REPAIR"] == isolate_finish + 25
    assert info["solver_objective"] == p.objective(routes)


def test_through_planning_a_repair_waits_for_its_isolation_and_not_for_closed_work(
        session: Session, intake_context: IntakeContext) -> None:
    db_crew(session, "West crew", WEST)
    isolate, repair = db_ticket(session, intake_context, WEST), db_ticket(session, intake_context, (30.60, 114.27))
    set_dependency(session, repair.id or 0, isolate.id, 20, "dispatcher")
    plan = optimize_and_store(session, time_limit_s=1, commit=True, settings=ONE)
    rows = {a.ticket_id: a for a in plan_assignments(session, plan.id or 0)}
    assert rows[repair.id].planned_arrival >= rows[isolate.id].planned_finish + timedelta(minutes=20)  # type: ignore[index]
    assert "after ticket" in (rows[repair.id].reason or "")  # type: ignore[index]

    change_status(session, isolate, TicketStatus.ON_HOLD, "dispatcher")  # off the board, still open
    session.commit()
    held = optimize_and_store(session, time_limit_s=1, settings=ONE)
    assert [u["ticket_id"] for u in held.unassigned if "waits for" in u["reason"]] == [repair.id]

    change_status(session, isolate, TicketStatus.RESOLVED, "dispatcher")
    session.commit()
    done = optimize_and_store(session, time_limit_s=1, settings=ONE)
    assert repair.id in {a.ticket_id for a in plan_assignments(session, done.id or 0)}


def test_a_dependency_cycle_is_refused(session: Session, intake_context: IntakeContext) -> None:
    a, b = db_ticket(session, intake_context, WEST), db_ticket(session, intake_context, EAST)
    set_dependency(session, b.id or 0, a.id, 0, "dispatcher")
    with pytest.raises(DomainError):
        set_dependency(session, a.id or 0, b.id, 0, "dispatcher")
    with pytest.raises(DomainError):
        set_dependency(session, a.id or 0, a.id, 0, "dispatcher")


def test_the_greedy_baseline_keeps_the_order_and_gap_too() -> None:
    crews = [switcher("SW", 0, 0), crew("LINE", 3, 0)]
    tickets = [ticket("REPAIR", 2, 0, "HIGH", service_minutes=60, depends_on="ISOLATE", depends_gap_minutes=10),
               ticket("ISOLATE", 1, 0, "NORMAL", required_skills=SWITCHING, service_minutes=20)]
    plan = greedy_plan(crews, tickets, [], FAST)
    assert check_feasibility(plan, crews, tickets, [], FAST) == []
    assert times(plan, "REPAIR")[0] >= times(plan, "ISOLATE")[1] + 10
