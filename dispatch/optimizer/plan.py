"""Plans from routes: times, human reasons, metrics, and re-evaluation of any plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dispatch.optimizer.core import Problem, RouteTimes, Visit, ticket_key, visit_ticket
from dispatch.optimizer.explain import blocking_reason, kpis, score_breakdown
from dispatch.optimizer.model import (
    PRIORITIES,
    AssignmentOut,
    CrewIn,
    GeneratorIn,
    OptimizerSettings,
    Plan,
    TicketIn,
    UnassignedOut,
)
from geo.travel import TravelMatrixProvider

DROPPED_REASON = "not reached in this plan: qualified crews are booked with more urgent work (capacity/time)"
EXPLAIN_LIMIT = 400  # unassigned tickets beyond this many get the generic capacity reason (plan-building time)


def build_plan(
    problem: Problem,
    routes: dict[str, list[Visit]],
    solve_seconds: float,
    stats: dict[str, Any] | None = None,
    dropped_reasons: dict[str, str] | None = None,
) -> Plan:
    """Turn visit sequences into a :class:`Plan` with times, reasons and metrics."""
    p = problem
    assignments: list[AssignmentOut] = []
    gen_of: dict[str, tuple[str, str, int]] = {}  # ticket -> (generator, towing crew, hook-up finish)
    moves: list[dict[str, Any]] = []
    all_times: dict[str, RouteTimes] = {}
    sync = p.sync_starts(routes)
    together: dict[str, list[str]] = {}  # multi-crew ticket -> its crews, the first one leads
    for cid, keys in routes.items():
        c = p.crew_index[cid]
        rt = p.simulate(c, keys, sync)
        all_times[cid] = rt
        for k, f in zip(keys, rt.finishes, strict=True):
            tid = visit_ticket(k)
            if tid in p.multi:
                crews_there = together.setdefault(tid, [])
                crews_there.insert(0 if k[0] == "T" else len(crews_there), cid)
            if k.startswith("D:"):
                _, gid, tid = k.split(":", 2)
                gen_of[tid] = (gid, cid, f)
                moves.append({"generator_id": gid, "ticket_id": tid, "crew_id": cid, "hooked_up_at": f})
    for cid, keys in routes.items():
        c = p.crew_index[cid]
        rt = all_times[cid]
        seq = 0
        prev_point = p.crew_point(c)
        pending_break = rt.break_at
        for k, a, f in zip(keys, rt.arrivals, rt.finishes, strict=True):
            point, _ = p.visit_point_service(k)
            if not k.startswith("T:"):
                prev_point = point
                continue
            tid = k[2:]
            t = p.tickets[p.ticket_index[tid]]
            late = max(0, a - t.respond_by) if t.respond_by is not None else 0
            reason = _reason(p, c, t, prev_point, a, late, gen_of.get(tid))
            if tid in p.after:
                dep, gap = p.after[tid]
                reason += f"; after ticket {dep} is done" + (f" (+{gap} min)" if gap else "")
            if tid in together:
                reason += (f"; {len(together[tid])} crews needed, arriving together: "
                           f"{', '.join(together[tid][1:])} with this crew at +{a} min")
            if pending_break is not None and pending_break < a:
                reason += f"; after the meal break at +{pending_break} min"
                pending_break = None
            assignments.append(
                AssignmentOut(
                    ticket_id=tid,
                    crew_id=cid,
                    sequence=seq,
                    planned_arrival=a,
                    planned_finish=f,
                    generator_id=gen_of[tid][0] if tid in gen_of else None,
                    pinned=p.is_fixed(t),
                    late_minutes=late,
                    reason=reason,
                )
            )
            seq += 1
            prev_point = point
    assigned = {a.ticket_id for a in assignments}
    unassigned = []
    for t in p.tickets:
        if t.id in assigned:
            continue
        reason = p.unserviceable.get(t.id) or (dropped_reasons or {}).get(t.id)
        if not reason:
            reason = blocking_reason(p, routes, t.id, all_times) if len(unassigned) < EXPLAIN_LIMIT else None
        unassigned.append(UnassignedOut(t.id, reason or DROPPED_REASON))
    m = _metrics(p, assignments, gen_of)
    st: dict[str, Any] = dict(stats or {})
    st.update(
        routes={cid: list(keys) for cid, keys in routes.items() if keys},
        generator_moves=moves,
        generators=[(g.id, g.lat, g.lng, g.capacity_kw) for g in p.generators],
        late_by_priority=m["late_by_priority"],
        unassigned_by_priority=m["unassigned_by_priority"],
        overtime_minutes=sum(
            max(0, rt.end - p.crews[p.crew_index[cid]].shift_end)
            for cid, rt in all_times.items()
            if routes[cid]
        ),
        horizon=p.horizon,
        multi_crew={tid: {"crews": crews_there, "start": all_times[crews_there[0]].arrivals[
            routes[crews_there[0]].index(ticket_key(tid))]} for tid, crews_there in together.items()},
        breaks={cid: rt.break_at for cid, rt in all_times.items() if rt.break_at is not None and routes[cid]},
        score=score_breakdown(p, routes),
        kpis=kpis(p, routes, all_times),
    )
    return Plan(
        assignments=assignments,
        unassigned=unassigned,
        solve_seconds=round(solve_seconds, 3),
        late_tickets=m["late_tickets"],
        total_travel_minutes=float(sum(rt.travel for cid, rt in all_times.items() if routes[cid])),
        objective=float(p.objective(routes)),
        customer_minutes=m["customer_minutes"],
        stats=st,
    )


def _reason(
    p: Problem,
    c: int,
    t: TicketIn,
    prev_point: int,
    arrival: int,
    late: int,
    gen: tuple[str, str, int] | None,
) -> str:
    crew = p.crews[c]
    tp = p.ticket_point(p.ticket_index[t.id])
    parts: list[str] = []
    if t.in_progress:
        parts.append(f"in progress ({t.status.lower().replace('_', ' ')}), kept with {crew.id}")
    elif p.is_fixed(t):
        parts.append(f"pinned to {crew.id} by dispatcher")
    else:
        if t.required_skills:
            parts.append("holds " + "+".join(sorted(t.required_skills)))
        nearest = min(p.qualified[p.ticket_index[t.id]], key=lambda i: p.minutes[p.crew_point(i), tp])
        if p.minutes[p.crew_point(nearest), tp] >= p.minutes[p.crew_point(c), tp]:
            parts.append("nearest qualified crew")
        elif p.qualified[p.ticket_index[t.id]]:
            busy = p.crews[nearest]
            parts.append(f"nearest qualified crew {busy.id} is planned for other work")
    own = p.owner.get(ticket_key(t.id))
    if own is not None and own != c:
        parts.append(f"moved from {p.crews[own].id} (stability cost {round(p.settings.reassign_cost)})")
    if crew.home_region is not None and (t.region or crew.region) != crew.home_region:
        parts.append(f"lent from region {crew.home_region} (lending cost {round(p.settings.lending_cost)})")
    parts.append(f"{p.km[prev_point, tp]:.1f} km, {int(p.minutes[prev_point, tp])} min away")
    if t.earliest_start is not None and t.earliest_start > 0:
        parts.append(f"window from +{t.earliest_start} min")
    if t.respond_by is None:
        parts.append(f"on site at +{arrival} min")
    elif late > 0:
        parts.append(f"{late} min late")
    else:
        parts.append(f"on site {t.respond_by - arrival} min before deadline")
    if t.needs_generator:
        if gen:
            g = p.generators[p.gen_index[gen[0]]]
            parts.append(f"generator {g.id} ({g.capacity_kw:.0f} kW) hooked up by {gen[1]} at +{gen[2]} min")
        elif not p.gen_options.get(t.id):
            parts.append("no generator: none available with enough capacity")
        elif not p.tow_crews:
            parts.append("no generator: no crew can tow")
        else:
            parts.append("no generator: all suitable generators committed elsewhere")
    return "; ".join(parts)


def _metrics(
    p: Problem, assignments: Sequence[AssignmentOut], gen_of: dict[str, tuple[str, str, int]]
) -> dict[str, Any]:
    by_id = {a.ticket_id: a for a in assignments}
    late_by = {pr: 0 for pr in PRIORITIES}
    unassigned_by = {pr: 0 for pr in PRIORITIES}
    cm = 0.0
    for t in p.tickets:
        a = by_id.get(t.id)
        if a is None:
            unassigned_by[t.priority] += 1
        elif a.late_minutes > 0:
            late_by[t.priority] += 1
        if t.loss_of_supply:
            restored = a.planned_arrival if a else p.horizon
            if t.id in gen_of:
                restored = min(restored, gen_of[t.id][2])
            cm += t.customers_affected * restored
    return {
        "late_by_priority": late_by,
        "late_tickets": sum(late_by.values()),
        "unassigned_by_priority": unassigned_by,
        "customer_minutes": float(cm),
    }


def routes_from_plan(plan: Plan) -> dict[str, list[Visit]]:
    """Visit sequences of a plan (from ``stats['routes']`` or, failing that, from its assignments)."""
    r = plan.stats.get("routes") if plan.stats else None
    if r:
        return {cid: list(keys) for cid, keys in r.items()}
    out: dict[str, list[Visit]] = {}
    for a in sorted(plan.assignments, key=lambda a: (a.crew_id, a.sequence)):
        out.setdefault(a.crew_id, []).append(ticket_key(a.ticket_id))
    return out


def evaluate(
    plan: Plan,
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    settings: OptimizerSettings,
    matrix: TravelMatrixProvider | None = None,
    generators: Sequence[GeneratorIn] | None = None,
) -> dict[str, Any]:
    """Recompute a plan's metrics from its routes with ``matrix`` (default: geodesic from ``settings``).

    Returns late tickets (total and by priority), unassigned by priority, customer-minutes without supply
    (Σ customers × arrival — or generator hook-up if earlier — for loss-of-supply tickets, horizon if
    unserved), travel minutes, overtime minutes and the objective.
    """
    gens = (
        list(generators)
        if generators is not None
        else [GeneratorIn(g[0], g[1], g[2], g[3]) for g in plan.stats.get("generators", [])]
    )
    p = Problem.build(crews, tickets, gens, settings, matrix)
    routes = routes_from_plan(plan)
    fresh = build_plan(p, routes, plan.solve_seconds)
    return {
        "late_tickets": fresh.late_tickets,
        "late_by_priority": fresh.stats["late_by_priority"],
        "unassigned": len(fresh.unassigned),
        "unassigned_by_priority": fresh.stats["unassigned_by_priority"],
        "customer_minutes": fresh.customer_minutes,
        "travel_minutes": fresh.total_travel_minutes,
        "overtime_minutes": fresh.stats["overtime_minutes"],
        "objective": fresh.objective,
        "assigned": len(fresh.assignments),
    }
