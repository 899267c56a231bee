"""OR-Tools routing model of the dispatch problem: crews as vehicles, tickets as optional visits."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from dispatch.optimizer.core import Problem, Visit, assist_keys, sanitize_routes, ticket_key

FSS = routing_enums_pb2.FirstSolutionStrategy
LSM = routing_enums_pb2.LocalSearchMetaheuristic

# Portfolio of (first-solution strategy, metaheuristic) run in parallel processes, best objective wins.
PORTFOLIO: tuple[tuple[str, str], ...] = (
    ("PARALLEL_CHEAPEST_INSERTION", "GUIDED_LOCAL_SEARCH"),
    ("LOCAL_CHEAPEST_INSERTION", "GUIDED_LOCAL_SEARCH"),
    ("SAVINGS", "GUIDED_LOCAL_SEARCH"),
)


@dataclass
class RoutingModel:
    """The OR-Tools objects of one dispatch problem and how routing nodes map to visits."""

    problem: Problem
    manager: pywrapcp.RoutingIndexManager
    routing: pywrapcp.RoutingModel
    node_visit: list[Visit | None]  # per routing node (None for crew start/end nodes)
    visit_node: dict[Visit, int]


def allow_vehicles(routing: pywrapcp.RoutingModel, idx: int, vehicles: list[int]) -> None:
    """Restrict an optional visit to some vehicles (skills, towing).

    ``RoutingModel.SetAllowedVehiclesForIndex`` is the intended API, but its Python binding in OR-Tools 9.15
    rejects every list (``absl::Span<int const>`` SWIG typemap), so the vehicle variable's domain is
    restricted directly; ``-1`` keeps the visit droppable. The routing filters read this domain too.
    """
    if len(vehicles) < routing.vehicles():
        routing.VehicleVar(idx).SetValues([-1, *vehicles])


def build_model(p: Problem) -> RoutingModel:
    """Build the routing model; tickets in ``p.unserviceable`` are left out (they get their reason)."""
    s = p.settings
    C = len(p.crews)
    visits: list[Visit] = []
    points: list[int] = []
    service: list[int] = []
    # nodes 0..C-1: starts, C..2C-1: ends, then visits
    for c in range(C):
        points.append(p.crew_point(c))
        service.append(0)
    for c in range(C):
        points.append(p.end_point(c))
        service.append(0)
    node_visit: list[Visit | None] = [None] * (2 * C)
    for t in p.tickets:
        if t.id in p.unserviceable:
            continue
        visits.append(ticket_key(t.id))
        if t.id in p.multi:
            visits += assist_keys(t.id, p.multi[t.id])
    for tid, gids in p.gen_options.items():
        for gid in gids:
            visits.append(f"P:{gid}:{tid}")
            visits.append(f"D:{gid}:{tid}")
    if not p.tow_crews:
        visits = [v for v in visits if v[0] in "TA"]
    for v in visits:
        pt, svc = p.visit_point_service(v)
        points.append(pt)
        service.append(svc)
        node_visit.append(v)
    visit_node = {v: i for i, v in enumerate(node_visit) if v is not None}
    n = len(points)
    pts = np.asarray(points)
    travel = p.minutes[np.ix_(pts, pts)].astype(np.int64)
    for c in range(C):
        if not p.crews[c].end_at_home:
            travel[:, C + c] = 0  # "end anywhere": a dummy end reached for free
    travel[:, :C] = 0  # nothing travels into a start node; keep values small
    transit = travel + np.asarray(service, dtype=np.int64)[:, None]

    manager = pywrapcp.RoutingIndexManager(n, C, list(range(C)), list(range(C, 2 * C)))
    routing = pywrapcp.RoutingModel(manager)
    arc_cb = (
        routing.RegisterTransitMatrix((travel * int(round(s.travel_weight))).tolist())
        if s.travel_weight
        else None
    )
    if arc_cb is not None:
        routing.SetArcCostEvaluatorOfAllVehicles(arc_cb)
    time_cb = routing.RegisterTransitMatrix(transit.tolist())
    horizon = int(max(p.hard_end + [1]) + 1)
    # Zero slack: without earliest starts a crew never waits and cumuls are fully determined by the route.
    # That lets a second identical dimension carry a second soft bound on the same arrival (lateness on
    # "Time", customer-minutes on "Clock"), since a cumul has only one soft upper bound. With booked
    # windows (earliest starts) both get slack for waiting; every cost on them only pushes cumuls down, so
    # both still settle on the earliest feasible times (what ``Problem.simulate`` computes).
    waits = p.multi or p.after or any(t.earliest_start is not None and t.earliest_start > 0 for t in p.tickets)
    slack = horizon if waits else 0
    routing.AddDimension(time_cb, slack, horizon, False, "Time")
    routing.AddDimension(time_cb, slack, horizon, False, "Clock")
    tdim = routing.GetDimensionOrDie("Time")
    cdim = routing.GetDimensionOrDie("Clock")
    for c, crew in enumerate(p.crews):
        ready = p.crew_ready(c)
        for dim in (tdim, cdim):
            dim.CumulVar(routing.Start(c)).SetValue(ready)
        # a meal break is not an interval in this model (OR-Tools' break intervals with waiting slack made the
        # search stall on storm days); the route keeps room for it instead, and our objective
        # (Problem.eval_route, which every candidate is scored by) places it.
        brk = p.breaks[c]
        room = brk[2] if brk is not None else 0
        tdim.CumulVar(routing.End(c)).SetMax(max(p.hard_end[c] - room, ready + int(travel[c, C + c])))
        if s.overtime_cost > 0:
            tdim.SetCumulVarSoftUpperBound(routing.End(c), crew.shift_end, p.overtime_coef())
        if p.fair_coef() > 0:  # convex overtime: the second tier spreads overtime over crews
            cdim.SetCumulVarSoftUpperBound(routing.End(c), crew.shift_end + s.fair_overtime_minutes, p.fair_coef())

    solver = routing.solver()
    if p.tow_crews:
        tow_delta = [0] * n
        for v, i in visit_node.items():
            tow_delta[i] = 1 if v[0] == "P" else -1 if v[0] == "D" else 0
        tow_cb = routing.RegisterUnaryTransitVector(tow_delta)
        routing.AddDimensionWithVehicleCapacity(
            tow_cb, 0, [1 if c in p.tow_crews else 0 for c in range(C)], True, "Tow"
        )

    _add_extra_costs(p, routing, manager, visit_node, n)
    fixed_nodes: set[int] = set()
    for c, ids in enumerate(p.fixed):
        prev = routing.Start(c)
        for tid in ids:
            idx = manager.NodeToIndex(visit_node[ticket_key(tid)])
            routing.VehicleVar(idx).SetValues([c])
            solver.Add(routing.NextVar(prev) == idx)  # hard: fixed prefix, in this order
            fixed_nodes.add(idx)
            prev = idx

    for v, node in visit_node.items():
        idx = manager.NodeToIndex(node)
        kind = v[0]
        if kind == "T":
            t = p.tickets[p.ticket_index[v[2:]]]
            if idx not in fixed_nodes:
                allow_vehicles(routing, idx, p.qualified[p.ticket_index[t.id]])
                routing.AddDisjunction([idx], p.drop_penalty(t))
            if t.earliest_start is not None and t.earliest_start > 0:
                for dim in (tdim, cdim):
                    dim.CumulVar(idx).SetMin(min(t.earliest_start, horizon))
            if t.respond_by is not None:
                tdim.SetCumulVarSoftUpperBound(idx, max(0, t.respond_by), p.late_coef(t))
            if p.cm_coef(t) > 0:
                cdim.SetCumulVarSoftUpperBound(idx, 0, p.cm_coef(t))
        elif kind == "A":
            _add_assist(p, routing, manager, visit_node, v, idx)
        else:
            allow_vehicles(routing, idx, p.tow_crews)
            if kind == "D":
                tid = v.split(":", 2)[2]
                t = p.tickets[p.ticket_index[tid]]
                if p.gen_time_coef(t) > 0:
                    cdim.SetCumulVarSoftUpperBound(idx, 0, p.gen_time_coef(t))
    _add_precedences(p, routing, manager, visit_node, horizon)
    if s.overtime_only_for_emergencies:
        _add_shift_end_rule(p, routing, manager, visit_node, travel, service)
    # generator alternatives: per generator at most one pick-up; per site at most one hook-up
    by_gen: dict[str, list[int]] = {}
    by_site: dict[str, list[int]] = {}
    for v, node in visit_node.items():
        if v[0] == "P":
            _, gid, tid = v.split(":", 2)
            by_gen.setdefault(gid, []).append(manager.NodeToIndex(node))
            d = manager.NodeToIndex(visit_node[f"D:{gid}:{tid}"])
            pidx = manager.NodeToIndex(node)
            routing.AddPickupAndDelivery(pidx, d)
            # AddPickupAndDelivery already keeps pick-up and hook-up on one crew, pick-up first
        elif v[0] == "D":
            by_site.setdefault(v.split(":", 2)[2], []).append(manager.NodeToIndex(node))
    for idxs in by_gen.values():
        routing.AddDisjunction(idxs, 0, 1)
    for idxs in by_site.values():
        routing.AddDisjunction(idxs, int(round(s.generator_value)), 1)
    return RoutingModel(p, manager, routing, node_visit, visit_node)


def _add_assist(
    p: Problem,
    routing: pywrapcp.RoutingModel,
    manager: pywrapcp.RoutingIndexManager,
    visit_node: dict[Visit, int],
    v: Visit,
    idx: int,
) -> None:
    """A further crew of a multi-crew job: a visit on another vehicle than the job's other visits, served exactly
    when the job is (no penalty of its own: the job's disjunction carries it), starting at the same time on both
    time dimensions (synchronised start; the first crew there waits, which the dimensions' slack allows)."""
    tid = v.split(":", 2)[2]
    lead = manager.NodeToIndex(visit_node[ticket_key(tid)])
    solver = routing.solver()
    allow_vehicles(routing, idx, p.qualified[p.ticket_index[tid]])
    routing.AddDisjunction([idx], 0)
    others = [lead] + [
        manager.NodeToIndex(visit_node[k]) for k in assist_keys(tid, p.multi[tid]) if k < v and k in visit_node
    ]
    solver.Add(routing.ActiveVar(idx) == routing.ActiveVar(lead))
    for name in ("Time", "Clock"):
        dim = routing.GetDimensionOrDie(name)
        solver.Add(dim.CumulVar(idx) == dim.CumulVar(lead))
    for o in others:  # both inactive (vehicle -1) or on different vehicles
        solver.Add(routing.VehicleVar(idx) - routing.VehicleVar(o) + 1000 * (1 - routing.ActiveVar(idx)) != 0)


def _add_precedences(
    p: Problem,
    routing: pywrapcp.RoutingModel,
    manager: pywrapcp.RoutingIndexManager,
    visit_node: dict[Visit, int],
    horizon: int,
) -> None:
    """Job b waits for job a (``TicketIn.depends_on``): b is served only if a is, and starts no earlier than
    a's start + a's service + the gap, on both time dimensions (b's crew waits if it is there earlier)."""
    solver = routing.solver()
    for tid, (dep, gap) in p.after.items():
        if ticket_key(tid) not in visit_node or ticket_key(dep) not in visit_node:
            continue
        b = manager.NodeToIndex(visit_node[ticket_key(tid)])
        a = manager.NodeToIndex(visit_node[ticket_key(dep)])
        solver.Add(routing.ActiveVar(b) <= routing.ActiveVar(a))
        svc = p.visit_point_service(ticket_key(dep))[1]
        for name in ("Time", "Clock"):
            dim = routing.GetDimensionOrDie(name)
            # only binding when b is served (an unserved visit's cumul means nothing)
            solver.Add(dim.CumulVar(b) + (horizon + svc + gap) * (1 - routing.ActiveVar(b))
                       >= dim.CumulVar(a) + svc + gap)


def _add_shift_end_rule(
    p: Problem,
    routing: pywrapcp.RoutingModel,
    manager: pywrapcp.RoutingIndexManager,
    visit_node: dict[Visit, int],
    travel: np.ndarray,
    service: list[int],
) -> None:
    """Overtime only for emergencies, and home by shift end unless the last job is one.

    A job that may not run into overtime (:meth:`Problem.may_overrun`) on crew v must start by
    ``lim_v = shift_limit(v) - service - drive from the job to v's depot``, i.e. be done in time to drive home
    (after a meal break still to take) by shift end. The "Time" cumul excludes the break, so subtracting its
    minutes is exact when it is taken before the job and keeps room for it when it is still to come; this is
    the check :meth:`Problem.eval_route` makes. A route then ends after shift end only when its last job is an
    emergency (its end stays bounded by shift end + overtime on "Time").

    The bound depends on the crew, so it is an ``Element`` over the visit's vehicle variable (index 0:
    not served, no bound). Routing's local-search filters do not see such constraints (only propagation
    does), so the loosest bound over the visit's possible crews is also set on the cumul itself, where the
    filters see it; when all those crews share one bound (same shift end and depot) that alone is exact.
    """
    solver = routing.solver()
    tdim = routing.GetDimensionOrDie("Time")
    C = len(p.crews)
    unbounded = int(max(p.hard_end + [1]) + 1)
    limits = [p.shift_limit(c) for c in range(C)]
    for v, node in visit_node.items():
        if p.may_overrun(v):
            continue
        idx = manager.NodeToIndex(node)
        tid = v[2:] if v[0] == "T" else v.split(":", 2)[2]
        crews = p.tow_crews if v[0] in "PD" else p.qualified[p.ticket_index[tid]]
        lim = [int(limits[c] - service[node] - travel[node, C + c]) for c in range(C)]
        mine = [lim[c] for c in crews]
        if not mine:
            continue
        loosest = max(mine)
        if loosest < tdim.CumulVar(idx).Min():
            routing.ActiveVar(idx).SetValue(0)  # no crew can do it in shift (its reason says so)
            continue
        tdim.CumulVar(idx).SetMax(loosest)
        if min(mine) < loosest:
            vehicle = (routing.VehicleVar(idx) + 1).Var()
            solver.Add(tdim.CumulVar(idx) <= solver.Element([unbounded, *lim], vehicle))


def _add_extra_costs(
    p: Problem,
    routing: pywrapcp.RoutingModel,
    manager: pywrapcp.RoutingIndexManager,
    visit_node: dict[Visit, int],
    n: int,
) -> None:
    """Per crew-and-job costs (stability of re-plans, lending across regions) as a dimension whose unary
    transits differ by vehicle: the route's total is charged at its end, one cost unit per unit."""
    C = len(p.crews)
    vectors: list[list[int]] = []
    for c in range(C):
        vec = [0] * n
        for v, node in visit_node.items():
            vec[node] = p.extra_cost(c, v)
        vectors.append(vec)
    if not any(any(vec) for vec in vectors):
        return
    cache: dict[tuple[int, ...], int] = {}
    evaluators = []
    for vec in vectors:
        key = tuple(vec)
        if key not in cache:
            cache[key] = routing.RegisterUnaryTransitVector(vec)
        evaluators.append(cache[key])
    cap = max(1, max(sum(vec) for vec in vectors))
    routing.AddDimensionWithVehicleTransits(evaluators, 0, cap, True, "Extra")
    edim = routing.GetDimensionOrDie("Extra")
    for c in range(C):
        if any(vectors[c]):
            edim.SetCumulVarSoftUpperBound(routing.End(c), 0, 1)


def search_parameters(first: str, meta: str, time_limit_s: float) -> Any:
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = getattr(FSS, first)
    params.local_search_metaheuristic = getattr(LSM, meta)
    params.time_limit.FromMilliseconds(max(50, int(time_limit_s * 1000)))
    return params


def _extract(m: RoutingModel, sol: Any) -> dict[str, list[Visit]]:
    routes: dict[str, list[Visit]] = {}
    for c, crew in enumerate(m.problem.crews):
        idx = sol.Value(m.routing.NextVar(m.routing.Start(c)))
        keys: list[Visit] = []
        while not m.routing.IsEnd(idx):
            v = m.node_visit[m.manager.IndexToNode(idx)]
            if v is not None:
                keys.append(v)
            idx = sol.Value(m.routing.NextVar(idx))
        routes[crew.id] = keys
    return routes


def warm_routes(m: RoutingModel, initial: dict[str, list[Visit]]) -> list[list[int]]:
    """Initial routes as lists of routing *variable indices* (what ``ReadAssignmentFromRoutes`` expects,
    not node numbers); see :func:`sanitize_routes` for how earlier routes are cleaned."""
    clean = sanitize_routes(m.problem, initial, set(m.visit_node))
    return [
        [m.manager.NodeToIndex(m.visit_node[k]) for k in clean.get(crew.id, [])] for crew in m.problem.crews
    ]


def solve_model(
    p: Problem,
    first: str,
    meta: str,
    time_limit_s: float,
    initial: dict[str, list[Visit]] | None = None,
) -> tuple[dict[str, list[Visit]] | None, dict[str, Any]]:
    """Build and solve one model; returns routes per crew id (None if no solution) and search stats."""
    t0 = time.perf_counter()
    m = build_model(p)
    build_s = time.perf_counter() - t0
    params = search_parameters(first, meta, max(0.05, time_limit_s - build_s))
    info: dict[str, Any] = {"strategy": f"{first}+{meta}", "build_seconds": round(build_s, 3), "warm": False}
    sol = None
    if initial:
        # Warm start (OR-Tools issues 1841/4273): ReadAssignmentFromRoutes closes the model, and a model
        # closed with default parameters silently ignores our metaheuristic/time limit. So close it with
        # *our* parameters first. On a warm start the first-solution strategy never applies (the given
        # routes are the first solution); metaheuristic, operators and limits do.
        m.routing.CloseModelWithParameters(params)
        start = m.routing.ReadAssignmentFromRoutes(warm_routes(m, initial), True)
        if start is not None:
            info["warm"] = True
            sol = m.routing.SolveFromAssignmentWithParameters(start, params)
        else:
            info["warm_failed"] = True
    if sol is None:
        sol = m.routing.SolveWithParameters(params)
    info["status"] = int(m.routing.status())
    info["solver_objective"] = sol.ObjectiveValue() if sol is not None else None
    routes = _extract(m, sol) if sol is not None else None
    if initial and not info["warm"]:
        # the start could not be read back (should not happen): never return worse than it
        clean = sanitize_routes(p, initial, set(m.visit_node))
        if routes is None or p.objective(clean) < p.objective(routes):
            routes, info["kept_start"] = clean, True
    return routes, info


def _worker(args: tuple[Problem, str, str, float, dict[str, list[Visit]] | None]) -> Any:
    return solve_model(*args)


def constructed_starts(p: Problem) -> list[dict[str, list[Visit]]]:
    """Starting solutions, best first: cheapest insertion, greedy, urgency rule (each completed by
    insertion)."""
    from dispatch.optimizer.greedy import greedy_routes, urgency_routes
    from dispatch.optimizer.insertion import construct, repair

    out = []
    for make in (construct, greedy_routes, urgency_routes):
        r = make(p)
        repair(p, r)
        out.append(r)
    out.sort(key=p.objective)
    return out


def portfolio_solve(
    p: Problem,
    time_limit_s: float,
    workers: int,
    initial: dict[str, list[Visit]] | None = None,
    pool: ProcessPoolExecutor | None = None,
    construct: bool = True,
) -> tuple[dict[str, list[Visit]] | None, dict[str, Any]]:
    """Solve with ``workers`` strategies in parallel (processes); keep the lowest recomputed objective.

    Every worker starts from a constructed solution, because on overloaded storm days OR-Tools' own
    first-solution heuristics (arc-cost driven) start far from good plans and its local search does not
    recover within seconds. Candidates: ``initial`` (warm start, always worker 0), cost-aware cheapest
    insertion, the dispatcher's greedy plan and an urgency dispatch rule (each completed by insertion);
    workers take them best-first by our objective; any worker left over starts cold. With
    ``construct=False`` only ``initial`` is searched (one worker), e.g. to polish merged cluster plans.
    """
    t0 = time.perf_counter()
    built_starts = constructed_starts(p) if construct or initial is None else []
    starts: list[dict[str, list[Visit]] | None] = [initial] if initial is not None else []
    starts += built_starts
    starts = starts[: max(1, workers)]
    if not construct:
        workers = len(starts)
    starts += [None] * max(0, workers - len(starts))
    built = time.perf_counter() - t0
    # keep back time for the pool start and the final repair pass (about half a construction)
    left = max(0.1, time_limit_s - built - 0.5 * built - (0.3 if workers > 1 else 0.0))
    jobs = [(p, first, meta, left, starts[k]) for k, (first, meta) in enumerate(PORTFOLIO[: max(1, workers)])]
    if len(jobs) == 1:
        results = [solve_model(*jobs[0])]
    elif pool is not None:
        results = list(pool.map(_worker, jobs))
    else:
        with ProcessPoolExecutor(max_workers=len(jobs)) as ex:
            results = list(ex.map(_worker, jobs))
    best: tuple[dict[str, list[Visit]] | None, dict[str, Any]] = (None, {"runs": []})
    best_obj: float | None = None
    runs = []
    for routes, info in results:
        obj = p.objective(routes) if routes is not None else None
        runs.append({**info, "objective": obj})
        if routes is not None and (best_obj is None or obj < best_obj):  # type: ignore[operator]
            best, best_obj = (routes, info), obj
    return best[0], {"runs": runs, "winner": best[1].get("strategy")}
