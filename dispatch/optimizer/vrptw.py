"""Generic VRPTW core on OR-Tools (Solomon convention): a 2-process portfolio of iterated local searches."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

FSS = routing_enums_pb2.FirstSolutionStrategy
LSM = routing_enums_pb2.LocalSearchMetaheuristic

BOOL_FALSE, BOOL_TRUE = 2, 3  # OptionalBoolean values in ortools' optional_boolean.proto
LNS_OPERATORS = (
    "use_global_cheapest_insertion_path_lns",
    "use_local_cheapest_insertion_path_lns",
    "use_relocate_path_global_cheapest_insertion_insert_unperformed",
    "use_global_cheapest_insertion_visit_types_lns",
    "use_local_cheapest_insertion_visit_types_lns",
    "use_relocate_expensive_chain",
)
LEAN_OFF = (
    "use_lin_kernighan",
    "use_relocate_subtrip",
    "use_exchange_subtrip",
    "use_shortest_path_swap_active",
    "use_shortest_path_two_opt",
    "use_swap_active_chain",
    "use_light_relocate_pair",
)
SCALE = 10  # Solomon convention: distances/times truncated to one decimal -> integers in tenths


@dataclass(frozen=True)
class VrptwStrategy:
    """One portfolio member: first-solution heuristic, metaheuristic and its knobs."""

    first_solution: str = "PARALLEL_CHEAPEST_INSERTION"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    gls_lambda: float = 0.1
    ruin_recreate: bool = False  # our ILS: ruin & recreate around OR-Tools greedy descents
    accept_threshold: float = 0.01  # ILS acceptance: worse by up to this share, cooling to 0
    lean: bool = False  # ILS descents without the slower exotic operators
    route_removal: float = 0.0  # ILS: share of ruins that empty a short route


# Portfolio used on 2 cores, one process each: an iterated local search (ruin & recreate in Python around
# OR-Tools greedy descents, see ``_solve_one``) started from parallel cheapest insertion (robust on tight
# time windows) and one started from path cheapest arc (better on wide windows / long routes; when that
# finds no first solution within 20 % of the time, local cheapest insertion replaces it). 20 % of the ruins
# empty one of the shortest routes. Chosen on the public instance classes as a whole, compared with plain
# guided local search (lambda 0.05-0.4), savings/local-cheapest-insertion starts, tabu search, simulated
# annealing, OR-Tools' built-in ILS (its loop never started here), extra LNS operators, a reduced fleet and
# the full operator set in the descents; not tuned per instance. Results vary run to run with CPU load,
# since the number of ILS iterations in the time limit does.
DEFAULT_PORTFOLIO: tuple[VrptwStrategy, ...] = (
    VrptwStrategy(
        "PARALLEL_CHEAPEST_INSERTION", "GREEDY_DESCENT", ruin_recreate=True, lean=True, route_removal=0.2
    ),
    VrptwStrategy("PATH_CHEAPEST_ARC", "GREEDY_DESCENT", ruin_recreate=True, lean=True, route_removal=0.2),
)


@dataclass
class VrptwResult:
    """Best routes (customer node indices, depot = 0 excluded), their distance and which strategy won."""

    routes: list[list[int]]
    distance: float
    strategy: VrptwStrategy | None
    per_strategy: list[tuple[VrptwStrategy, float]]


def distance_matrix(coords: np.ndarray) -> np.ndarray:
    """Euclidean distances truncated to one decimal, returned as integers in tenths."""
    diff = coords[:, None, :] - coords[None, :, :]
    d = np.sqrt((diff**2).sum(axis=2))
    return np.floor(d * SCALE + 1e-9).astype(np.int64)


def _service(data: dict[str, Any], n: int) -> np.ndarray:
    """Service times in tenths per node; the depot (node 0) never has service time."""
    service = np.rint(np.asarray(data["service_time"], dtype=float) * SCALE).astype(np.int64)
    if service.ndim == 0:
        service = np.full(n, int(service), dtype=np.int64)
    service = service.copy()
    service[0] = 0
    return service


def route_distance(routes: list[list[int]], coords: np.ndarray, depot: int = 0) -> float:
    """Recompute the Solomon-convention distance of routes from coordinates (independent of any solver)."""
    total = 0.0
    for r in routes:
        path = [depot, *r, depot]
        for a, b in zip(path, path[1:], strict=False):
            total += math.floor(math.dist(coords[a], coords[b]) * SCALE + 1e-9) / SCALE
    return round(total, 1)


def _solve_one(
    data: dict[str, Any], strategy: VrptwStrategy, time_limit_s: float, seed: int, fleet: int | None = None
) -> list[list[int]]:
    coords = np.asarray(data["node_coord"], dtype=float)
    n = len(coords)
    dist = distance_matrix(coords)
    service = _service(data, n)
    tw = np.rint(np.asarray(data["time_window"], dtype=float) * SCALE).astype(np.int64)
    demand = np.asarray(data["demand"], dtype=np.int64)
    capacity = int(data["capacity"])
    n_veh = int(data.get("vehicles", n - 1))
    if fleet is not None:
        n_veh = min(n_veh, fleet)
    horizon = int(tw[0][1])

    manager = pywrapcp.RoutingIndexManager(n, n_veh, 0)
    routing = pywrapcp.RoutingModel(manager)
    dist_cb = routing.RegisterTransitMatrix(dist.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(dist_cb)
    time_mat = dist + service[:, None]
    time_cb = routing.RegisterTransitMatrix(time_mat.tolist())
    routing.AddDimension(time_cb, horizon, horizon, False, "Time")
    tdim = routing.GetDimensionOrDie("Time")
    dem_cb = routing.RegisterUnaryTransitVector(demand.tolist())
    routing.AddDimensionWithVehicleCapacity(dem_cb, 0, [capacity] * n_veh, True, "Load")
    for node in range(1, n):
        idx = manager.NodeToIndex(node)
        tdim.CumulVar(idx).SetRange(int(tw[node][0]), int(tw[node][1]))
    for v in range(n_veh):
        tdim.CumulVar(routing.Start(v)).SetRange(int(tw[0][0]), horizon)
        tdim.CumulVar(routing.End(v)).SetRange(int(tw[0][0]), horizon)
        routing.AddVariableMinimizedByFinalizer(tdim.CumulVar(routing.End(v)))

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = getattr(FSS, strategy.first_solution)
    params.local_search_metaheuristic = getattr(LSM, strategy.metaheuristic)
    params.guided_local_search_lambda_coefficient = strategy.gls_lambda
    t_start = time.perf_counter()
    if strategy.ruin_recreate:
        params.local_search_metaheuristic = LSM.GREEDY_DESCENT
        ops = params.local_search_operators
        for name in LNS_OPERATORS:  # the ruin & recreate loop is the large neighbourhood; keep descents quick
            setattr(ops, name, BOOL_FALSE)
        if strategy.lean:
            for name in LEAN_OFF:
                setattr(ops, name, BOOL_FALSE)
    first_limit = time_limit_s
    if strategy.ruin_recreate:  # a first solution + descent must come quickly, or we fall back
        first_limit = min(time_limit_s, max(1.0, 0.2 * time_limit_s))
    params.time_limit.FromMilliseconds(int(first_limit * 1000))
    sol = routing.SolveWithParameters(params)
    if sol is None:
        left = time_limit_s - (time.perf_counter() - t_start)
        if strategy.first_solution == "PATH_CHEAPEST_ARC" and left > 0.2:
            # e.g. path cheapest arc finds nothing under tight time windows: fall back, keep the core busy
            fallback = dataclasses.replace(strategy, first_solution="LOCAL_CHEAPEST_INSERTION")
            return _solve_one(data, fallback, left, seed, fleet)
        return []

    def extract(a: Any) -> list[list[int]]:
        out: list[list[int]] = []
        for v in range(n_veh):
            idx = a.Value(routing.NextVar(routing.Start(v)))
            r = []
            while not routing.IsEnd(idx):
                r.append(manager.IndexToNode(idx))
                idx = a.Value(routing.NextVar(idx))
            if r:
                out.append(r)
        return out

    routes = extract(sol)
    if not strategy.ruin_recreate:
        return routes
    # Iterated local search driven from Python: ruin (remove customers near a random one), recreate by
    # cheapest feasible insertion, then OR-Tools' local search (greedy descent) from there; accept by a
    # threshold that cools linearly to zero. The routing model is built once and reused for every descent.
    rr = _RuinRecreate(
        dist, service, tw, demand, capacity, np.random.default_rng(seed), strategy.route_removal
    )
    best, best_d = routes, rr.cost(routes)
    cur, cur_d = routes, best_d
    deadline = t_start + time_limit_s
    t_ls = time.perf_counter()
    while True:
        left = deadline - time.perf_counter()
        if left < 0.05:
            break
        frac = 1.0 - left / max(1e-9, deadline - t_ls)
        cand = rr.perturb(cur)
        if len(cand) > n_veh:
            continue
        start = routing.ReadAssignmentFromRoutes(
            [[manager.NodeToIndex(c) for c in r] for r in cand] + [[]] * (n_veh - len(cand)), True
        )
        if start is None:
            continue
        params.time_limit.FromMilliseconds(max(10, int(min(left, 2.0) * 1000)))
        sol = routing.SolveFromAssignmentWithParameters(start, params)
        if sol is None:
            continue
        cand = extract(sol)
        d = rr.cost(cand)
        if d < best_d:
            best, best_d = cand, d
        if d < cur_d + strategy.accept_threshold * (1.0 - frac) * cur_d:
            cur, cur_d = cand, d
    return best


class _RuinRecreate:
    """Perturbation for the iterated local search: radial ruin + randomised cheapest feasible insertion."""

    def __init__(
        self,
        dist: np.ndarray,
        service: np.ndarray,
        tw: np.ndarray,
        demand: np.ndarray,
        capacity: int,
        rng: np.random.Generator,
        route_removal: float = 0.0,
    ) -> None:
        self.d = dist.tolist()
        self.s = service.tolist()
        self.e = tw[:, 0].tolist()
        self.l = tw[:, 1].tolist()
        self.q = demand.tolist()
        self.cap = capacity
        self.rng = rng
        self.near = np.argsort(dist + dist.T, axis=1)[:, 1:].tolist()
        self.route_removal = route_removal

    def cost(self, routes: list[list[int]]) -> int:
        d = self.d
        return sum(
            d[0][r[0]] + sum(d[a][b] for a, b in zip(r, r[1:], strict=False)) + d[r[-1]][0]
            for r in routes
            if r
        )

    def perturb(self, routes: list[list[int]]) -> list[list[int]]:
        n = len(self.d) - 1
        k = int(self.rng.integers(5, max(6, min(25, n // 5))))
        seed = int(self.rng.integers(1, n + 1))
        removed = {seed}
        if self.route_removal and len(routes) > 1 and self.rng.random() < self.route_removal:
            # empty a short route (chosen with bias to the shortest) and ruin around it: the only way
            # the search reduces the number of routes, which cheapest insertion alone never does
            sizes = sorted(range(len(routes)), key=lambda i: len(routes[i]))
            victim = routes[sizes[int(self.rng.integers(0, min(3, len(sizes))))]]
            removed = set(victim)
            seed = victim[int(self.rng.integers(0, len(victim)))]
            k = max(k, len(removed))
        for c in self.near[seed]:
            if len(removed) >= k:
                break
            if c != 0:
                removed.add(c)
        new = [[c for c in r if c not in removed] for r in routes]
        new = [r for r in new if r]
        order = list(removed)
        self.rng.shuffle(order)
        for c in order:
            self._insert(new, c)
        return new

    def _insert(self, routes: list[list[int]], c: int) -> None:
        d, s, e, lt = self.d, self.s, self.e, self.l
        best: tuple[int, int, int] | None = None
        for ri, r in enumerate(routes):
            if sum(self.q[x] for x in r) + self.q[c] > self.cap:
                continue
            path = [0, *r, 0]
            # earliest start times forward, latest start times backward
            a = [e[0]]
            for i in range(1, len(path)):
                a.append(max(e[path[i]], a[-1] + s[path[i - 1]] + d[path[i - 1]][path[i]]))
            z = [0] * len(path)
            z[-1] = lt[0]
            for i in range(len(path) - 2, -1, -1):
                z[i] = min(lt[path[i]], z[i + 1] - s[path[i]] - d[path[i]][path[i + 1]])
            for i in range(len(path) - 1):
                u, w = path[i], path[i + 1]
                tc = max(e[c], a[i] + s[u] + d[u][c])
                if tc > lt[c] or max(e[w], tc + s[c] + d[c][w]) > z[i + 1]:
                    continue
                delta = d[u][c] + d[c][w] - d[u][w]
                if best is None or delta < best[0]:
                    best = (delta, ri, i)
        if best is None:
            routes.append([c])
        else:
            routes[best[1]].insert(best[2], c)


def check_vrptw_routes(data: dict[str, Any], routes: list[list[int]]) -> list[str]:
    """Violations of capacity, time windows and coverage for routes (times in one-decimal convention)."""
    coords = np.asarray(data["node_coord"], dtype=float)
    n = len(coords)
    dist = distance_matrix(coords)
    service = _service(data, n)
    tw = np.rint(np.asarray(data["time_window"], dtype=float) * SCALE).astype(np.int64)
    demand = np.asarray(data["demand"])
    errors: list[str] = []
    seen: list[int] = [c for r in routes for c in r]
    if sorted(seen) != list(range(1, n)):
        errors.append("customers not visited exactly once")
    for k, r in enumerate(routes):
        if demand[r].sum() > data["capacity"]:
            errors.append(f"route {k} over capacity")
        t, prev = int(tw[0][0]), 0
        for c in r:
            t = max(t + service[prev] + dist[prev][c], tw[c][0])
            if t > tw[c][1]:
                errors.append(f"route {k} late at {c}")
            prev = c
        if t + service[prev] + dist[prev][0] > tw[0][1]:
            errors.append(f"route {k} returns after depot closes")
    return errors


def solve_vrptw(
    data: dict[str, Any],
    time_limit_s: float = 10.0,
    workers: int = 2,
    portfolio: tuple[VrptwStrategy, ...] = DEFAULT_PORTFOLIO,
    fleet_slack: int | None = None,
) -> VrptwResult:
    """Solve a VRPTW (vrplib dict: node_coord, demand, capacity, time_window, service_time, vehicles).

    Runs ``min(workers, len(portfolio))`` strategies in parallel processes for ``time_limit_s`` each
    and keeps the routes with the smallest recomputed distance (fleet size free, no vehicle cost).
    """
    coords = np.asarray(data["node_coord"], dtype=float)
    plain = {
        k: (v.tolist() if isinstance(v, np.ndarray) else v)
        for k, v in data.items()
        if k in ("node_coord", "demand", "capacity", "time_window", "service_time", "vehicles")
    }
    strategies = portfolio[: max(1, workers)]
    # leave a little room for process start-up and model building inside the wall-clock budget
    t0 = time.perf_counter()
    fleet = None
    if fleet_slack is not None:
        # Identical idle vehicles only multiply equivalent moves for the local search; a quick first
        # solution tells how many routes are needed, and a few spare routes keep the fleet "free".
        first = _solve_one(plain, VrptwStrategy(metaheuristic="GREEDY_DESCENT"), 0.3, 0)
        if first:
            fleet = len(first) + fleet_slack
    budget = max(0.5, time_limit_s - 0.6 - (time.perf_counter() - t0))
    if len(strategies) == 1 or workers <= 1:
        results = [_solve_one(plain, strategies[0], budget, 0, fleet)]
    else:
        with ProcessPoolExecutor(max_workers=len(strategies)) as pool:
            futs = [pool.submit(_solve_one, plain, s, budget, i, fleet) for i, s in enumerate(strategies)]
            results = [f.result() for f in futs]
    best: VrptwResult = VrptwResult([], math.inf, None, [])
    for s, routes in zip(strategies, results, strict=True):
        d = route_distance(routes, coords) if routes else math.inf
        best.per_strategy.append((s, d))
        if routes and not check_vrptw_routes(data, routes) and d < best.distance:
            best.routes, best.distance, best.strategy = routes, d, s
    return best


if __name__ == "__main__":  # pragma: no cover - manual smoke run
    import sys

    import vrplib

    inst = vrplib.read_instance(sys.argv[1])
    t0 = time.perf_counter()
    res = solve_vrptw(inst, float(sys.argv[2]) if len(sys.argv) > 2 else 10.0, os.cpu_count() or 2)
    print(res.distance, len(res.routes), res.per_strategy, round(time.perf_counter() - t0, 1))
