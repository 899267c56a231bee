"""Storm day bench: OR-Tools dispatch (`solve`) against the dispatcher's greedy baseline on one seeded day.

`--replay`: the 8-hour storm replay instead: the same seeded event stream (new tickets, overruns, crews going
unavailable, mutual-aid crews arriving) against the greedy dispatcher, "optimise once, never re-plan" and
gridcrew's re-planning (dispatch/optimizer/replay.py); customer-minutes without supply, late
EMERGENCY/CRITICAL, overtime and jobs moved per re-plan.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.optimizer import OptimizerSettings, Plan, check_feasibility, evaluate, greedy_plan, solve  # noqa: E402
from dispatch.optimizer.core import Problem  # noqa: E402
from dispatch.optimizer.replay import POLICIES, run_replay, storm_replay_events  # noqa: E402
from dispatch.optimizer.scenario import storm_day  # noqa: E402
from dispatch.planning import with_meal_break  # noqa: E402


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


def replay(a: argparse.Namespace) -> None:
    sc = storm_day(a.seed, n_crews=a.crews, n_tickets=a.tickets, n_generators=0, n_generator_sites=0)
    events = storm_replay_events(a.seed, sc.crews, hours=a.hours, new_tickets=a.new_tickets)
    s = OptimizerSettings(workers=a.workers)
    if a.reassign_cost is not None:
        s = dataclasses.replace(s, reassign_cost=a.reassign_cost)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    print(f"storm replay seed {a.seed}: {len(sc.crews)} crews, {len(sc.tickets)} open tickets at the start, "
          f"{a.hours} h, events {kinds} ({sum(len(e.tickets) for e in events)} new tickets); initial solve "
          f"{a.time_limit:.0f} s, re-plans {a.event_time_limit:.1f} s, {a.workers} workers, "
          f"stability cost {s.reassign_cost:.0f} per job moved", flush=True)
    once = solve(sc.crews, sc.tickets, sc.generators, s, time_limit_s=a.time_limit)  # shared by both optimisers
    results = []
    for policy in POLICIES:
        r = run_replay(sc, events, policy, s, hours=a.hours, event_time_limit_s=a.event_time_limit,
                       initial=None if policy == "greedy" else once)
        results.append(r)
        moved = r.moved_per_replan
        print(f"{policy:7s} cust-min {r.customer_minutes:>11,.0f}  late EM {r.late_by_priority['EMERGENCY']:>2}  "
              f"late CR {r.late_by_priority['CRITICAL']:>2}  late HI {r.late_by_priority['HIGH']:>3}  "
              f"reached {r.served:>3}  overtime {r.overtime_minutes:>5} min  re-plans {r.replans:>3}  "
              f"moved/re-plan median {r.median_moved:.1f} mean "
              f"{(sum(moved) / len(moved)) if moved else 0:.1f} max {max(moved, default=0)}  {r.seconds:6.1f} s",
              flush=True)
    print("re-plans by event (count, median moved, max moved):", results[2].stats.get("moved_by_event"))
    best = min(results, key=lambda r: r.customer_minutes)
    g = results[0].customer_minutes
    print(f"fewest customer-minutes: {best.policy}; re-planning vs greedy "
          f"{100 * (1 - results[2].customer_minutes / g):.1f} % fewer, vs optimise-once "
          f"{100 * (1 - results[2].customer_minutes / results[1].customer_minutes):.1f} % fewer; median jobs "
          f"moved per re-plan {results[2].median_moved:.1f} (goal <= 3)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crews", type=int, default=50)
    ap.add_argument("--tickets", type=int, default=500)
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--replay", action="store_true", help="the 8-hour event replay (see above)")
    ap.add_argument("--hours", type=int, default=8)
    ap.add_argument("--new-tickets", type=int, default=120)
    ap.add_argument("--event-time-limit", type=float, default=3.0)
    ap.add_argument("--reassign-cost", type=float, default=None, help="stability cost per moved job (replay)")
    ap.add_argument("--meal-breaks", action="store_true",
                    help="crews get their meal break window as read from the roster (shifts > 6 h)")
    a = ap.parse_args()
    if a.replay:
        replay(a)
        return
    sc = storm_day(a.seed, n_crews=a.crews, n_tickets=a.tickets)
    s = OptimizerSettings(workers=a.workers)
    if a.meal_breaks:
        sc = dataclasses.replace(sc, crews=[with_meal_break(c, s, True) for c in sc.crews])
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
