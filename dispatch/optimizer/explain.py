"""Why a plan looks as it does: its objective broken down by goal, KPIs, and what blocks unassigned tickets."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from dispatch.optimizer.core import Problem, RouteTimes, Visit, ticket_key
from dispatch.optimizer.model import PRIORITIES

GOALS = (
    "lateness",
    "customer_minutes",
    "generators",
    "travel",
    "overtime",
    "fairness",
    "reassignment",
    "lending",
    "unassigned",
)


def score_breakdown(p: Problem, routes: dict[str, list[Visit]]) -> dict[str, Any]:
    """The objective of ``routes`` split by goal; ``total`` equals ``Problem.objective(routes)``.

    ``lateness`` and ``unassigned`` are further split by priority (``lateness_by_priority``,
    ``unassigned_by_priority``); ``generators`` holds hook-up time costs plus the value of generators a
    site needs but does not get.
    """
    late_by = {pr: 0 for pr in PRIORITIES}
    drop_by = {pr: 0 for pr in PRIORITIES}
    out = {g: 0 for g in GOALS}
    served: set[str] = set()
    hooked: set[str] = set()
    sync = p.sync_starts(routes)
    for cid, keys in routes.items():
        c = p.crew_index[cid]
        rt = p.simulate(c, keys, sync)
        for k, a in zip(keys, rt.arrivals, strict=True):
            kind, _, rest = k.partition(":")
            if kind == "T":
                served.add(rest)
                t = p.tickets[p.ticket_index[rest]]
                out["customer_minutes"] += p.cm_coef(t) * a
                due = max(0, t.respond_by) if t.respond_by is not None else None
                if due is not None and a > due:
                    late_by[t.priority] += p.late_coef(t) * (a - due)
                extra = p.extra_cost(c, k)
                own = p.owner.get(k)
                moved = round(p.settings.reassign_cost) if own is not None and own != c else 0
                out["reassignment"] += moved
                out["lending"] += extra - moved
            elif kind == "D":
                hooked.add(rest.partition(":")[2])
                out["generators"] += p.visit_cost(k, a)
        out["travel"] += p.travel_cost(rt.travel)
        over = max(0, rt.end - p.crews[c].shift_end)
        out["overtime"] += p.overtime_coef() * over
        out["fairness"] += p.fair_coef() * max(0, over - p.settings.fair_overtime_minutes)
    for t in p.tickets:
        if t.id not in served:
            drop_by[t.priority] += p.drop_penalty(t)
        if t.needs_generator and t.id not in hooked:
            out["generators"] += round(p.settings.generator_value)
    out["lateness"] = sum(late_by.values())
    out["unassigned"] = sum(drop_by.values())
    return {
        **out,
        "lateness_by_priority": late_by,
        "unassigned_by_priority": drop_by,
        "total": sum(out[g] for g in GOALS),
    }


def kpis(p: Problem, routes: dict[str, list[Visit]], times: dict[str, RouteTimes]) -> dict[str, Any]:
    """On-time rate by priority (tickets with a deadline; unassigned ones count as not on time), travel share
    of working time, utilisation and overtime per crew and the spread of overtime (fairness)."""
    arrival: dict[str, int] = {}
    for cid, keys in routes.items():
        for k, a in zip(keys, times[cid].arrivals, strict=True):
            if k[0] == "T":
                arrival[k[2:]] = a
    due_n = {pr: 0 for pr in PRIORITIES}
    on_time = {pr: 0 for pr in PRIORITIES}
    for t in p.tickets:
        if t.respond_by is None:
            continue
        due_n[t.priority] += 1
        a = arrival.get(t.id)
        if a is not None and a <= max(0, t.respond_by):
            on_time[t.priority] += 1
    rate = {pr: (round(on_time[pr] / due_n[pr], 3) if due_n[pr] else None) for pr in PRIORITIES}
    utilisation: dict[str, float] = {}
    overtime: dict[str, int] = {}
    travel = work = 0
    for cid, keys in routes.items():
        if not keys:
            continue
        c = p.crew_index[cid]
        crew = p.crews[c]
        rt = times[cid]
        service = sum(f - a for a, f in zip(rt.arrivals, rt.finishes, strict=True))
        travel += rt.travel
        work += rt.travel + service
        available = max(1, crew.shift_end - p.crew_ready(c))
        utilisation[cid] = round(min(1.0, (rt.travel + service) / available), 3)
        overtime[cid] = max(0, rt.end - crew.shift_end)
    for crew in p.crews:
        utilisation.setdefault(crew.id, 0.0)
    values = [overtime.get(c.id, 0) for c in p.crews]
    with_ot = [v for v in values if v > 0]
    return {
        "on_time_rate_by_priority": rate,
        "travel_share": round(travel / work, 3) if work else 0.0,
        "utilisation_by_crew": utilisation,
        "mean_utilisation": round(statistics.fmean(utilisation.values()), 3) if utilisation else 0.0,
        "overtime_by_crew": {cid: v for cid, v in overtime.items() if v > 0},
        "overtime_fairness": {
            "crews_with_overtime": len(with_ot),
            "max_minutes": max(values, default=0),
            "mean_minutes_of_those": round(statistics.fmean(with_ot), 1) if with_ot else 0.0,
            "stdev_minutes": round(statistics.pstdev(values), 1) if len(values) > 1 else 0.0,
        },
    }


def blocking_reason(
    p: Problem, routes: dict[str, list[Visit]], tid: str, times: dict[str, RouteTimes] | None = None
) -> str:
    """The constraint that keeps a ticket out of a plan (skills/region/shift reasons come from the problem;
    otherwise it is capacity: which qualified crews could come and what holds them)."""
    if tid in p.unserviceable:
        return p.unserviceable[tid]
    ti = p.ticket_index[tid]
    t = p.tickets[ti]
    crews = p.qualified[ti]
    svc = p.settings.service_minutes(t)
    tp = p.ticket_point(ti)
    overtime = p.settings.may_use_overtime(t)
    fits = []
    only_in_overtime = False
    for c in crews:
        keys = routes.get(p.crews[c].id, [])
        rt = times[p.crews[c].id] if times and p.crews[c].id in times else p.simulate(c, keys)
        free = rt.finishes[-1] if rt.finishes else p.crew_ready(c)
        here = p.visit_point_service(keys[-1])[0] if keys else p.crew_point(c)
        arrive = max(free + int(p.minutes[here, tp]), max(0, t.earliest_start or 0))
        back = int(p.minutes[tp, p.end_point(c)]) if p.crews[c].end_at_home else 0
        if arrive + svc + back <= (p.hard_end[c] if overtime else p.shift_limit(c)):
            fits.append((arrive, p.crews[c].id))
        else:
            only_in_overtime = only_in_overtime or arrive + svc + back <= p.hard_end[c]
    names = ", ".join(p.crews[c].id for c in crews[:3]) + (f" and {len(crews) - 3} more" if len(crews) > 3 else "")
    need = "+".join(sorted(t.required_skills)) or "no special skill"
    if not fits and only_in_overtime:
        return (f"shift end: {p.not_in_overtime(t)}; every crew with {need} ({names}) is booked until too "
                "close to its shift end")
    if not fits:
        return (f"capacity: all {len(crews)} crew(s) with {need} ({names}) are booked with more urgent work "
                "until the end of their shift and overtime")
    arrive, cid = min(fits)
    return (f"cost: {cid} could still come at +{arrive} min after its route, but in this plan its time is "
            f"worth more elsewhere than this {t.priority} ticket (drop penalty {p.drop_penalty(t):,})")


def why_not(p: Problem, routes: dict[str, list[Visit]], tid: str, cid: str) -> str:
    """Why crew ``cid`` is not the one serving ticket ``tid`` (for "why is crew 7 not at the hospital?")."""
    ti = p.ticket_index.get(tid)
    c = p.crew_index.get(cid)
    if ti is None or c is None:
        return "unknown ticket or crew"
    t = p.tickets[ti]
    crew = p.crews[c]
    if ticket_key(tid) in routes.get(cid, []):
        return f"{cid} is serving {tid}"
    if not t.required_skills <= crew.skills:
        return f"{cid} lacks {'+'.join(sorted(t.required_skills - crew.skills))}"
    if c not in p.qualified[ti]:
        return f"{cid} works region {crew.region}, the ticket is in {t.region}"
    keys = routes.get(cid, [])
    fixed = [k for k in keys if k[0] == "T" and p.is_fixed(p.tickets[p.ticket_index[k[2:]]])]
    if fixed:
        busy = ", ".join(k[2:] for k in fixed)
        return f"{cid} is busy with started or pinned work ({busy}) first"
    if keys:
        first = keys[0]
        ft = p.tickets[p.ticket_index[first[2:]]] if first[0] == "T" else None
        what = f"{ft.id} ({ft.priority}, {ft.customers_affected} customers)" if ft else first
        return f"{cid} is planned for {what} first: serving that first costs less overall"
    return f"{cid} is idle but its cost to reach {tid} is higher than the crew planned"


def unassigned_reasons(p: Problem, routes: dict[str, list[Visit]], ids: Sequence[str]) -> dict[str, str]:
    sync = p.sync_starts(routes)
    times = {cid: p.simulate(p.crew_index[cid], keys, sync) for cid, keys in routes.items()}
    return {tid: blocking_reason(p, routes, tid, times) for tid in ids}
