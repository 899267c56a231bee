"""Solomon VRPTW bench: our OR-Tools core vs PyVRP and VROOM, distances recomputed from the instances."""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import vrplib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.optimizer.vrptw import SCALE, check_vrptw_routes, route_distance, solve_vrptw  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO / ".." / "shared" / "benchmarks" / "solomon"


def run_gridcrew(data: dict, time_limit: float) -> list[list[int]]:
    return solve_vrptw(data, time_limit_s=time_limit, workers=2).routes


def _scaled(data: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    coords = np.asarray(data["node_coord"], dtype=float)
    n = len(coords)
    diff = coords[:, None, :] - coords[None, :, :]
    dist = np.floor(np.sqrt((diff**2).sum(axis=2)) * SCALE + 1e-9).astype(np.int64)
    service = np.asarray(data["service_time"], dtype=float)
    service = np.full(n, float(service)) if service.ndim == 0 else service.copy()
    service[0] = 0
    tw = np.rint(np.asarray(data["time_window"], dtype=float) * SCALE).astype(np.int64)
    return dist, np.rint(service * SCALE).astype(np.int64), tw, np.asarray(data["demand"], dtype=np.int64)


def run_pyvrp(data: dict, time_limit: float) -> list[list[int]]:
    from pyvrp import Model
    from pyvrp.stop import MaxRuntime

    dist, service, tw, demand = _scaled(data)
    n = len(dist)
    m = Model()
    locs = [m.add_location(x=float(x), y=float(y)) for x, y in np.asarray(data["node_coord"], dtype=float)]
    depot = m.add_depot(locs[0], tw_early=int(tw[0][0]), tw_late=int(tw[0][1]))
    m.add_vehicle_type(
        num_available=int(data.get("vehicles", n - 1)),
        capacity=int(data["capacity"]),
        start_depot=depot,
        end_depot=depot,
        tw_early=int(tw[0][0]),
        tw_late=int(tw[0][1]),
    )
    for i in range(1, n):
        m.add_client(
            locs[i],
            delivery=int(demand[i]),
            service_duration=int(service[i]),
            tw_early=int(tw[i][0]),
            tw_late=int(tw[i][1]),
        )
    for i, a in enumerate(locs):
        for j, b in enumerate(locs):
            if i != j:
                m.add_edge(a, b, distance=int(dist[i][j]), duration=int(dist[i][j]))
    res = m.solve(stop=MaxRuntime(time_limit), seed=1, display=False)
    return [
        [int(a.idx) + 1 for a in r.schedule() if a.is_client()] for r in res.best.routes()
    ]  # idx: client no.


def run_vroom(data: dict, time_limit: float) -> list[list[int]]:
    import vroom

    dist, service, tw, demand = _scaled(data)
    n = len(dist)
    prob = vroom.Input()
    prob.set_durations_matrix("car", dist.tolist())
    prob.set_costs_matrix("car", dist.tolist())
    for v in range(int(data.get("vehicles", n - 1))):
        prob.add_vehicle(
            vroom.Vehicle(
                v + 1,
                start=0,
                end=0,
                capacity=[int(data["capacity"])],
                time_window=vroom.TimeWindow(int(tw[0][0]), int(tw[0][1])),
            )
        )
    for i in range(1, n):
        prob.add_job(
            vroom.Job(
                i,
                location=i,
                delivery=[int(demand[i])],
                default_service=int(service[i]),
                time_windows=[vroom.TimeWindow(int(tw[i][0]), int(tw[i][1]))],
            )
        )
    sol = prob.solve(exploration_level=5, nb_threads=2)
    routes: dict[int, list[int]] = {}
    for _, r in sol.routes.iterrows():
        if r["type"] == "job":
            routes.setdefault(int(r["vehicle_id"]), []).append(int(r["id"]))
    return [v for v in routes.values() if v]


SOLVERS = {"gridcrew": run_gridcrew, "pyvrp": run_pyvrp, "vroom": run_vroom}


def instance_paths(args: list[str]) -> list[Path]:
    paths: list[Path] = []
    for a in args or [str(DEFAULT_DIR)]:
        p = Path(a)
        paths += sorted(p.glob("*.vrp")) if p.is_dir() else [p]
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("instances", nargs="*", help=".vrp files or directories (default: shared Solomon set)")
    ap.add_argument("--bks", default=str(DEFAULT_DIR / "BKS.csv"))
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--solver", choices=[*SOLVERS, "all"], default="gridcrew")
    a = ap.parse_args()
    bks: dict[str, float] = {}
    if Path(a.bks).exists():
        with open(a.bks) as f:
            bks = {r["instance"]: float(r["distance"]) for r in csv.DictReader(f)}
    solvers = list(SOLVERS) if a.solver == "all" else [a.solver]
    gaps: dict[str, list[float]] = {s: [] for s in solvers}
    print(
        f"{'instance':10s} {'solver':9s} {'veh':>4s} {'distance':>10s} {'bks':>9s} {'gap %':>7s} {'sec':>6s}"
    )
    for path in instance_paths(a.instances):
        data = vrplib.read_instance(str(path))
        name = path.stem
        coords = np.asarray(data["node_coord"], dtype=float)
        for s in solvers:
            t0 = time.perf_counter()
            try:
                routes = SOLVERS[s](data, a.time_limit)
            except Exception as e:  # a peer failing must not stop the bench
                print(f"{name:10s} {s:9s} failed: {e!r}", flush=True)
                continue
            secs = time.perf_counter() - t0
            errs = check_vrptw_routes(data, routes)
            dist = route_distance(routes, coords) if not errs else math.inf
            ref = bks.get(name)
            gap = 100.0 * (dist / ref - 1.0) if ref and math.isfinite(dist) else math.nan
            if not math.isnan(gap):
                gaps[s].append(gap)
            note = f"  INFEASIBLE: {errs[0]}" if errs else ""
            print(
                f"{name:10s} {s:9s} {len(routes):4d} {dist:10.1f} {ref or float('nan'):9.1f} {gap:7.2f} "
                f"{secs:6.1f}{note}",
                flush=True,
            )
    for s in solvers:
        g = gaps[s]
        if g:
            print(f"mean gap {s} {statistics.mean(g):.2f} %  (worst {max(g):.2f} %, {len(g)} instances)")
        else:
            print(f"mean gap {s} n/a")


if __name__ == "__main__":
    main()
