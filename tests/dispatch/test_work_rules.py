"""Specification of the work rules in the optimizer: stability, lending across regions, overtime fairness,
booked windows, and the plan's explanation (score by goal, KPIs, blocking constraints)."""

from __future__ import annotations

import dataclasses

from dispatch.optimizer import OptimizerSettings, check_feasibility, solve
from dispatch.optimizer.core import Problem
from tests.dispatch.test_replan_events import FAST, crew, ticket

# overtime for any work (not only emergencies), so that its cost and fairness decide
LOW_WORK = OptimizerSettings(workers=1, time_limit_s=1.0, overtime_cost=1.0, fair_overtime_minutes=20,
                             fair_overtime_cost=20.0, drop_penalty={**FAST.drop_penalty, "LOW": 1e5},
                             overtime_only_for_emergencies=False)


def test_the_score_by_goal_adds_up_to_the_objective_and_names_every_goal() -> None:
    crews = [crew("A"), crew("B", 0, 5, end=60)]
    tickets = [ticket(f"T{i}", i * 0.5, i % 2 * 5, ["HIGH", "NORMAL", "LOW"][i % 3], respond_by=30 + 20 * i,
                      customers_affected=1 + 10 * i) for i in range(7)]
    plan = solve(crews, tickets, [], FAST)
    score = plan.stats["score"]
    assert score["total"] == plan.objective
    assert score["customer_minutes"] > 0 and score["travel"] > 0
    assert sum(score["lateness_by_priority"].values()) == score["lateness"]
    kpis = plan.stats["kpis"]
    assert set(kpis["utilisation_by_crew"]) == {"A", "B"}
    assert all(0 <= u <= 1 for u in kpis["utilisation_by_crew"].values())
    assert 0 < kpis["travel_share"] < 1


def test_overtime_is_spread_over_crews_rather_than_piled_on_one() -> None:
    crews = [crew("A", end=60, end_at_home=False), crew("B", 0, 0.2, end=60, end_at_home=False)]
    tickets = [ticket(f"L{i}", 0.05 * i, 0.1, "LOW", kind="INQUIRY", service_minutes=30) for i in range(6)]
    plan = solve(crews, tickets, [], LOW_WORK)
    assert check_feasibility(plan, crews, tickets, [], LOW_WORK) == []
    assert len(plan.assignments) == 6
    overtime = plan.stats["kpis"]["overtime_by_crew"]
    assert sum(overtime.values()) >= 55  # 180 min of work in two 60 min shifts
    assert max(overtime.values()) <= 40  # not 60 on one crew and none on the other
    assert plan.stats["kpis"]["overtime_fairness"]["crews_with_overtime"] == 2
    one_sided = Problem.build(crews, tickets, [], LOW_WORK)
    assert one_sided.route_end_cost(0, 60 + 60) > 2 * one_sided.route_end_cost(0, 60 + 30)  # convex


def test_a_local_crew_is_preferred_to_a_lent_one_and_lending_shows_in_the_reason() -> None:
    local = crew("LOCAL", 0, 1, region="south")
    lent = crew("LENT", 0, -1, region="south", home_region="north")
    job = ticket("J", 0, 0, "HIGH", respond_by=60, region="south")
    plan = solve([local, lent], [job], [], FAST)
    assert plan.crew_of("J") == "LOCAL"
    alone = solve([lent], [job], [], FAST)
    assert alone.crew_of("J") == "LENT" and "lent from region north" in alone.assignments[0].reason
    assert alone.stats["score"]["lending"] == round(FAST.lending_cost)


def test_a_booked_window_makes_the_crew_come_no_earlier_and_other_work_fills_the_wait() -> None:
    crews = [crew("A")]
    booked = ticket("BOOKED", 1, 0, "LOW", kind="METER", earliest_start=180, respond_by=300)
    other = ticket("OTHER", 2, 0, respond_by=120)
    plan = solve(crews, [booked, other], [], FAST)
    assert plan.route("A") == ["OTHER", "BOOKED"]
    arrival = next(a.planned_arrival for a in plan.assignments if a.ticket_id == "BOOKED")
    assert arrival == 180
    assert "window from +180 min" in next(a.reason for a in plan.assignments if a.ticket_id == "BOOKED")


def test_a_window_after_every_shift_is_an_unassigned_reason_not_an_error() -> None:
    plan = solve([crew("A", end=120)], [ticket("LATE", 1, 0, earliest_start=2000)], [], FAST)
    assert plan.assignments == []
    assert "window opens" in plan.unassigned[0].reason


def test_moving_an_unstarted_job_costs_the_stability_penalty() -> None:
    crews = [crew("A"), crew("B", 0, 0.1)]
    owned = ticket("X", 1, 0, assigned_crew_id="A", status="ASSIGNED")
    p = Problem.build(crews, [owned], [], FAST)
    assert p.route_cost(1, ["T:X"]) - p.route_cost(0, ["T:X"]) >= round(FAST.reassign_cost) - 5
    plan = solve(crews, [owned], [], FAST)
    assert plan.crew_of("X") == "A"  # B is as near, but X is A's already
    free = solve(crews, [dataclasses.replace(owned, assigned_crew_id=None, status="NEW")], [], FAST)
    assert free.stats["score"]["reassignment"] == 0


def test_an_unassigned_ticket_says_which_constraint_blocks_it() -> None:
    crews = [crew("A", end=90)]
    tickets = [ticket("E", 0.5, 0, "EMERGENCY", kind="EMERGENCY", respond_by=20, service_minutes=150),
               ticket("N", 1, 0, service_minutes=60, respond_by=60)]
    plan = solve(crews, tickets, [], FAST)
    assert plan.crew_of("E") == "A" and plan.crew_of("N") is None
    reason = plan.unassigned[0].reason
    assert reason.startswith("capacity") and "A" in reason


def test_a_long_shift_gets_its_meal_break_inside_the_window_and_jobs_around_it() -> None:
    a = crew("A", end=600, break_start=180, break_end=240, break_minutes=30)
    tickets = [ticket(f"T{i}", 0.3 * i, 0, service_minutes=50, respond_by=600) for i in range(7)]
    plan = solve([a], tickets, [], FAST)
    assert check_feasibility(plan, [a], tickets, [], FAST) == []
    start = plan.stats["breaks"]["A"]
    assert 180 <= start <= 240
    jobs = sorted(plan.assignments, key=lambda x: x.sequence)
    for x in jobs:  # no job is being worked on during the break
        assert x.planned_finish <= start or x.planned_arrival >= start + 30
    after = next(x for x in jobs if x.planned_arrival >= start + 30)
    assert "meal break" in after.reason


def test_a_crew_whose_work_ends_before_the_break_window_takes_no_break() -> None:
    a = crew("A", end=600, break_start=180, break_end=240, break_minutes=30)
    plan = solve([a], [ticket("ONLY", 1, 0)], [], FAST)
    assert plan.stats["breaks"] == {}


def test_a_crew_already_inside_its_break_window_is_not_sent_to_lunch_before_its_first_job() -> None:
    # the window opened before the plan start: whether the break was taken is unknown, so it is not forced
    working = dataclasses.replace(crew("A", end=600), shift_start=-240, break_start=-60, break_end=60,
                                  break_minutes=30)
    job = ticket("FIRST", 1, 0, customers_affected=400, respond_by=600)
    plan = solve([working], [job], [], FAST)
    assert plan.stats["breaks"] == {}
    p = Problem.build([working], [job], [], FAST)
    assert plan.assignments[0].planned_arrival == p.minutes[p.crew_point(0), p.ticket_point(0)]


def test_the_meal_break_is_taken_as_late_as_its_window_allows() -> None:
    a = crew("A", end=600, break_start=60, break_end=240, break_minutes=30)
    tickets = [ticket(f"T{i}", 0.3 * i, 0, service_minutes=50, respond_by=600) for i in range(1, 6)]
    p = Problem.build([a], tickets, [], FAST)
    keys = [f"T:T{i}" for i in range(1, 6)]
    times = p.simulate(0, keys)
    assert times.break_at is not None and 60 <= times.break_at <= 240
    before = [f for f in times.finishes if f <= times.break_at]
    assert len(before) > 1 and times.break_at == before[-1]  # not at the first chance but straight after a job
    following = times.arrivals[len(before)]
    assert following - 30 + 50 > 240  # whose successor, without the break, would have ended after the window
