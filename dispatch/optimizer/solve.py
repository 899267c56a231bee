"""Top-level ``solve``: one OR-Tools model for normal days, geographic decomposition for very large ones."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from dispatch.optimizer.core import Problem, Visit, sanitize_routes
from dispatch.optimizer.greedy import greedy_routes
from dispatch.optimizer.insertion import repair
from dispatch.optimizer.model import CrewIn, GeneratorIn, OptimizerSettings, Plan, TicketIn
from dispatch.optimizer.plan import build_plan, routes_from_plan
from dispatch.optimizer.routing import PORTFOLIO, constructed_starts, portfolio_solve, solve_model
from geo.travel import TravelMatrixProvider

FINISH_MARGIN_S = 0.25  # reserved for extracting routes and building the plan
REPAIR_MIN_S, REPAIR_SHARE = 0.5, 0.1  # the least time a repair gets past the limit: 0.5 s or a tenth of it


def solve(
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn] = (),
    settings: OptimizerSettings | None = None,
    *,
    matrix_provider: TravelMatrixProvider | None = None,
    initial_plan: Plan | None = None,
    time_limit_s: float | None = None,
) -> Plan:
    """Optimise the dispatch plan (OR-Tools routing; see ``OptimizerSettings`` for the objective).

    In-progress and pinned tickets stay first on their crew's route in their order (hard rule). With
    ``initial_plan`` the search starts from that plan (warm start) and the result is never worse than it
    (as re-read against the current data). Up to ``settings.max_tickets_per_model`` open tickets: one
    OR-Tools model searched by ``settings.workers`` processes from different starting solutions. Larger:
    geographic clusters of tickets and crews solved in parallel, merged, repaired by cheapest insertion
    and, up to ``max_polish_tickets``, polished by one full-model search for the rest of the time.
    ``time_limit_s`` (default ``settings.time_limit_s``) bounds the whole call including the matrix; a repair
    that the search left no time for still gets ``REPAIR_MIN_S`` or ``REPAIR_SHARE`` of the limit.
    ``stats`` reports the strategies run, their objectives, clusters, warm-start use and repairs.
    """
    t0 = time.perf_counter()
    s = settings or OptimizerSettings()
    limit = float(time_limit_s if time_limit_s is not None else s.time_limit_s)
    p = Problem.build(crews, tickets, generators, s, matrix_provider)
    stats: dict[str, Any] = {"method": "or-tools", "matrix_seconds": round(time.perf_counter() - t0, 3)}
    initial = routes_from_plan(initial_plan) if initial_plan is not None else None
    open_tickets = [t for t in p.tickets if not p.is_fixed(t) and t.id not in p.unserviceable]
    if not p.crews or not p.tickets or (not open_tickets and not any(p.fixed)):
        return build_plan(p, {c.id: [] for c in p.crews}, time.perf_counter() - t0, stats)
    budget = max(0.1, limit - (time.perf_counter() - t0) - FINISH_MARGIN_S)

    def deadline() -> float:
        """When a repair stops: at the limit, but each gets a moment even when the search used it all (on a
        small board a repair takes milliseconds; on a storm's, trying thousands of tickets took minutes)."""
        return max(t0 + limit - FINISH_MARGIN_S, time.perf_counter() + max(REPAIR_MIN_S, REPAIR_SHARE * limit))

    if len(open_tickets) <= s.max_tickets_per_model:
        routes, info = portfolio_solve(p, budget, max(1, s.workers), initial)
        stats.update(info)
    else:
        polish = len(open_tickets) <= s.max_polish_tickets
        t1 = time.perf_counter()
        routes, info = decomposed_solve(
            p, budget * (s.decomposed_share if polish else 1.0), max(1, s.workers), initial
        )
        stats.update(info)
        left = budget - (time.perf_counter() - t1)
        if polish and routes is not None and left > 0.5:
            # cross-cluster moves: one full-model search from the merged plan for the time left
            repair(p, routes, deadline())
            polished, pinfo = portfolio_solve(p, left, 1, routes, construct=False)
            stats["polish"] = pinfo
            if polished is not None and p.objective(polished) <= p.objective(routes):
                routes = polished
    if routes is None:  # no solution within the limit: fall back to the dispatcher's greedy plan
        routes = greedy_routes(p)
        stats["fallback"] = "greedy"
    stats["repaired"] = repair(p, routes, deadline())
    if initial is not None:
        start = sanitize_routes(p, initial)
        repair(p, start, deadline())
        if p.objective(start) < p.objective(routes):
            routes, stats["kept_initial"] = start, True
    return build_plan(p, routes, time.perf_counter() - t0, stats)


def subproblem(
    p: Problem, crew_ids: Sequence[int], ticket_ids: Sequence[int], gen_ids: Sequence[int]
) -> Problem:
    """The part of ``p`` with the given crews, tickets and generators (travel matrix sliced, not
    recomputed)."""
    C, T = len(p.crews), len(p.tickets)
    pts = (
        list(crew_ids)
        + [C + c for c in crew_ids]
        + [2 * C + t for t in ticket_ids]
        + [2 * C + T + g for g in gen_ids]
    )
    ix = np.ix_(pts, pts)
    s = dataclasses.replace(p.settings, horizon_minutes=p.horizon)
    return Problem(
        [p.crews[c] for c in crew_ids],
        [p.tickets[t] for t in ticket_ids],
        [p.generators[g] for g in gen_ids],
        s,
        p.minutes[ix],
        p.km[ix],
    )


def _kmeans(xy: np.ndarray, k: int, iters: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cent = xy[rng.choice(len(xy), size=k, replace=False)]
    for _ in range(iters):
        lab = np.argmin(((xy[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2), axis=1)
        for j in range(k):
            if np.any(lab == j):
                cent[j] = xy[lab == j].mean(axis=0)
    lab = np.argmin(((xy[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2), axis=1)
    return lab, cent


def clusters(p: Problem) -> list[tuple[list[int], list[int], list[int]]]:
    """Split into geographic clusters: k-means on open tickets (planar lat/lng scaled by cos(lat)), sizes
    balanced to within 10 % by a capacitated nearest-centroid assignment,
    crews shared out in proportion to each cluster's work (service + 20 min travel per ticket), nearest
    first; fixed tickets follow their crew, EMERGENCY/CRITICAL ones the crew the greedy dispatcher would
    send; each generator goes to the nearest cluster."""
    s = p.settings
    open_idx = [i for i, t in enumerate(p.tickets) if not p.is_fixed(t)]
    k = max(1, math.ceil(len(open_idx) / s.max_tickets_per_model))
    k = min(k, max(1, len(p.crews)))
    lat0 = float(np.mean([t.lat for t in p.tickets]))
    scale = np.array([1.0, math.cos(math.radians(lat0))])
    xy = np.array([[p.tickets[i].lat, p.tickets[i].lng] for i in open_idx]) * scale
    lab, cent = _kmeans(xy, k)
    # balance: k-means clusters can be very uneven; re-assign tickets nearest-first under a size cap
    cap = math.ceil(len(open_idx) / k * 1.1)
    d2 = ((xy[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2)
    lab = np.full(len(open_idx), -1)
    size = np.zeros(k, dtype=int)
    for flat in np.argsort(d2, axis=None):
        j, cl = divmod(int(flat), k)
        if lab[j] < 0 and size[cl] < cap:
            lab[j] = cl
            size[cl] += 1
    work = np.zeros(k)
    for j, i in enumerate(open_idx):
        work[lab[j]] += s.service_minutes(p.tickets[i]) + 20.0
    quota = np.maximum(1, np.floor(work / work.sum() * len(p.crews))).astype(int)
    while quota.sum() < len(p.crews):
        quota[np.argmax(work / quota)] += 1
    cxy = np.array([[c.lat, c.lng] for c in p.crews]) * scale
    dist = ((cxy[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2)
    crew_cl = np.full(len(p.crews), -1)
    for flat in np.argsort(dist, axis=None):
        c, j = divmod(int(flat), k)
        if crew_cl[c] < 0 and quota[j] > 0:
            crew_cl[c] = j
            quota[j] -= 1
    crew_cl[crew_cl < 0] = np.argmin(dist[crew_cl < 0], axis=1)
    out: list[tuple[list[int], list[int], list[int]]] = [([], [], []) for _ in range(k)]
    for c in range(len(p.crews)):
        out[crew_cl[c]][0].append(c)
    # urgent tickets follow the crew that can be there soonest (global greedy), not their k-means label, so
    # a cluster border never separates an emergency from its nearest crew
    urgent_crew: dict[str, int] = {}
    for cid, keys in greedy_routes(p, only=frozenset({"EMERGENCY", "CRITICAL"})).items():
        for k in keys:
            if k[0] == "T":
                urgent_crew[k[2:]] = p.crew_index[cid]
    for j, i in enumerate(open_idx):
        c = urgent_crew.get(p.tickets[i].id)
        out[crew_cl[c] if c is not None else lab[j]][1].append(i)
    for i, t in enumerate(p.tickets):
        if p.is_fixed(t):
            c = p.crew_index.get(t.assigned_crew_id or "")
            out[crew_cl[c] if c is not None else 0][1].append(i)
    for g, gen in enumerate(p.generators):
        d = (((np.array([gen.lat, gen.lng]) * scale) - cent) ** 2).sum(axis=1)
        out[int(np.argmin(d))][2].append(g)
    return [o for o in out if o[1]]


def _cluster_job(args: tuple[Problem, float, dict[str, list[Visit]] | None]) -> Any:
    sub, limit, initial = args
    t0 = time.perf_counter()
    first, meta = PORTFOLIO[0]
    start = initial
    if start is None:
        start = constructed_starts(sub)[0]
    built = time.perf_counter() - t0
    return solve_model(sub, first, meta, max(0.1, limit - 1.5 * built), start)


def decomposed_solve(
    p: Problem, budget: float, workers: int, initial: dict[str, list[Visit]] | None
) -> tuple[dict[str, list[Visit]] | None, dict[str, Any]]:
    """Solve clusters in parallel (``workers`` processes), merge their routes."""
    t0 = time.perf_counter()
    parts = clusters(p)
    subs = [subproblem(p, cr, tk, gn) for cr, tk, gn in parts]
    rounds = math.ceil(len(subs) / workers)
    reserve = 0.5 + len(p.tickets) / 1000  # merge, repair and plan building grow with the ticket count
    per = max(0.5, (budget - (time.perf_counter() - t0) - reserve) / rounds)
    jobs = [(sub, per, initial) for sub in subs]
    if workers == 1:
        results = [_cluster_job(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            results = list(ex.map(_cluster_job, jobs))
    routes: dict[str, list[Visit]] = {c.id: [] for c in p.crews}
    runs = []
    for sub, (r, info) in zip(subs, results, strict=True):
        runs.append({**info, "crews": len(sub.crews), "tickets": len(sub.tickets)})
        if r is None:
            r = greedy_routes(sub)
        routes.update(r)
    return routes, {"clusters": len(subs), "seconds_per_cluster": round(per, 2), "runs": runs}
