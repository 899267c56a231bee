"""Specification of the dispatch optimizer on small hand-made cases whose right answer is known."""

from __future__ import annotations

import math

import pytest

from dispatch.optimizer import (
    CrewIn,
    GeneratorIn,
    OptimizerSettings,
    Plan,
    TicketIn,
    check_feasibility,
    evaluate,
    greedy_plan,
    insert_ticket,
    solve,
)

LAT, LNG = 30.60, 114.30
KM = 1 / 111.2  # degrees latitude per km
FAST = OptimizerSettings(workers=1, time_limit_s=1.0)


def crew(
    cid: str,
    dlat_km: float = 0.0,
    dlng_km: float = 0.0,
    skills: tuple[str, ...] = ("lv_overhead",),
    start: int = 0,
    end: int = 480,
    **kw: object,
) -> CrewIn:
    lat, lng = LAT + dlat_km * KM, LNG + dlng_km * KM / math.cos(math.radians(LAT))
    return CrewIn(cid, lat, lng, lat, lng, frozenset(skills), start, end, **kw)  # type: ignore[arg-type]


def ticket(
    tid: str,
    dlat_km: float = 0.0,
    dlng_km: float = 0.0,
    priority: str = "NORMAL",
    kind: str = "FAULT_REPAIR",
    skills: tuple[str, ...] = ("lv_overhead",),
    **kw: object,
) -> TicketIn:
    lat, lng = LAT + dlat_km * KM, LNG + dlng_km * KM / math.cos(math.radians(LAT))
    return TicketIn(tid, lat, lng, priority, kind, required_skills=frozenset(skills), **kw)  # type: ignore[arg-type]


def feasible(
    plan: Plan,
    crews: list[CrewIn],
    tickets: list[TicketIn],
    gens: list[GeneratorIn] | None = None,
    settings: OptimizerSettings = FAST,
) -> Plan:
    errs = check_feasibility(plan, crews, tickets, gens or [], settings)
    assert errs == [], errs
    return plan


def test_two_crews_two_tickets_on_opposite_sides_each_goes_to_the_nearest() -> None:
    crews = [crew("west", dlng_km=-10), crew("east", dlng_km=10)]
    tickets = [ticket("w", dlng_km=-11, respond_by=60), ticket("e", dlng_km=11, respond_by=60)]
    plan = feasible(solve(crews, tickets, [], FAST), crews, tickets)
    assert plan.crew_of("w") == "west"
    assert plan.crew_of("e") == "east"
    assert plan.late_tickets == 0 and not plan.unassigned
    a = next(x for x in plan.assignments if x.ticket_id == "w")
    assert a.planned_arrival > 0 and a.planned_finish == a.planned_arrival + 60
    assert "nearest qualified crew" in a.reason and "km" in a.reason and "before deadline" in a.reason


def test_one_crew_with_time_for_one_job_serves_the_emergency_not_the_low_ticket() -> None:
    crews = [crew("c", end=100)]
    tickets = [
        ticket("low", dlat_km=2, priority="LOW", kind="METER", skills=()),
        ticket("em", dlat_km=-2, priority="EMERGENCY", kind="EMERGENCY", respond_by=45),
    ]
    plan = feasible(solve(crews, tickets, [], FAST), crews, tickets)
    assert plan.crew_of("em") == "c"
    assert [u.ticket_id for u in plan.unassigned] == ["low"]
    assert plan.unassigned[0].reason


def test_skill_restriction_sends_the_farther_crew_that_holds_the_skill() -> None:
    crews = [crew("near", dlat_km=1), crew("far", dlat_km=15, skills=("lv_overhead", "transformer"))]
    tickets = [ticket("tx", skills=("transformer",), respond_by=120)]
    plan = feasible(solve(crews, tickets, [], FAST), crews, tickets)
    assert plan.crew_of("tx") == "far"
    assert "holds transformer" in plan.assignments[0].reason


def test_ticket_nobody_has_skills_for_comes_back_with_that_reason() -> None:
    crews = [crew("c")]
    tickets = [ticket("x", skills=("live_line", "mv_switching"))]
    plan = feasible(solve(crews, tickets, [], FAST), crews, tickets)
    assert plan.assignments == []
    assert plan.unassigned[0].reason == "no crew holds skills live_line+mv_switching"


def test_shift_end_excludes_a_far_ticket_with_a_reason() -> None:
    s = OptimizerSettings(workers=1, time_limit_s=1.0, overtime_minutes=0)
    crews = [crew("c", end=60)]
    tickets = [ticket("near", dlat_km=1, service_minutes=30), ticket("far", dlat_km=40, service_minutes=30)]
    plan = feasible(solve(crews, tickets, [], s), crews, tickets, settings=s)
    assert plan.crew_of("near") == "c"
    (u,) = plan.unassigned
    assert u.ticket_id == "far" and "beyond reach within shift" in u.reason


def test_crew_off_shift_cannot_take_work() -> None:
    crews = [crew("gone", start=-600, end=-200)]
    tickets = [ticket("x")]
    plan = feasible(solve(crews, tickets, [], FAST), crews, tickets)
    assert plan.unassigned[0].reason == "no qualified crew in shift"


def test_future_shift_starts_work_at_shift_start() -> None:
    crews = [crew("late", start=120, end=600)]
    tickets = [ticket("x", dlat_km=1)]
    plan = feasible(solve(crews, tickets, [], FAST), crews, tickets)
    assert plan.assignments[0].planned_arrival >= 120


def test_generator_goes_to_the_hospital_with_a_tow_crew_and_enough_capacity() -> None:
    crews = [crew("tow", dlat_km=-3, can_tow_generator=True), crew("plain", dlat_km=-1)]
    gens = [
        GeneratorIn("small", LAT + 2 * KM, LNG, 100.0),
        GeneratorIn("big", LAT - 5 * KM, LNG, 500.0),
        GeneratorIn("broken", LAT, LNG, 1000.0, available=False),
    ]
    tickets = [
        ticket(
            "hospital",
            dlat_km=4,
            priority="CRITICAL",
            respond_by=60,
            needs_generator=True,
            critical_load_kw=300.0,
            customers_affected=20,
        )
    ]
    plan = feasible(solve(crews, tickets, gens, FAST), crews, tickets, gens)
    a = plan.assignments[0]
    assert a.generator_id == "big"
    (move,) = plan.stats["generator_moves"]
    assert move["crew_id"] == "tow" and move["generator_id"] == "big" and move["ticket_id"] == "hospital"
    assert "generator big (500 kW) hooked up by tow" in a.reason


def test_generator_site_without_a_tow_crew_is_still_visited_and_says_why() -> None:
    crews = [crew("plain")]
    gens = [GeneratorIn("g", LAT, LNG, 500.0)]
    tickets = [
        ticket("hospital", dlat_km=2, priority="CRITICAL", needs_generator=True, critical_load_kw=300.0)
    ]
    plan = feasible(solve(crews, tickets, gens, FAST), crews, tickets, gens)
    assert plan.crew_of("hospital") == "plain"
    assert plan.assignments[0].generator_id is None
    assert "no generator: no crew can tow" in plan.assignments[0].reason


def test_in_progress_and_pinned_work_stays_first_even_when_suboptimal() -> None:
    crews = [crew("a"), crew("b", dlat_km=20)]
    tickets = [
        ticket("onsite", dlat_km=19, status="ON_SITE", assigned_crew_id="b", service_minutes=20),
        ticket("pinned", dlat_km=-15, pinned=True, assigned_crew_id="b", service_minutes=20),
        ticket("enroute", dlat_km=1, status="EN_ROUTE", assigned_crew_id="a"),
        ticket("open", dlat_km=-14, priority="HIGH", respond_by=30, customers_affected=300),
    ]
    plan = feasible(solve(crews, tickets, [], FAST), crews, tickets)
    assert plan.route("b")[:2] == ["onsite", "pinned"]
    assert plan.route("a")[0] == "enroute"
    fixed = {a.ticket_id for a in plan.assignments if a.pinned}
    assert fixed == {"onsite", "pinned", "enroute"}
    assert "in progress" in next(a.reason for a in plan.assignments if a.ticket_id == "onsite")


def test_no_crews_means_every_ticket_unassigned_with_reason_no_crews() -> None:
    tickets = [ticket("x"), ticket("y", priority="EMERGENCY", kind="EMERGENCY")]
    plan = feasible(solve([], tickets, [], FAST), [], tickets)
    assert {u.ticket_id: u.reason for u in plan.unassigned} == {"x": "no crews", "y": "no crews"}


def test_no_tickets_gives_an_empty_plan() -> None:
    plan = solve([crew("c")], [], [], FAST)
    assert plan.assignments == [] and plan.unassigned == [] and plan.late_tickets == 0


def test_crew_without_a_valid_location_is_rejected_clearly() -> None:
    bad = CrewIn("c", float("nan"), LNG, LAT, LNG, frozenset(), 0, 480)
    with pytest.raises(ValueError, match="no valid location"):
        solve([bad], [ticket("x")], [], FAST)


def test_unknown_priority_is_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="unknown priority"):
        solve([crew("c")], [ticket("x", priority="URGENT")], [], FAST)


def test_check_feasibility_reports_broken_rules() -> None:
    crews = [crew("c")]
    tickets = [ticket("tx", skills=("transformer",)), ticket("y")]
    plan = greedy_plan(crews, tickets, [], FAST)
    from dataclasses import replace

    forged = replace(plan.assignments[0], ticket_id="tx", crew_id="c", sequence=0)
    broken = Plan([forged], [], 0.0, 0, 0.0, 0.0, 0.0, {})
    errs = check_feasibility(broken, crews, tickets, [])
    assert any("lacks ['transformer']" in e for e in errs)
    assert any("ticket y appears 0 times" in e for e in errs)


def test_greedy_baseline_is_feasible_and_evaluated_like_solve() -> None:
    crews = [crew("a", dlat_km=-5), crew("b", dlat_km=5, skills=("lv_overhead", "meter"))]
    tickets = [ticket(f"t{i}", dlat_km=i - 4, respond_by=30 + 10 * i) for i in range(8)]
    tickets.append(ticket("m", priority="LOW", kind="METER", skills=("meter",)))
    g = feasible(greedy_plan(crews, tickets, [], FAST), crews, tickets)
    o = feasible(solve(crews, tickets, [], FAST), crews, tickets)
    for plan in (g, o):
        m = evaluate(plan, crews, tickets, FAST)
        assert m["objective"] == plan.objective
        assert m["customer_minutes"] == plan.customer_minutes
        assert m["late_tickets"] == plan.late_tickets
    assert o.objective <= g.objective


def test_insert_ticket_puts_a_new_emergency_on_a_qualified_crew_without_moving_started_work() -> None:
    crews = [crew("a", dlat_km=-3), crew("b", dlat_km=3, skills=("lv_overhead", "live_line"))]
    tickets = [
        ticket("started", dlat_km=-2, status="ON_SITE", assigned_crew_id="a", service_minutes=30),
        ticket("t1", dlat_km=4),
        ticket("t2", dlat_km=-4),
        ticket("t3", dlat_km=6),
    ]
    plan = feasible(solve(crews, tickets, [], FAST), crews, tickets)
    new = ticket(
        "wire_down", dlat_km=2, priority="EMERGENCY", kind="EMERGENCY", skills=("live_line",), respond_by=45
    )
    after = insert_ticket(plan, crews, tickets, [], new, FAST)
    everything = [*tickets, new]
    feasible(after, crews, everything)
    assert after.crew_of("wire_down") == "b"
    assert after.route("a")[0] == "started"
    assert after.route("b")[0] == "wire_down"  # pre-empts b's not-yet-started job
    # a warm background re-optimisation from the inserted plan is never worse
    re = feasible(solve(crews, everything, [], FAST, initial_plan=after), crews, everything)
    assert re.objective <= after.objective


def test_insert_ticket_nobody_can_serve_comes_back_unassigned() -> None:
    crews = [crew("a")]
    tickets = [ticket("t1")]
    plan = solve(crews, tickets, [], FAST)
    new = ticket("x", skills=("mv_switching",), priority="EMERGENCY", kind="EMERGENCY")
    after = feasible(insert_ticket(plan, crews, tickets, [], new, FAST), crews, [*tickets, new])
    assert after.crew_of("t1") == "a"
    assert [u.reason for u in after.unassigned] == ["no crew holds skills mv_switching"]
