"""Storm day bench: OR-Tools dispatch (`solve`) against the dispatcher's greedy baseline on one seeded day."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.optimizer import OptimizerSettings, Plan, check_feasibility, evaluate, greedy_plan, solve  # noqa: E402
from dispatch.optimizer.core import Problem  # noqa: E402
from dispatch.optimizer.scenario import storm_day  # noqa: E402


def avoidable_late(plan: Plan, problem: Problem, priority: str) -> int:
    """Late tickets of ``priority`` that some qualified crew could have reached on time (ignoring others)."""
    n = 0
    for a in plan.assignments:
        t = problem.tickets[problem.ticket_index[a.ticket_id]]
        if t.priority == priority and a.late_minutes > 0:
            e = problem.earliest_arrival(t.id)
            if e is not None and t.respond_by is not None and e <= t.respond_by:
                n += 1
    return n


def row(name: str, plan: Plan, m: dict[str, Any], problem: Problem) -> str:
    late = m["late_by_priority"]
    return (
        f"{name:8s} cust-min {m['customer_minutes']:>11,.0f}  late EM {late['EMERGENCY']:>2} "
        f"(on time possible alone {avoidable_late(plan, problem, 'EMERGENCY')})  "
        f"late CR {late['CRITICAL']:>2} "
        f"(on time possible alone {avoidable_late(plan, problem, 'CRITICAL')})  late HI {late['HIGH']:>3}  "
        f"late NO {late['NORMAL']:>3}  unassigned {m['unassigned']:>3}  "
        f"travel {m['travel_minutes']:>7,.0f} min  overtime {m['overtime_minutes']:>5} min  "
        f"objective {m['objective']:>13,.0f}  {plan.solve_seconds:6.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crews", type=int, default=50)
    ap.add_argument("--tickets", type=int, default=500)
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    sc = storm_day(a.seed, n_crews=a.crews, n_tickets=a.tickets)
    s = OptimizerSettings(workers=a.workers)
    problem = Problem.build(sc.crews, sc.tickets, sc.generators, s)
    print(
        f"storm day seed {a.seed}: {len(sc.crews)} crews, {len(sc.tickets)} tickets, {len(sc.generators)} "
        f"generators; solve time limit {a.time_limit:.0f} s, {a.workers} workers"
    )
    g = greedy_plan(sc.crews, sc.tickets, sc.generators, s)
    t0 = time.perf_counter()
    o = solve(sc.crews, sc.tickets, sc.generators, s, time_limit_s=a.time_limit)
    wall = time.perf_counter() - t0
    for name, plan in (("greedy", g), ("solve", o)):
        errs = check_feasibility(plan, sc.crews, sc.tickets, sc.generators, s)
        if errs:
            print(f"{name}: {len(errs)} feasibility violations, first: {errs[0]}")
    mg = evaluate(g, sc.crews, sc.tickets, s, generators=sc.generators)
    mo = evaluate(o, sc.crews, sc.tickets, s, generators=sc.generators)
    print(row("greedy", g, mg, problem))
    print(row("solve", o, mo, problem))
    d = 100.0 * (1 - mo["customer_minutes"] / mg["customer_minutes"])
    print(
        f"customer-minutes without supply: {d:.1f} % fewer than greedy (goal >= 30 %); "
        f"objective {100.0 * (1 - mo['objective'] / mg['objective']):.1f} % lower; "
        f"travel {100.0 * (mo['travel_minutes'] / mg['travel_minutes'] - 1):+.1f} %; "
        f"solve wall {wall:.1f} s; generators hooked up: greedy {len(g.stats['generator_moves'])}, "
        f"solve {len(o.stats['generator_moves'])}"
    )


if __name__ == "__main__":
    main()
