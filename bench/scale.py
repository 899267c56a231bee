"""Scale bench: 200 crews × 2000 tickets within 60 s on 2 cores (decomposed OR-Tools solve), peak memory."""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.optimizer import OptimizerSettings, check_feasibility, evaluate, greedy_plan, solve  # noqa: E402
from dispatch.optimizer.scenario import storm_day  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crews", type=int, default=200)
    ap.add_argument("--tickets", type=int, default=2000)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    sc = storm_day(a.seed, n_crews=a.crews, n_tickets=a.tickets, n_generators=20, n_generator_sites=40)
    s = OptimizerSettings(workers=a.workers)
    t0 = time.perf_counter()
    plan = solve(sc.crews, sc.tickets, sc.generators, s, time_limit_s=a.time_limit)
    wall = time.perf_counter() - t0
    errs = check_feasibility(plan, sc.crews, sc.tickets, sc.generators, s)
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    g = greedy_plan(sc.crews, sc.tickets, sc.generators, s)
    mo = evaluate(plan, sc.crews, sc.tickets, s, generators=sc.generators)
    mg = evaluate(g, sc.crews, sc.tickets, s, generators=sc.generators)
    print(
        f"{len(sc.crews)} crews x {len(sc.tickets)} tickets, limit {a.time_limit:.0f} s, "
        f"{a.workers} workers: "
        f"wall {wall:.1f} s, clusters {plan.stats.get('clusters', 1)}, "
        f"{plan.stats.get('seconds_per_cluster', '-')} s per cluster"
    )
    print(
        f"feasibility violations {len(errs)}{': ' + errs[0] if errs else ''}; "
        f"assigned {len(plan.assignments)}, "
        f"unassigned {len(plan.unassigned)}; late EMERGENCY {mo['late_by_priority']['EMERGENCY']} "
        f"(greedy {mg['late_by_priority']['EMERGENCY']})"
    )
    print(
        f"customer-minutes {mo['customer_minutes']:,.0f} vs greedy {mg['customer_minutes']:,.0f} "
        f"({100 * (1 - mo['customer_minutes'] / mg['customer_minutes']):.1f} % fewer); objective "
        f"{100 * (1 - mo['objective'] / mg['objective']):.1f} % lower than greedy"
    )
    print(f"peak RSS: main process {self_mb:.0f} MB, largest worker process {child_mb:.0f} MB")


if __name__ == "__main__":
    main()
