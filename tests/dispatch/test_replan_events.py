"""Specification of re-planning on real-time events (plain data): what moves, what stays and why."""

from __future__ import annotations

import dataclasses
import math

from dispatch.optimizer import CrewIn, OptimizerSettings, Plan, TicketIn, check_feasibility, solve
from dispatch.optimizer.replan import (
    crew_joins,
    crew_unavailable,
    customer_not_home,
    emergency,
    overrun,
    replan,
)

LAT, LNG = 30.60, 114.30
KM = 1 / 111.2
FAST = OptimizerSettings(workers=1, time_limit_s=1.0)


def at(dlat_km: float, dlng_km: float) -> tuple[float, float]:
    return LAT + dlat_km * KM, LNG + dlng_km * KM / math.cos(math.radians(LAT))


def crew(cid: str, dlat: float = 0.0, dlng: float = 0.0, end: int = 480, **kw: object) -> CrewIn:
    lat, lng = at(dlat, dlng)
    return CrewIn(cid, lat, lng, lat, lng, frozenset({"lv_overhead"}), 0, end, **kw)  # type: ignore[arg-type]


def ticket(tid: str, dlat: float = 0.0, dlng: float = 0.0, priority: str = "NORMAL", **kw: object) -> TicketIn:
    lat, lng = at(dlat, dlng)
    kw.setdefault("required_skills", frozenset({"lv_overhead"}))
    kw.setdefault("kind", "FAULT_REPAIR")
    return TicketIn(tid, lat, lng, priority, **kw)  # type: ignore[arg-type]


def ok(plan: Plan, crews: list[CrewIn], tickets: list[TicketIn]) -> Plan:
    assert check_feasibility(plan, crews, tickets, [], FAST) == []
    return plan


def test_an_emergency_diverts_a_crew_driving_to_a_normal_job_which_stays_on_its_route_after_it() -> None:
    crews = [crew("A"), crew("FAR", 25, 25)]
    driving = ticket("N1", 2, 0, status="EN_ROUTE", assigned_crew_id="A")
    tickets = [driving]
    before = ok(solve(crews, tickets, [], FAST), crews, tickets)
    assert before.route("A") == ["N1"]
    em = ticket("E", -1, 0, "EMERGENCY", kind="EMERGENCY", respond_by=30, customers_affected=200)

    result = emergency(before, crews, tickets, [], em, FAST, time_limit_s=1.0)

    assert result.plan.stats["inserted_crew"] == "A"  # the immediate answer already diverts A
    assert result.plan.route("A") == ["E", "N1"]  # N1 was not started: it waits behind the emergency
    n1 = result.change("N1")
    assert n1 is not None and n1.kind == "retimed" and n1.crew_after == "A" and n1.eta_after > n1.eta_before
    assert result.change("E").kind == "new"  # type: ignore[union-attr]
    assert result.moved == []


def test_started_work_is_never_abandoned_for_an_emergency_without_the_dispatchers_consent() -> None:
    crews = [crew("A"), crew("FAR", 20, 20)]
    on_site = ticket("N1", 0.5, 0, status="ON_SITE", assigned_crew_id="A", service_minutes=240)
    tickets = [on_site]
    before = solve(crews, tickets, [], FAST)
    em = ticket("E", -1, 0, "EMERGENCY", kind="EMERGENCY", respond_by=30, customers_affected=200)

    without = emergency(before, crews, tickets, [], em, FAST, time_limit_s=1.0)
    assert without.plan.route("A")[0] == "N1"  # the started job stays first on A
    assert without.plan.crew_of("E") == "FAR"

    consented = emergency(before, crews, tickets, [], em, FAST, consent={"N1"}, time_limit_s=1.0)
    assert consented.plan.route("A")[0] == "E"  # the dispatcher agreed: A leaves the site for the emergency
    assert consented.plan.crew_of("N1") is not None


def test_an_overrun_moves_the_crews_next_deadline_job_to_another_crew_and_keeps_the_rest() -> None:
    crews = [crew("A"), crew("B", 0, 9)]
    tickets = [
        ticket("S", 0, 0, status="ON_SITE", assigned_crew_id="A", service_minutes=10),
        ticket("H", 1, 0, "HIGH", respond_by=60, customers_affected=40),
        ticket("L", 1.5, 0, "LOW", kind="INQUIRY"),
    ]
    before = ok(solve(crews, tickets, [], FAST), crews, tickets)
    assert before.route("A")[:2] == ["S", "H"]

    result = overrun(before, crews, tickets, [], "S", 150, FAST, time_limit_s=1.0)

    h = result.change("H")
    assert h is not None and h.kind == "moved" and (h.crew_before, h.crew_after) == ("A", "B")
    assert "moved from A" in h.reason
    assert result.plan.route("A")[0] == "S"  # the job under way is kept
    s = result.change("S")
    assert s is not None and s.kind == "kept"
    assert len(result.moved) <= 2


def test_a_crew_going_unavailable_hands_its_unstarted_jobs_to_others_and_keeps_theirs() -> None:
    crews = [crew("A"), crew("B", 0, 3)]
    tickets = [ticket("A1", 1, 0), ticket("A2", 1.5, 0), ticket("B1", 0, 3.5)]
    tickets = [dataclasses.replace(t, respond_by=240) for t in tickets]
    before = ok(solve(crews, tickets, [], FAST), crews, tickets)
    assert set(before.route("A")) == {"A1", "A2"} and before.route("B") == ["B1"]

    result = crew_unavailable(before, crews, tickets, [], "A", FAST, time_limit_s=1.0)

    assert result.plan.route("B")[0] == "B1"
    assert {c.ticket_id for c in result.moved} == {"A1", "A2"}
    assert all(c.crew_after == "B" and c.eta_after is not None for c in result.moved)
    assert all(a.crew_id != "A" for a in result.plan.assignments)


def test_a_customer_not_home_goes_back_to_the_pool_with_a_later_window_and_the_route_moves_up() -> None:
    crews = [crew("A")]
    tickets = [ticket("X", 1, 0), ticket("Y", 2, 0)]
    before = ok(solve(crews, tickets, [], FAST), crews, tickets)
    y_before = next(a for a in before.assignments if a.ticket_id == "Y")

    result = customer_not_home(before, crews, tickets, [], before.route("A")[0], 180, FAST, time_limit_s=1.0)

    missed = before.route("A")[0]
    again = next(a for a in result.plan.assignments if a.ticket_id == missed)
    assert again.planned_arrival >= 180 and "window from +180 min" in again.reason
    other = "Y" if missed == "X" else "X"
    assert next(a for a in result.plan.assignments if a.ticket_id == other).planned_arrival <= \
        max(y_before.planned_arrival, next(a for a in before.assignments if a.ticket_id == other).planned_arrival)


def test_mutual_aid_crews_join_the_plan_and_take_work_from_the_overloaded_crew() -> None:
    crews = [crew("A")]
    tickets = [ticket(f"T{i}", 1 + i, 0, respond_by=60, customers_affected=20) for i in range(6)]
    before = ok(solve(crews, tickets, [], FAST), crews, tickets)
    aid = crew("AID", 6, 0, home_region="north", region="default")
    tickets = [dataclasses.replace(t, region="default") for t in tickets]

    result = crew_joins(before, [dataclasses.replace(crews[0], region="default")], tickets, [], [aid], FAST,
                        time_limit_s=1.0)

    taken = result.plan.route("AID")
    assert taken, "the arriving crew gets work"
    assert all(c.crew_after == "AID" for c in result.moved)
    reason = next(a.reason for a in result.plan.assignments if a.crew_id == "AID")
    assert "lent from region north" in reason
    assert result.plan.stats["score"]["lending"] > 0


def test_a_re_plan_without_any_event_moves_no_job() -> None:
    crews = [crew("A"), crew("B", 0, 4)]
    tickets = [ticket(f"T{i}", i % 3, (i % 2) * 4, respond_by=120) for i in range(6)]
    before = ok(solve(crews, tickets, [], FAST), crews, tickets)
    result = replan(before, crews, tickets, [], FAST, time_limit_s=1.0)
    assert result.moved == []
    assert {c.kind for c in result.changes} == {"kept"}
