"""Specification of the optimizer on generated storm days: feasibility, warm start, decomposition, VRPTW."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dispatch.optimizer import (
    OptimizerSettings,
    check_feasibility,
    evaluate,
    greedy_plan,
    insert_ticket,
    solve,
    solve_vrptw,
)
from dispatch.optimizer.scenario import Scenario, storm_day
from dispatch.optimizer.vrptw import check_vrptw_routes, route_distance

SOLOMON = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "solomon"


@pytest.fixture(scope="module")
def day() -> Scenario:
    return storm_day(seed=7, n_crews=10, n_tickets=80, n_generators=3, n_generator_sites=3)


def test_storm_plan_is_feasible_and_every_ticket_is_accounted_for(day: Scenario) -> None:
    s = OptimizerSettings(workers=1)
    plan = solve(day.crews, day.tickets, day.generators, s, time_limit_s=2)
    assert check_feasibility(plan, day.crews, day.tickets, day.generators, s) == []
    assert len(plan.assignments) + len(plan.unassigned) == len(day.tickets)
    assert all(u.reason for u in plan.unassigned)
    assert all(a.reason for a in plan.assignments)
    assert plan.solve_seconds > 0
    assert plan.total_travel_minutes == evaluate(plan, day.crews, day.tickets, s)["travel_minutes"]


def test_solve_beats_or_matches_the_greedy_dispatcher_on_its_own_objective(day: Scenario) -> None:
    s = OptimizerSettings(workers=1)
    g = greedy_plan(day.crews, day.tickets, day.generators, s)
    o = solve(day.crews, day.tickets, day.generators, s, time_limit_s=2)
    assert check_feasibility(g, day.crews, day.tickets, day.generators, s) == []
    assert o.objective <= g.objective


def test_warm_start_from_a_plan_is_at_least_as_good_and_keeps_started_work(day: Scenario) -> None:
    s = OptimizerSettings(workers=1)
    first = solve(day.crews, day.tickets, day.generators, s, time_limit_s=1)
    started = {a.crew_id: a.ticket_id for a in first.assignments if a.sequence == 0}
    by_ticket = {t: c for c, t in started.items()}
    tickets = [
        dataclasses.replace(t, status="EN_ROUTE", assigned_crew_id=by_ticket[t.id])
        if t.id in by_ticket
        else t
        for t in day.tickets
    ]
    before = evaluate(first, day.crews, tickets, s, generators=day.generators)
    again = solve(day.crews, tickets, day.generators, s, initial_plan=first, time_limit_s=1)
    assert check_feasibility(again, day.crews, tickets, day.generators, s) == []
    assert again.objective <= before["objective"]
    for cid, tid in started.items():
        assert again.route(cid)[0] == tid


def test_large_problems_are_decomposed_and_still_feasible(day: Scenario) -> None:
    s = OptimizerSettings(workers=2, max_tickets_per_model=30, max_polish_tickets=0)
    plan = solve(day.crews, day.tickets, day.generators, s, time_limit_s=3)
    assert plan.stats["clusters"] >= 2
    assert check_feasibility(plan, day.crews, day.tickets, day.generators, s) == []
    assert len(plan.assignments) + len(plan.unassigned) == len(day.tickets)


def test_inserting_emergencies_one_by_one_stays_feasible(day: Scenario) -> None:
    s = OptimizerSettings(workers=1)
    plan = greedy_plan(day.crews, day.tickets, day.generators, s)
    tickets = list(day.tickets)
    for k, base in enumerate(day.tickets[:3]):
        new = dataclasses.replace(
            base,
            id=f"NEW{k}",
            priority="EMERGENCY",
            kind="EMERGENCY",
            respond_by=45,
            required_skills=frozenset({"lv_overhead"}),
            needs_generator=False,
        )
        plan = insert_ticket(plan, day.crews, tickets, day.generators, new, s)
        tickets.append(new)
        assert plan.crew_of(new.id) is not None
        assert check_feasibility(plan, day.crews, tickets, day.generators, s) == []


@pytest.mark.skipif(not (SOLOMON / "C101.vrp").exists(), reason="shared Solomon instances not present")
def test_vrptw_core_solves_c101_feasibly_near_the_best_known() -> None:
    import vrplib

    data = vrplib.read_instance(str(SOLOMON / "C101.vrp"))
    res = solve_vrptw(data, time_limit_s=2, workers=1)
    assert check_vrptw_routes(data, res.routes) == []
    assert res.distance == route_distance(res.routes, data["node_coord"])
    assert res.distance <= 827.3 * 1.05


def test_a_repair_stops_trying_at_its_deadline_most_urgent_first(day: Scenario) -> None:
    # On a storm board far beyond the crews' capacity, trying every missing ticket against every nearby route
    # took longer than the solve it completes: a repair stops at its deadline and leaves the rest unassigned.
    import time

    from dispatch.optimizer.core import Problem
    from dispatch.optimizer.insertion import repair

    problem = Problem.build(day.crews, day.tickets, day.generators, OptimizerSettings())
    empty = {c.id: [] for c in day.crews}  # type: ignore[var-annotated]
    assert repair(problem, dict(empty), deadline=time.perf_counter() - 1) == 0  # out of time: none tried
    routes = {c.id: [] for c in day.crews}  # type: ignore[var-annotated]
    assert repair(problem, routes, deadline=None) > 0  # no deadline: as many as fit
    plan = solve(day.crews, day.tickets, day.generators, OptimizerSettings(workers=1), time_limit_s=0.2)
    assert check_feasibility(plan, day.crews, day.tickets, day.generators, OptimizerSettings()) == []
    assert {a.ticket_id for a in plan.assignments} | {u.ticket_id for u in plan.unassigned} \
        >= {t.id for t in day.tickets}  # a short limit leaves tickets unassigned, never unaccounted for
