"""Cheapest feasible insertion into committed routes: the millisecond path for new urgent tickets."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

from dispatch.optimizer.core import (
    Problem,
    Visit,
    assist_keys,
    complete_pairs,
    sanitize_routes,
    strip_incomplete,
    ticket_key,
)
from dispatch.optimizer.model import CrewIn, GeneratorIn, OptimizerSettings, Plan, TicketIn
from dispatch.optimizer.plan import build_plan, routes_from_plan
from geo.travel import TravelMatrixProvider

CANDIDATE_CREWS = 16  # routes tried per insertion: the qualified crews whose route passes closest


def candidate_crews(
    p: Problem, routes: dict[str, list[Visit]], keys: Sequence[Visit], crews: Sequence[int]
) -> list[int]:
    """The ``CANDIDATE_CREWS`` crews of ``crews`` whose start or planned stops are nearest the first visit,
    plus the crews that could be there soonest if they dropped their not-yet-started work."""
    if len(crews) <= CANDIDATE_CREWS:
        return list(crews)
    row = p.row(p.vinfo(keys[0])[0])
    near = []
    soon = []
    for c in crews:
        d = row[p.crew_point(c)]
        for k in routes.get(p.crews[c].id, ()):
            d = min(d, row[p.vinfo(k)[0]])
        near.append((d, c))
        free, here = p.free_after_fixed[c]
        soon.append((free + p.row(here)[p.vinfo(keys[0])[0]], c))
    near.sort()
    soon.sort()
    picked = [c for _, c in near[:CANDIDATE_CREWS]]
    return picked + [c for _, c in soon[: CANDIDATE_CREWS // 2] if c not in picked]


def _towing(route: Sequence[Visit]) -> list[bool]:
    """For each insertion position 0..len(route): is the crew towing a generator there?"""
    out = [False]
    on = False
    for k in route:
        if k[0] == "P":
            on = True
        elif k[0] == "D":
            on = False
        out.append(on)
    return out


def _bump_to_fit(p: Problem, c: int, cand: list[Visit], keep: set[Visit]) -> tuple[list[Visit], int] | None:
    """Drop not-yet-started visits from the end of ``cand`` until the route fits the shift; returns the route
    and the penalty of what was dropped (None if even that does not help)."""
    fixed = len(p.fixed[c])
    route = list(cand)
    while p.eval_route(c, route)[1] > p.hard_end[c]:
        idx = next((i for i in range(len(route) - 1, fixed - 1, -1) if route[i] not in keep), None)
        if idx is None:
            return None
        route.pop(idx)
        route = complete_pairs(route)
    dropped = {k[2:] for k in cand if k[0] == "T"} - {k[2:] for k in route if k[0] == "T"}
    unhooked = {k.split(":", 2)[2] for k in cand if k[0] == "D"} - {
        k.split(":", 2)[2] for k in route if k[0] == "D"
    }
    penalty = sum(p.drop_penalty(p.tickets[p.ticket_index[t]]) for t in dropped)
    return route, penalty + round(p.settings.generator_value) * len(unhooked)


def best_insertion(
    p: Problem,
    routes: dict[str, list[Visit]],
    keys: Sequence[Visit],
    crews: Sequence[int],
    bump: bool = False,
) -> tuple[int, str, int, list[Visit] | None] | None:
    """Cheapest (cost delta, crew id, position, bumped route) to insert the consecutive ``keys``.

    Positions start after the crew's fixed (in-progress/pinned) prefix, so started work never moves; a
    not-yet-started job may be pre-empted (the new visit goes before it). A route that would overrun the
    shift is skipped, or with ``bump`` loses its last not-yet-started visits (their drop penalties count in
    the delta; the route is returned). Only the routes passing nearest are tried (see
    :func:`candidate_crews`).
    """
    best: tuple[int, str, int, list[Visit] | None] | None = None
    keys = list(keys)
    pair = any(k[0] == "P" for k in keys)
    for c in candidate_crews(p, routes, keys, crews):
        cid = p.crews[c].id
        route = routes.get(cid, [])
        base = p.eval_route(c, route)[0]
        limit = p.hard_end[c]
        towing = _towing(route) if pair else None
        for pos in range(len(p.fixed[c]), len(route) + 1):
            if towing is not None and towing[pos]:
                continue  # one generator at a time: no pick-up while another is on the hook
            cand = route[:pos] + keys + route[pos:]
            cost, end = p.eval_route(c, cand)
            bumped: list[Visit] | None = None
            if end > limit:
                fit = _bump_to_fit(p, c, cand, set(keys)) if bump else None
                if fit is None:
                    continue
                bumped = fit[0]
                cost = p.eval_route(c, bumped)[0] + fit[1]
            delta = cost - base
            if best is None or delta < best[0]:
                best = (delta, cid, pos, bumped)
    return best


def insert_visit(p: Problem, routes: dict[str, list[Visit]], tid: str, force: bool = False) -> bool:
    """Insert ticket ``tid`` (and a generator for it when one is free) where it costs least.

    Without ``force`` the ticket is only inserted if that costs less than dropping it; with ``force`` (a new
    urgent ticket) it may bump not-yet-started work off the end of a full route (back to unassigned, for
    the background re-optimisation to place).
    """
    ti = p.ticket_index[tid]
    t = p.tickets[ti]
    if tid in p.unserviceable:
        return False
    if tid in p.after and not any(ticket_key(p.after[tid][0]) in keys for keys in routes.values()):
        return False  # its predecessor is not planned (yet)
    if tid in p.multi:
        return insert_multi_crew(p, routes, tid, force)
    if tid in p.after or tid in p.needed_by:
        return _insert_linked(p, routes, tid, force)
    ins = best_insertion(p, routes, [ticket_key(tid)], p.qualified[ti], bump=force)
    if ins is None or (not force and ins[0] >= p.drop_penalty(t)):
        return False
    delta, cid, pos, bumped = ins
    if bumped is not None:
        routes[cid] = bumped
    else:
        routes.setdefault(cid, []).insert(pos, ticket_key(tid))
    if t.needs_generator:
        insert_generator(p, routes, tid)
    return True


def _insert_linked(p: Problem, routes: dict[str, list[Visit]], tid: str, force: bool) -> bool:
    """Insert a job linked to others by precedence: the cheapest position by the joint timing (a job waits for
    its predecessor, whose delay moves what depends on it), if every shift still fits."""
    ti = p.ticket_index[tid]
    key = ticket_key(tid)
    before = p.objective(routes)
    best: tuple[int, str, list[Visit]] | None = None
    for c in candidate_crews(p, routes, [key], p.qualified[ti]):
        cid = p.crews[c].id
        route = routes.get(cid, [])
        for pos in range(len(p.fixed[c]), len(route) + 1):
            cand = {**routes, cid: route[:pos] + [key] + route[pos:]}
            sync = p.sync_starts(cand)
            if any(p.eval_route(p.crew_index[x], r, sync)[1] > p.hard_end[p.crew_index[x]] for x, r in cand.items()):
                continue
            cost = p.objective(cand)
            if best is None or cost < best[0]:
                best = (cost, cid, cand[cid])
    if best is None or (not force and best[0] >= before):
        return False
    routes[best[1]] = best[2]
    if p.tickets[ti].needs_generator:
        insert_generator(p, routes, tid)
    return True


MULTI_CANDIDATES = 2  # crews tried beyond the needed number when choosing who goes to a multi-crew job


def insert_multi_crew(p: Problem, routes: dict[str, list[Visit]], tid: str, force: bool = False) -> bool:
    """Insert a job needing ``n`` crews at once: each of the ``n + MULTI_CANDIDATES`` crews with the cheapest
    single insertion is a candidate; every combination of ``n`` of them is timed together (the first there waits
    for the others, :meth:`Problem.sync_starts`) and the cheapest that fits every shift wins, if it costs less
    than leaving the job (or always with ``force``). All crews or none: nothing changes when none fits."""
    ti = p.ticket_index[tid]
    n = p.multi[tid]
    keys = [ticket_key(tid), *assist_keys(tid, n)]
    single: list[tuple[int, int, int]] = []  # (delta, crew, position)
    for c in candidate_crews(p, routes, keys[:1], p.qualified[ti]):
        route = routes.get(p.crews[c].id, [])
        base = p.eval_route(c, route)[0]
        best: tuple[int, int, int] | None = None
        for pos in range(len(p.fixed[c]), len(route) + 1):
            cost, end = p.eval_route(c, route[:pos] + keys[:1] + route[pos:])
            if end <= p.hard_end[c] and (best is None or cost - base < best[0]):
                best = (cost - base, c, pos)
        if best is not None:
            single.append(best)
    single.sort()
    if len(single) < n:
        return False
    before = p.objective(routes)
    chosen: tuple[int, dict[str, list[Visit]]] | None = None
    for combo in itertools.combinations(single[: n + MULTI_CANDIDATES], n):
        cand = dict(routes)
        for key, (_, c, pos) in zip(keys, combo, strict=True):
            cid = p.crews[c].id
            route = list(cand.get(cid, []))
            cand[cid] = route[:pos] + [key] + route[pos:]
        sync = p.sync_starts(cand)
        if any(p.eval_route(p.crew_index[cid], r, sync)[1] > p.hard_end[p.crew_index[cid]] for cid, r in cand.items()):
            continue
        cost = p.objective(cand)
        if chosen is None or cost < chosen[0]:
            chosen = (cost, cand)
    if chosen is None or (not force and chosen[0] >= before):
        return False
    routes.update(chosen[1])
    return True


def insert_generator(p: Problem, routes: dict[str, list[Visit]], tid: str) -> bool:
    """Give ticket ``tid`` the cheapest free fitting generator: pick-up then hook-up on one tow crew."""
    busy = {k.split(":")[1] for keys in routes.values() for k in keys if k[0] == "P"}
    best: tuple[int, str, int, str] | None = None
    for gid in p.gen_options.get(tid, []):
        if gid in busy:
            continue
        ins = best_insertion(p, routes, [f"P:{gid}:{tid}", f"D:{gid}:{tid}"], p.tow_crews)
        if ins is not None and (best is None or ins[0] < best[0]):
            best = (ins[0], ins[1], ins[2], gid)
    if best is None or best[0] >= round(p.settings.generator_value):
        return False
    _, cid, pos, gid = best
    routes.setdefault(cid, [])[pos:pos] = [f"P:{gid}:{tid}", f"D:{gid}:{tid}"]
    return True


def repair(p: Problem, routes: dict[str, list[Visit]], deadline: float | None = None) -> int:
    """Insert every serviceable ticket that is missing from ``routes`` (most urgent first); returns count.
    A multi-crew job without all its crews is taken off first (and inserted again with all of them, if it fits).

    With ``deadline`` (a ``time.perf_counter()`` value) it stops trying when that time comes: on a board of
    thousands of tickets far beyond the crews' capacity, trying each against every nearby route would take
    longer than the solve it completes. The most urgent are tried first; the rest stay unassigned."""
    strip_incomplete(p, routes)
    present = {k[2:] for keys in routes.values() for k in keys if k[0] == "T"}
    missing = [t for t in p.tickets if t.id not in present and t.id not in p.unserviceable]
    missing.sort(key=lambda t: (-p.drop_penalty(t), t.respond_by if t.respond_by is not None else 10**9))
    n = 0
    for t in missing:
        if deadline is not None and time.perf_counter() > deadline:
            return n
        n += insert_visit(p, routes, t.id)
    if p.after:  # a job tried before its predecessor was planned gets a second chance
        present = {k[2:] for keys in routes.values() for k in keys if k[0] == "T"}
        for t in missing:
            if deadline is not None and time.perf_counter() > deadline:
                return n
            if t.id in p.after and t.id not in present:
                n += insert_visit(p, routes, t.id)
    return n


def construct(p: Problem) -> dict[str, list[Visit]]:
    """Cost-aware cheapest insertion from the fixed prefixes (a starting solution for the local search)."""
    routes: dict[str, list[Visit]] = {
        c.id: [ticket_key(t) for t in p.fixed[i]] for i, c in enumerate(p.crews)
    }
    repair(p, routes)
    return routes


def insert_ticket(
    plan: Plan,
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn],
    new_ticket: TicketIn,
    settings: OptimizerSettings,
    matrix_provider: TravelMatrixProvider | None = None,
) -> Plan:
    """Add ``new_ticket`` to a committed plan by cheapest feasible insertion (no re-optimisation).

    Committed routes keep their order; in-progress and pinned work stays first on its crew. The new ticket
    goes to a qualified crew at the position that raises the objective least (it may go ahead of a job not
    yet started); if no crew can take it, it comes back unassigned with a reason.
    """
    t0 = time.perf_counter()
    all_tickets = [t for t in tickets if t.id != new_ticket.id] + [new_ticket]
    p = Problem.build(crews, all_tickets, generators, settings, matrix_provider)
    routes = sanitize_routes(p, routes_from_plan(plan))
    inserted = insert_visit(p, routes, new_ticket.id, force=True)
    stats = {"method": "insertion", "inserted": inserted}
    return build_plan(p, routes, time.perf_counter() - t0, stats)
