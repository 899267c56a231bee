"""Live-updates relay throughput: how fast the outbox (`sync_change`) is published to Redis and delivered to the
subscribers of a process (mobile_sync/live.py), on a scratch PostgreSQL database and the local Redis.

    python bench/relay.py                                   # 100 000-change backlog, then 10 s of writers
    python bench/relay.py --backlog 200000 --writers 4 --duration 20 --subscribers 2000 --busy 0.5

Two phases against one `LiveUpdates` (relay, Redis listener and hub) with `--subscribers` customers each
following one ticket the way `ticketUpdated` does:
  backlog  one transaction commits `--backlog` changes at once (a relay that was down, a bulk re-plan); the
           time until the relay has published them all and the hub has delivered them all;
  stream   `--writers` threads commit small transactions (`--rows` changes each, the commit wakes the relay as
           in a server) as fast as they can for `--duration` s; written/s, published/s, delivered/s, the relay's
           lag when the writers stop and how long it takes to catch up.
`--busy F` keeps the event loop busy a share F of the time (a loaded server's requests and subscriptions).
Then checks from the log: every change published and delivered once, every subscriber got exactly its
ticket's customer changes (nothing skipped, nothing repeated). Scratch database `gridcrew_relay_bench`
(dropped at the end); base URL from BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from scratch_db import fresh_database
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# What mobile_sync.changes writes on PostgreSQL: numbered and inserted in one statement, in commit order.
WRITE = text(
    "WITH counter AS (INSERT INTO sync_counter (name, value) VALUES ('change', :n) "
    "ON CONFLICT (name) DO UPDATE SET value = sync_counter.value + :n RETURNING value) "
    "INSERT INTO sync_change (seq, topic, crew_id, ticket_id, at, payload) "
    "SELECT counter.value - :n + r.k, r.topic, r.crew_id, r.ticket_id, now(), r.payload "
    "FROM counter, json_to_recordset(CAST(:rows AS json)) AS r(k int, topic text, crew_id int, ticket_id int, "
    "payload json) RETURNING seq")


def rows_for(rng: random.Random, tickets: int, count: int) -> list[dict[str, Any]]:
    """`count` changes as ticket changes make them: the board, the crew, the customer (with its payload)."""
    rows: list[dict[str, Any]] = []
    while len(rows) < count:
        ticket = rng.randrange(1, tickets + 1)
        rows.append({"topic": "BOARD", "crew_id": None, "ticket_id": ticket, "payload": None})
        rows.append({"topic": "CREW", "crew_id": ticket % 500 + 1, "ticket_id": ticket, "payload": None})
        rows.append({"topic": "CUSTOMER", "crew_id": None, "ticket_id": ticket, "payload": {
            "changed": ["status"], "status": "ON_SITE", "eta": None, "etr": "2026-12-01T18:00:00+00:00",
            "power_restored_at": None}})
    return [dict(r, k=i + 1) for i, r in enumerate(rows[:count])]


def write(engine: Any, rows: list[dict[str, Any]]) -> int:
    with engine.begin() as connection:
        seqs = connection.execute(WRITE, {"n": len(rows), "rows": json.dumps(rows)}).scalars().all()
    return int(max(seqs))


def relayed(engine: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT value FROM sync_counter WHERE name = 'relay'")).scalar() or 0)


class Followers:
    """Customers following one ticket each, consuming the hub like `ticketUpdated` does."""

    def __init__(self, live: Any, count: int) -> None:
        self.live, self.got = live, {t: [] for t in range(1, count + 1)}
        self.tasks = [asyncio.create_task(self._follow(t)) for t in self.got]

    async def _follow(self, ticket: int) -> None:
        queue = self.live.hub.subscribe("CUSTOMER", ticket)
        try:
            while True:
                batch = [c for c in await queue.get() if c.topic == "CUSTOMER" and c.ticket_id == ticket]
                self.got[ticket].extend(c.seq for c in batch)
        finally:
            self.live.hub.unsubscribe(queue)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def busy(share: float) -> None:
    """Hold the event loop a share of the time, in 20 ms slices (a loaded server's other work)."""
    while True:
        until = time.perf_counter() + 0.02 * share
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0.02 * (1 - share))


async def wait_for(engine: Any, live: Any, last: int, timeout: float) -> tuple[float | None, float | None]:
    """Seconds until the relay published up to `last` and until the hub delivered it (None: not in time)."""
    started = time.perf_counter()
    published = delivered = None
    while time.perf_counter() - started < timeout and (published is None or delivered is None):
        if published is None and await asyncio.to_thread(relayed, engine) >= last:
            published = time.perf_counter() - started
        if delivered is None and live.hub.delivered >= last:
            delivered = time.perf_counter() - started
        await asyncio.sleep(0.02)
    return published, delivered


async def bench(args: argparse.Namespace, engine: Any, redis_url: str) -> dict[str, Any]:
    from mobile_sync.live import LiveUpdates

    live = LiveUpdates(engine, redis_url=redis_url)
    await live.start()
    for _ in range(100):  # the first relay sets its mark (at the present) on its first pass
        if await asyncio.to_thread(relayed, engine) or live.hub.delivered:
            break
        await asyncio.sleep(0.05)
    followers = Followers(live, args.subscribers)
    messages = [0]  # batches the hub got (Redis messages)
    deliver = live.hub.deliver

    def counted(changes: list[Any]) -> None:
        messages[0] += 1
        deliver(changes)

    live.hub.deliver = counted  # type: ignore[method-assign]
    load = asyncio.create_task(busy(args.busy)) if args.busy > 0 else None
    out: dict[str, Any] = {}
    rng = random.Random(1)
    try:
        # ---- backlog: one big commit
        rows = rows_for(rng, args.subscribers, args.backlog)
        first = await asyncio.to_thread(relayed, engine)
        last = await asyncio.to_thread(write, engine, rows)
        live.kick()
        published, delivered = await wait_for(engine, live, last, args.timeout)
        out["backlog"] = (last - first, published, delivered)

        # ---- stream: small commits as fast as the writers go, each waking the relay
        stop = threading.Event()
        written = [0] * args.writers

        def writer(n: int) -> None:
            wrng = random.Random(n + 10)
            while not stop.is_set():
                write(engine, rows_for(wrng, args.subscribers, args.rows))
                live.kick()
                written[n] += args.rows

        start_seq = await asyncio.to_thread(relayed, engine)
        start_delivered, start_messages = live.hub.delivered, messages[0]
        threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(args.writers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        await asyncio.sleep(args.duration)
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join)
        elapsed = time.perf_counter() - started
        at_stop = await asyncio.to_thread(relayed, engine)
        delivered_at_stop, batches = live.hub.delivered, messages[0] - start_messages
        with engine.connect() as connection:
            last = int(connection.execute(text("SELECT MAX(seq) FROM sync_change")).scalar() or 0)
        catch_up = await wait_for(engine, live, last, args.timeout)
        out["stream"] = (sum(written), elapsed, at_stop - start_seq, delivered_at_stop - start_delivered,
                         last - at_stop, catch_up, batches)
        await asyncio.sleep(0.2)
    finally:
        if load is not None:
            load.cancel()
        await followers.stop()
        await live.stop()
    # ---- the check: every subscriber got exactly its ticket's customer changes of the two phases
    with engine.connect() as connection:
        expected: dict[int, list[int]] = {}
        for seq, ticket in connection.execute(text(
                "SELECT seq, ticket_id FROM sync_change WHERE topic = 'CUSTOMER' AND seq > :first ORDER BY seq"),
                {"first": first}):
            expected.setdefault(ticket, []).append(seq)
    skipped = sum(len(set(seqs) - set(followers.got.get(t, []))) for t, seqs in expected.items())
    repeated = sum(len(got) - len(set(got)) for got in followers.got.values())
    out["check"] = (skipped, repeated, live.hub.delivered, last)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=100_000, help="changes committed at once")
    parser.add_argument("--writers", type=int, default=4, help="threads committing small transactions")
    parser.add_argument("--rows", type=int, default=3, help="changes per small transaction")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of writers")
    parser.add_argument("--subscribers", type=int, default=1000, help="customers following one ticket each")
    parser.add_argument("--busy", type=float, default=0.0, help="share of time the event loop is busy elsewhere")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up waiting for the relay after this")
    args = parser.parse_args()

    from core.db import make_engine, migrate, normalise_url

    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or \
        "postgresql://postgres@127.0.0.1:5432/postgres"
    url = normalise_url(str(make_url(normalise_url(base)).set(database="gridcrew_relay_bench").render_as_string(
        hide_password=False)))
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    fresh_database(url)
    engine = make_engine(url)
    try:
        migrate(engine)
        out = asyncio.run(bench(args, engine, redis_url))
    finally:
        engine.dispose()
        fresh_database(url, drop_only=True)
    count, published, delivered = out["backlog"]

    def rate(n: int, seconds: float | None) -> str:
        return f"{n / seconds:,.0f}/s ({seconds:.2f} s)" if seconds else "not in time"

    print(f"PostgreSQL + Redis, {args.subscribers} followers, event loop busy {args.busy:.0%}, {os.cpu_count()} CPUs")
    print(f"backlog  {count:,} changes in one commit: published {rate(count, published)}, "
          f"delivered {rate(count, delivered)}")
    written, elapsed, published_n, delivered_n, lag, (_caught_p, caught_d), batches = out["stream"]
    print(f"stream   {args.writers} writers x {args.rows} changes/commit, {elapsed:.1f} s: written "
          f"{written / elapsed:,.0f}/s, published {published_n / elapsed:,.0f}/s, delivered "
          f"{delivered_n / elapsed:,.0f}/s in {batches:,} messages ({delivered_n / max(batches, 1):,.0f} changes "
          f"each); behind {lag:,} when the writers stopped, caught up in "
          + (f"{caught_d:.2f} s" if caught_d is not None else "not in time"))
    skipped, repeated, hub, last = out["check"]
    print(f"check    followers skipped {skipped}, repeated {repeated}; hub delivered {hub:,} of {last:,}")
    if skipped or repeated or hub != last:
        sys.exit(1)


if __name__ == "__main__":
    main()
