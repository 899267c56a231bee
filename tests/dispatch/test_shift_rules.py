"""Specification of the hours rules in the optimizer: overtime only for emergencies, crews back at their depot by
shift end unless their last job is an emergency, and the reason a ticket gets when these rules block it.

Distances below: 3 km is 8 driving minutes, 15 km is 39 (urban speeds of the default travel settings).
"""

from __future__ import annotations

import dataclasses

from dispatch.optimizer import check_feasibility, solve
from dispatch.optimizer.core import OVER_SHIFT, Problem
from dispatch.optimizer.routing import solve_model
from tests.dispatch.test_replan_events import FAST, crew, ticket


def route_end(plan_crew: str, plan_routes: dict[str, list[str]], p: Problem) -> int:
    return p.simulate(p.crew_index[plan_crew], plan_routes[plan_crew]).end


def test_a_normal_job_that_only_fits_in_overtime_stays_unassigned_and_says_why() -> None:
    a = crew("A", end=120)
    job = ticket("LONG", 3, 0, service_minutes=120)  # on site at +8, done at +128: only in overtime
    plan = solve([a], [job], [], FAST)
    assert plan.assignments == []
    (u,) = plan.unassigned
    assert "would end after shift end" in u.reason and "is not an emergency" in u.reason
    assert "NORMAL" in u.reason


def test_an_emergency_job_is_taken_into_overtime() -> None:
    a = crew("A", end=120)
    fire = ticket("FIRE", 3, 0, "EMERGENCY", kind="EMERGENCY", service_minutes=120, respond_by=30)
    plan = solve([a], [fire], [], FAST)
    assert plan.crew_of("FIRE") == "A"
    assert plan.assignments[0].planned_finish == 128  # 8 min away, 120 on site: past the shift end
    assert plan.stats["kpis"]["overtime_by_crew"] == {"A": 16}  # with the 8 min drive home
    assert check_feasibility(plan, [a], [fire], [], FAST) == []


def test_the_second_normal_job_is_not_squeezed_into_overtime_but_a_second_emergency_is() -> None:
    a = crew("A", end=120)
    # 100 customers each: worth far more than the overtime an emergency may cost
    first = ticket("N1", 3, 0, service_minutes=60, customers_affected=100)
    second = ticket("N2", 3.3, 0, service_minutes=60, customers_affected=100)
    plan = solve([a], [first, second], [], FAST)
    assert len(plan.assignments) == 1
    (u,) = plan.unassigned
    assert u.reason.startswith("shift end:") and "is not an emergency" in u.reason  # capacity of its shift

    urgent = dataclasses.replace(second, priority="EMERGENCY", kind="EMERGENCY", respond_by=200)
    plan = solve([a], [first, urgent], [], FAST)
    assert {x.ticket_id for x in plan.assignments} == {"N1", "N2"}
    assert plan.route("A")[-1] == "N2"  # the emergency last: only it may run past the shift end


def test_overtime_for_any_work_is_a_setting() -> None:
    anything = dataclasses.replace(FAST, overtime_only_for_emergencies=False)
    long_job = ticket("LONG", 3, 0, service_minutes=120, customers_affected=100)  # worth 16 min of overtime
    assert solve([crew("A", end=120)], [long_job], [], FAST).crew_of("LONG") is None
    plan = solve([crew("A", end=120)], [long_job], [], anything)
    assert plan.crew_of("LONG") == "A"
    critical_too = dataclasses.replace(FAST, overtime_priorities=frozenset({"EMERGENCY", "CRITICAL"}))
    hospital = ticket("HOSPITAL", 3, 0, "CRITICAL", service_minutes=120, respond_by=60)
    assert solve([crew("A", end=120)], [hospital], [], critical_too).crew_of("HOSPITAL") == "A"
    assert solve([crew("A", end=120)], [hospital], [], FAST).crew_of("HOSPITAL") is None


def test_a_crew_is_back_at_its_depot_by_shift_end_unless_its_last_job_is_an_emergency() -> None:
    a = crew("A", end=120)
    # 15 km out, 60 min on site: done at +99, within the shift, but home only at +138
    far = ticket("FAR", 15, 0, service_minutes=60)
    near = ticket("NEAR", 3, 0, service_minutes=60)
    plan = solve([a], [far, near], [], FAST)
    assert plan.route("A") == ["NEAR"]
    assert "would end after shift end (with the drive back to the depot)" in plan.unassigned[0].reason
    p = Problem.build([a], [far, near], [], FAST)
    assert route_end("A", {"A": ["T:NEAR"]}, p) <= 120
    assert p.eval_route(0, ["T:FAR"])[1] == OVER_SHIFT  # what every heuristic checks

    burning = dataclasses.replace(far, priority="EMERGENCY", kind="EMERGENCY", respond_by=60)
    plan = solve([a], [burning], [], FAST)
    assert plan.crew_of("FAR") == "A" and plan.stats["kpis"]["overtime_by_crew"]["A"] == 18  # home at +138


def test_the_routing_model_itself_keeps_normal_work_within_each_crews_shift() -> None:
    # cheap overtime would tempt the search; the crews' shifts differ, so the bound depends on the crew
    cheap = dataclasses.replace(FAST, overtime_cost=1.0, fair_overtime_cost=0.0)
    crews = [crew("SHORT", end=120), crew("LONGER", end=200)]
    jobs = [ticket(f"N{i}", 3 + 0.2 * i, 0, service_minutes=60, customers_affected=50) for i in range(6)]
    fire = ticket("FIRE", 3, 0.5, "EMERGENCY", kind="EMERGENCY", service_minutes=90, respond_by=240)
    p = Problem.build(crews, [*jobs, fire], [], cheap)
    routes, info = solve_model(p, "PARALLEL_CHEAPEST_INSERTION", "GUIDED_LOCAL_SEARCH", 1.0)  # no heuristic start
    assert routes is not None
    assert "T:FIRE" in routes["SHORT"] + routes["LONGER"]
    for cid, keys in routes.items():
        c = p.crew_index[cid]
        assert p.eval_route(c, keys)[1] != OVER_SHIFT
        times = p.simulate(c, keys)
        for k, f in zip(keys, times.finishes, strict=True):
            if k != "T:FIRE":
                assert f <= p.crews[c].shift_end
        if keys and keys[-1] != "T:FIRE":
            assert times.end <= p.crews[c].shift_end
