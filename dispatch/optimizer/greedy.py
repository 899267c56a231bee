"""Dispatcher-by-hand baseline: most urgent ticket first, to the qualified crew that can be there soonest."""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence

import numpy as np

from dispatch.optimizer.core import GENERATOR_PICKUP_MINUTES, Problem, Visit, ticket_key
from dispatch.optimizer.model import PRIORITY_RANK, CrewIn, GeneratorIn, OptimizerSettings, Plan, TicketIn
from dispatch.optimizer.plan import build_plan
from geo.travel import TravelMatrixProvider

URGENT = frozenset({"EMERGENCY", "CRITICAL"})


def greedy_plan(
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn],
    settings: OptimizerSettings,
    matrix_provider: TravelMatrixProvider | None = None,
) -> Plan:
    """Baseline plan: tickets by priority then deadline, each to the qualified crew arriving first.

    Crew availability is simulated (each crew is free after its last job); fixed work stays first. Overtime
    is used only for EMERGENCY/CRITICAL tickets, and of those only for what the settings allow in overtime
    (other work ends in time to drive home, after a meal break still to take, by shift end). A ticket
    needing a generator gets the fitting free generator that a tow crew can hook up soonest. Output and
    metrics are identical in kind to ``solve``.
    """
    t0 = time.perf_counter()
    p = Problem.build(crews, tickets, generators, settings, matrix_provider)
    return build_plan(p, greedy_routes(p), time.perf_counter() - t0, {"method": "greedy"})


def greedy_routes(
    p: Problem, only: frozenset[str] | None = None, start: dict[str, list[Visit]] | None = None
) -> dict[str, list[Visit]]:
    """The dispatcher's greedy routes (optionally only for tickets whose priority is in ``only``).

    With ``start`` (routes already given out, e.g. a committed plan) those stay as they are and only the
    tickets not on any of them are appended, each to the crew that can be there first: how a dispatcher
    adds new work by hand without re-planning.
    """
    routes: dict[str, list[Visit]] = {
        c.id: [ticket_key(t) for t in p.fixed[i]] for i, c in enumerate(p.crews)
    }
    if start is not None:
        from dispatch.optimizer.core import sanitize_routes

        routes.update(sanitize_routes(p, start))
    taken = {k[2:] for keys in routes.values() for k in keys if k[0] == "T"}
    free_at: list[int] = []
    at: list[int] = []
    for i, c in enumerate(p.crews):
        rt = p.simulate(i, routes[c.id])
        free_at.append(rt.finishes[-1] if rt.finishes else p.crew_ready(i))
        at.append(p.visit_point_service(routes[c.id][-1])[0] if routes[c.id] else p.crew_point(i))
    order = sorted(
        (
            t
            for t in p.tickets
            if not p.is_fixed(t)
            and t.id not in p.unserviceable
            and t.id not in taken
            and (only is None or t.priority in only)
        ),
        key=lambda t: (PRIORITY_RANK[t.priority], t.respond_by if t.respond_by is not None else 10**9, t.id),
    )
    used_gens: set[str] = {k.split(":")[1] for keys in routes.values() for k in keys if k[0] == "P"}
    for t in order:
        tp = p.ticket_point(p.ticket_index[t.id])
        svc = p.settings.service_minutes(t)
        best: tuple[int, int] | None = None
        for c in p.qualified[p.ticket_index[t.id]]:
            crew = p.crews[c]
            arrive = free_at[c] + int(p.minutes[at[c], tp])
            back = int(p.minutes[tp, p.end_point(c)]) if crew.end_at_home else 0
            limit = p.hard_end[c] if _overtime(p, t) else p.shift_limit(c)
            if arrive + svc + back > limit:
                continue
            if best is None or arrive < best[0]:
                best = (arrive, c)
        if best is None:
            continue
        arrive, c = best
        routes[p.crews[c].id].append(ticket_key(t.id))
        free_at[c] = arrive + svc
        at[c] = tp
        if t.needs_generator:
            _greedy_generator(p, routes, free_at, at, t.id, used_gens)
    return _linked_jobs(p, routes, order)


def _overtime(p: Problem, t: TicketIn) -> bool:
    """Does the dispatcher send a crew into overtime for ``t``? Only for urgent work the rules allow it for."""
    return t.priority in URGENT and p.settings.may_use_overtime(t)


def _linked_jobs(p: Problem, routes: dict[str, list[Visit]], order: Sequence[TicketIn]) -> dict[str, list[Visit]]:
    """What a dispatcher does by hand for jobs tied to others: a multi-crew job gets all its crews together (or
    none), a job waiting for another is planned only with it (its crew waits; see ``Problem.sync_starts``)."""
    if not p.multi and not p.after:
        return routes
    from dispatch.optimizer.core import strip_incomplete
    from dispatch.optimizer.insertion import insert_visit

    strip_incomplete(p, routes)
    present = {k[2:] for keys in routes.values() for k in keys if k[0] == "T"}
    for t in order:
        if t.id not in present and (t.id in p.multi or t.id in p.after):
            insert_visit(p, routes, t.id)
    return routes


def _greedy_generator(
    p: Problem, routes: dict[str, list[Visit]], free_at: list[int], at: list[int], tid: str, used: set[str]
) -> None:
    tp = p.ticket_point(p.ticket_index[tid])
    best: tuple[int, int, str] | None = None
    for gid in p.gen_options.get(tid, []):
        if gid in used:
            continue
        gp = p.gen_point(p.gen_index[gid])
        for c in p.tow_crews:
            crew = p.crews[c]
            hook = free_at[c] + int(p.minutes[at[c], gp]) + GENERATOR_PICKUP_MINUTES + int(p.minutes[gp, tp])
            done = hook + p.settings.generator_hookup_minutes
            back = int(p.minutes[tp, p.end_point(c)]) if crew.end_at_home else 0
            if done + back > (p.hard_end[c] if p.may_overrun(f"D:{gid}:{tid}") else p.shift_limit(c)):
                continue
            if best is None or hook < best[0]:
                best = (hook, c, gid)
    if best is None:
        return
    hook, c, gid = best
    routes[p.crews[c].id] += [f"P:{gid}:{tid}", f"D:{gid}:{tid}"]
    used.add(gid)
    free_at[c] = hook + p.settings.generator_hookup_minutes
    at[c] = tp


def urgency_routes(p: Problem, lookahead: float = 60.0) -> dict[str, list[Visit]]:
    """Event-driven dispatch rule used as a starting solution for the local search.

    Whenever a crew becomes free it takes the qualified open ticket with the highest cost rate per minute
    of its time (travel + service), the rate being customer-minute weight + lateness weight, the latter
    phased in as the deadline approaches (apparent-tardiness-cost rule, ``lookahead`` minutes). Ticket
    deadlines, customers and priorities drive it exactly as they drive the objective. Generators are added
    afterwards by cheapest insertion. EMERGENCY tickets are placed first, each on the crew that can be there
    soonest, since a crew-centric rule would send whichever crew frees up first.
    """
    from dispatch.optimizer.insertion import insert_generator

    routes = greedy_routes(p, only=frozenset({"EMERGENCY"}))  # emergencies: nearest crew first, as by hand
    taken = {k[2:] for keys in routes.values() for k in keys if k[0] == "T"}
    open_idx = [
        i
        for i, t in enumerate(p.tickets)
        if not p.is_fixed(t) and t.id not in p.unserviceable and t.id not in taken
    ]
    if not open_idx or not p.crews:
        return routes
    T = len(open_idx)
    tick = [p.tickets[i] for i in open_idx]
    tpt = np.array([p.ticket_point(i) for i in open_idx])
    svc = np.array([p.settings.service_minutes(t) for t in tick], dtype=float)
    cm = np.array([p.cm_coef(t) for t in tick], dtype=float)
    late = np.array([p.late_coef(t) if t.respond_by is not None else 0 for t in tick], dtype=float)
    due = np.array([t.respond_by if t.respond_by is not None else 1e9 for t in tick], dtype=float)
    base = np.array([p.settings.drop_penalty.get(t.priority, 1e3) / max(1, p.horizon) for t in tick])
    urgent = np.array([_overtime(p, t) for t in tick])
    qual = np.zeros((T, len(p.crews)), dtype=bool)
    for j, i in enumerate(open_idx):
        qual[j, p.qualified[i]] = True
    served = np.zeros(T, dtype=bool)
    heap: list[tuple[int, int, int]] = []
    for c, crew in enumerate(p.crews):
        keys = routes[crew.id]
        rt = p.simulate(c, keys)
        at = p.visit_point_service(keys[-1])[0] if keys else p.crew_point(c)
        heapq.heappush(heap, (rt.finishes[-1] if rt.finishes else p.crew_ready(c), c, at))
    while heap:
        now, c, at = heapq.heappop(heap)
        crew = p.crews[c]
        travel = p.minutes[at, tpt].astype(float)
        arr = now + travel
        back = p.minutes[tpt, p.end_point(c)].astype(float) if crew.end_at_home else np.zeros(T)
        limit = np.where(urgent, p.hard_end[c], p.shift_limit(c))
        ok = qual[:, c] & ~served & (arr + svc + back <= limit)
        if not ok.any():
            continue
        slack = due - arr
        phase = np.where(slack <= 0, 1.0, np.exp(-np.maximum(slack, 0) / lookahead))
        score = (cm + late * phase + base) / (travel + svc + 1.0)
        score[~ok] = -1.0
        j = int(np.argmax(score))
        served[j] = True
        routes[crew.id].append(ticket_key(tick[j].id))
        heapq.heappush(heap, (int(arr[j] + svc[j]), c, int(tpt[j])))
    for t in tick:
        if t.needs_generator:
            insert_generator(p, routes, t.id)
    return routes
