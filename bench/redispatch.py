"""Re-dispatch bench: new EMERGENCY tickets into a committed storm plan (insert_ticket), then a re-solve."""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.optimizer import (  # noqa: E402
    OptimizerSettings,
    Plan,
    TicketIn,
    check_feasibility,
    evaluate,
    insert_ticket,
    solve,
)
from dispatch.optimizer.core import Problem  # noqa: E402
from dispatch.optimizer.scenario import CENTRE, area_type, storm_day  # noqa: E402


def commit(plan_tickets: list[TicketIn], plan: Plan) -> list[TicketIn]:
    """Mark each crew's first planned job as under way (EN_ROUTE), as the field would after dispatch."""
    first = {a.crew_id: a.ticket_id for a in plan.assignments if a.sequence == 0}
    by_ticket = {tid: cid for cid, tid in first.items()}
    return [
        dataclasses.replace(t, status="EN_ROUTE", assigned_crew_id=by_ticket[t.id])
        if t.id in by_ticket
        else t
        for t in plan_tickets
    ]


def reachable_in_time(p: Problem, plan: Plan, t: TicketIn) -> bool:
    """Could a qualified crew have been on site by the deadline by pre-empting its non-EMERGENCY unstarted
    work (keeping its started job and the EMERGENCY visits it does first)?"""
    routes = plan.stats["routes"]
    ti = p.ticket_index[t.id]
    for c in p.qualified[ti]:
        keys = []
        for k in routes.get(p.crews[c].id, []):
            if k == f"T:{t.id}":
                break
            tk = p.tickets[p.ticket_index[k[2:]]] if k[0] == "T" else None
            if tk is None or not (p.is_fixed(tk) or tk.priority == "EMERGENCY"):
                break
            keys.append(k)
        rt = p.simulate(c, keys)
        here = p.visit_point_service(keys[-1])[0] if keys else p.crew_point(c)
        free = rt.finishes[-1] if keys else p.crew_ready(c)
        if free + int(p.minutes[here, p.ticket_point(ti)]) <= (t.respond_by or 0):
            return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--new", type=int, default=20, help="number of new EMERGENCY tickets")
    ap.add_argument("--time-limit", type=float, default=20.0, help="initial solve")
    ap.add_argument("--resolve-limit", type=float, default=10.0, help="background warm re-solve")
    a = ap.parse_args()
    sc = storm_day(a.seed)
    s = OptimizerSettings(workers=2)
    plan = solve(sc.crews, sc.tickets, sc.generators, s, time_limit_s=a.time_limit)
    tickets = commit(sc.tickets, plan)
    print(
        f"committed plan: {len(plan.assignments)} assigned, objective {plan.objective:,.0f} "
        f"({plan.solve_seconds:.1f} s)"
    )
    rng = random.Random(a.seed + 100)
    times: list[float] = []
    late_new = 0
    avoidable = 0
    unplaced = 0
    for k in range(a.new):
        lat = CENTRE[0] + rng.uniform(-0.3, 0.3)
        lng = CENTRE[1] + rng.uniform(-0.3, 0.3)
        area = area_type(lat, lng)
        t = TicketIn(
            id=f"NEW{k:02d}",
            lat=lat,
            lng=lng,
            priority="EMERGENCY",
            kind="EMERGENCY",
            required_skills=frozenset({"lv_overhead"}),
            service_minutes=45,
            respond_by={"URBAN": 45, "RURAL": 90, "REMOTE": 120}[area],
            customers_affected=rng.randint(1, 200),
            area_type=area,
        )
        t0 = time.perf_counter()
        plan = insert_ticket(plan, sc.crews, tickets, sc.generators, t, s)
        times.append(time.perf_counter() - t0)
        tickets.append(t)
        a_new = next((x for x in plan.assignments if x.ticket_id == t.id), None)
        if a_new is None:
            unplaced += 1
        elif a_new.late_minutes > 0:
            late_new += 1
            avoidable += reachable_in_time(Problem.build(sc.crews, tickets, sc.generators, s), plan, t)
    errs = check_feasibility(plan, sc.crews, tickets, sc.generators, s)
    q = statistics.quantiles(times, n=20)
    print(
        f"insert_ticket x{a.new}: p50 {statistics.median(times) * 1000:.0f} ms, p95 {q[18] * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms (goal p95 < 1000 ms); new emergencies late {late_new} "
        f"(in time had a crew dropped non-emergency work: {avoidable}), "
        f"without crew {unplaced}; feasibility violations {len(errs)}"
    )
    before = evaluate(plan, sc.crews, tickets, s, generators=sc.generators)
    t0 = time.perf_counter()
    re = solve(sc.crews, tickets, sc.generators, s, initial_plan=plan, time_limit_s=a.resolve_limit)
    wall = time.perf_counter() - t0
    after = evaluate(re, sc.crews, tickets, s, generators=sc.generators)
    errs = check_feasibility(re, sc.crews, tickets, sc.generators, s)
    for name, m in (("after inserts", before), ("after re-solve", after)):
        print(
            f"{name:15s} objective {m['objective']:>13,.0f}  customer-min {m['customer_minutes']:>11,.0f}  "
            f"late EM {m['late_by_priority']['EMERGENCY']:>2}  "
            f"late CR {m['late_by_priority']['CRITICAL']:>2}  "
            f"unassigned {m['unassigned']:>3}  travel {m['travel_minutes']:>7,.0f}"
        )
    print(
        f"warm re-solve {wall:.1f} s: objective {100 * (1 - after['objective'] / before['objective']):.1f} % "
        f"lower; feasibility violations {len(errs)}; in-progress kept "
        f"{all(re.crew_of(t.id) == t.assigned_crew_id for t in tickets if t.status == 'EN_ROUTE')}"
    )


if __name__ == "__main__":
    main()
