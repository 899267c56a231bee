"""createTicket throughput and latency against a running gridcrew server (one process, PostgreSQL).

    python bench/intake.py                      # starts its own server on PostgreSQL, 3000 tickets, 8 in flight
    python bench/intake.py --url http://127.0.0.1:8000/graphql --token "$(gridcrew token)"
    python bench/intake.py --client wrk --duration 20   # load from wrk (Debian package), a lighter client

The load generator shares the 2 cores with the server and PostgreSQL. The default client is Python (httpx,
asyncio), which costs about as much CPU per request as the server does; `--client wrk` drives the same
requests (unique clientRequestIds, mixed languages and places) from wrk's C event loop with a Lua script, so
the figure says more about the server. Both count an answer with GraphQL errors as an error.

The bench's scratch database grows by thousands of tickets a run. Where the server's autovacuum is off (as on
this project's test machines), the bench analyzes its tables as autovacuum would in production
(scratch_db.AutoAnalyze); `--no-analyze` leaves the planner without statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from scratch_db import AutoAnalyze, fresh_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MUTATION = """mutation($input: CreateTicketInput!){ createTicket(input: $input){
  ticket { id number priority } errors { code message } } }"""
SUMMARIES = ["家里停电了", "整栋楼停电", "电线落地，很危险", "No power since 8pm", "路灯不亮",
             "Transformer humming loudly", "树枝压线", "voltage keeps dropping", "电表显示异常", "whole street is dark"]


def start_server(database_url: str, port: int, secret: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY=secret, LOG_LEVEL="WARNING")
    process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not come up")


async def run(url: str, token: str, total: int, concurrency: int, seed: int) -> tuple[list[float], int]:
    rng = random.Random(seed)
    run_id = time.time_ns()  # a second run against the same server (--url) must create, not replay, its tickets
    inputs = [{"kind": "FAULT_REPAIR", "channel": rng.choice(["HOTLINE", "APP", "WECHAT", "WEB", "SMS"]),
               "summary": rng.choice(SUMMARIES), "clientRequestId": f"bench-{seed}-{run_id}-{i}",
               "location": {"lat": 30.6 + rng.uniform(-0.3, 0.3), "lng": 114.3 + rng.uniform(-0.3, 0.3)},
               "contactPhone": f"13{rng.randrange(10**9):09d}"} for i in range(total)]
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for item in inputs:
        queue.put_nowait(item)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            item = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post(url, json={"query": MUTATION, "variables": {"input": item}})
            latencies.append(time.perf_counter() - started)
            body = response.json()
            if response.status_code != 200 or body["data"]["createTicket"]["errors"]:
                errors += 1

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies, errors


WRK_SCRIPT = r"""
local summaries = {SUMMARIES}
local channels = {"HOTLINE", "APP", "WECHAT", "WEB", "SMS"}
local threads = {}
counter, errors = 0, 0  -- globals: each thread has its own, read back by done()
local prefix = "wrk-" .. tostring(os.time()) .. "-"
function setup(thread) table.insert(threads, thread); thread:set("id", #threads) end
function init(args) math.randomseed(os.time() + id) end
function request()
  counter = counter + 1
  local body = string.format('{"query": %s, "variables": {"input": {"kind": "FAULT_REPAIR", "channel": "%s", '
    .. '"summary": "%s", "clientRequestId": "%s%d-%d", "location": {"lat": %.5f, "lng": %.5f}, '
    .. '"contactPhone": "13%09d"}}}', MUTATION, channels[math.random(#channels)],
    summaries[math.random(#summaries)], prefix, id, counter, 30.3 + math.random() * 0.6,
    114.0 + math.random() * 0.6, math.random(0, 999999999))
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json",
                                          ["Authorization"] = "Bearer TOKEN"}, body)
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"errors":[]', 1, true) then errors = errors + 1 end
end
function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + thread:get("errors") end
  io.write(string.format("RESULT %d %.3f %.3f %.3f %.3f %d\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, failed))
end
"""


def run_wrk(url: str, token: str, duration: int, concurrency: int) -> str:
    """createTicket from wrk for `duration` seconds with `concurrency` connections; one summary line."""
    import json

    lua = WRK_SCRIPT.replace("{SUMMARIES}", "{" + ", ".join(json.dumps(s, ensure_ascii=False) for s in SUMMARIES)
                             + "}").replace("MUTATION", json.dumps(json.dumps(MUTATION))).replace("TOKEN", token)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    out = subprocess.run(["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{duration}s", "--timeout", "10s",
                          "-s", script.name, url.rsplit("/graphql", 1)[0]], capture_output=True, text=True)
    if out.returncode != 0 or "RESULT" not in out.stdout:
        raise SystemExit(f"wrk failed: {out.stderr or out.stdout}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    requests, seconds, p50, p95, p99, errors = line.split()[1:]
    return (f"createTicket (wrk) x{requests}, {concurrency} in flight: {int(requests) / float(seconds):.0f} tickets/s, "
            f"p50 {float(p50):.1f} ms, p95 {float(p95):.1f} ms, p99 {float(p99):.1f} ms, errors {errors}")


def batch_sizes(url: str, token: str) -> str:
    """How intake's group commit wrote the reports: batches and their mean size, from the server's /metrics."""
    text = httpx.get(url.rsplit("/graphql", 1)[0] + "/metrics", headers={"Authorization": f"Bearer {token}"},
                     timeout=10).text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("gridcrew_intake_batch_size_") and " " in line}
    count, total = values.get("gridcrew_intake_batch_size_count", 0), values.get("gridcrew_intake_batch_size_sum", 0)
    return f"intake transactions: {count:.0f}, mean reports per transaction {total / count:.1f}" if count \
        else "intake transactions: not reported by this server"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="GraphQL URL of a running server (default: start one)")
    parser.add_argument("--token", help="dispatcher token for --url")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gridcrew_bench")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--client", choices=["httpx", "wrk"], default="httpx")
    parser.add_argument("--duration", type=int, default=20, help="seconds per run with --client wrk")
    parser.add_argument("--no-analyze", action="store_true",
                        help="where the server's autovacuum is off, leave the scratch database without statistics "
                             "(by default the bench analyzes it as autovacuum would)")
    args = parser.parse_args()
    if args.client == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("--client wrk needs wrk: apt-get install wrk")

    server = None
    url, token = args.url, args.token
    if url is None:
        secret = "bench-secret-" + "x" * 24
        fresh_database(args.database_url)
        server = start_server(args.database_url, args.port, secret)
        url = f"http://127.0.0.1:{args.port}/graphql"
        from api.auth import Role, issue_token
        from core.settings import Settings

        token = issue_token(Role.DISPATCHER, settings=Settings(secret_key=secret))
    analyze = AutoAnalyze(args.database_url) if server is not None and not args.no_analyze else None
    try:
        with analyze or contextlib.nullcontext():
            asyncio.run(run(url, token or "", 100, 4, seed=0))  # warm-up
            for seed, concurrency in enumerate(args.concurrency, start=1):
                if args.client == "wrk":
                    print(run_wrk(url, token or "", args.duration, concurrency), flush=True)
                    continue
                started = time.perf_counter()
                latencies, errors = asyncio.run(run(url, token or "", args.requests, concurrency, seed))
                elapsed = time.perf_counter() - started
                cuts = statistics.quantiles(latencies, n=100)
                print(f"createTicket x{args.requests}, {concurrency} in flight: {args.requests / elapsed:.0f} "
                      f"tickets/s, p50 {cuts[49] * 1000:.1f} ms, p95 {cuts[94] * 1000:.1f} ms, "
                      f"p99 {cuts[98] * 1000:.1f} ms, errors {errors}")
            print(batch_sizes(url, token or ""), flush=True)
        if analyze is not None and analyze.active:
            print(f"statistics: autovacuum is off on this server; the bench ran ANALYZE on a table {analyze.analyzed} "
                  "times, as autovacuum would (--no-analyze: never)", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
