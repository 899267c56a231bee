"""Crew sync at scale: N simulated crew devices (default 1000) against a gridcrew server on PostgreSQL.

    python bench/sync.py                          # 1000 devices, 60 s, its own server and scratch database
    python bench/sync.py --devices 200 --duration 20 --workers 2   # two worker processes fanned out via Redis
    python bench/sync.py --processes 4            # the devices driven from 4 simulator processes

Starts `gridcrew serve` on a scratch PostgreSQL database (`gridcrew_sync_bench`, created anew and dropped at
the end; base URL from BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432),
seeds one crew, device and `--jobs` assigned jobs per simulated device, drives the devices
(mobile_sync/simulator.py: offline spells, lost answers, replays, reordering; online at random over the first
`--ramp` seconds) with customers following tickets live over graphql-transport-ws, then checks the database.
Prints push requests/s, mutations/s, p50/p95 push latency (also apart: during the field work, and the final sync
where every device sends its leftover queue at once), p95 time from the push that carried a field status change
to a subscribed customer seeing it (goal < 1 s), lost / duplicated (must be 0), and the CPU used.

The simulator runs the devices in `--processes` OS processes (default: half the CPUs, at most one per 100
devices), so that the figures are the server's, not the client's: check the CPU line at the end (the simulator
processes should not be near 100 % of a core each).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from scratch_db import fresh_database
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-sync-secret-" + "z" * 20


def main() -> None:
    from core.db import make_engine, migrate, normalise_url
    from core.settings import Settings
    from mobile_sync.simulator import SimConfig, default_processes

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--offline-rate", type=float, default=0.3)
    parser.add_argument("--step", type=float, default=20.0, help="a device's mean think time between actions (s)")
    parser.add_argument("--jobs", type=int, default=1, help="jobs per device")
    parser.add_argument("--gps", type=int, default=1, help="GPS fixes per leg")
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="server processes (more than 1 uses Redis)")
    parser.add_argument("--port", type=int, default=0, help="server port; 0: a free one")
    parser.add_argument("--ramp", type=float, default=None,
                        help="devices come online at random over this many seconds (default: the think time); "
                             "0: all at once")
    parser.add_argument("--processes", type=int, default=0,
                        help="simulator processes; 0: half the CPUs, at most one per 100 devices")
    args = parser.parse_args()
    args.processes = args.processes or default_processes(args.devices)
    args.ramp = args.step if args.ramp is None else args.ramp

    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or \
        "postgresql://postgres@127.0.0.1:5432/postgres"
    url = normalise_url(str(make_url(normalise_url(base)).set(database="gridcrew_sync_bench").render_as_string(
        hide_password=False)))
    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]
    fresh_database(url)
    engine = make_engine(url)
    migrate(engine)
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=SECRET, GRIDCREW_ENV="bench", LOG_LEVEL="WARNING")
    if args.workers > 1:
        env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port",
                               str(args.port), "--workers", str(args.workers), "--no-migrate"], cwd=ROOT, env=env)
    try:
        for _ in range(200):
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        config = SimConfig(devices=args.devices, offline_rate=args.offline_rate, duration=args.duration,
                           step_seconds=args.step, subscribers=args.subscribers,
                           jobs_per_device=args.jobs, gps_fixes=args.gps, processes=args.processes,
                           ramp_seconds=args.ramp)
        from api.cli import run_simulation

        print(f"{args.devices} devices x {args.jobs} job(s), {args.duration:g} s, think time {args.step:g} s, online "
              f"over the first {args.ramp:g} s, "
              f"offline rate {args.offline_rate}, {args.workers} server process(es), {args.processes} simulator "
              f"process(es), PostgreSQL, {os.cpu_count()} CPUs", flush=True)
        load = os.getloadavg()
        server_cpu, own_cpu, wall = cpu_seconds(server.pid), os.times(), time.monotonic()
        report = run_simulation(config, url=f"http://127.0.0.1:{args.port}", engine=engine,
                                settings=Settings(secret_key=SECRET, gridcrew_env="bench"))
        wall = time.monotonic() - wall
        server_cpu = cpu_seconds(server.pid) - server_cpu
        after = os.times()
        simulator_cpu = sum(after[:4]) - sum(own_cpu[:4])  # this process and its finished simulator processes
        for line in report.lines():
            print(line)
        for line in report.details[:10]:
            print(line)
        print(f"CPU over the run ({wall:.0f} s, seeding and checking included): server {server_cpu / wall:.0%} "
              f"of a core, simulator {simulator_cpu / wall:.0%} of a core in {args.processes} process(es); "
              f"load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        engine.dispose()
        fresh_database(url, drop_only=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (the server's workers), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


if __name__ == "__main__":
    main()
