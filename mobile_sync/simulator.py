"""A crew-device simulator: N devices work their jobs against a running server, drop offline at random, replay
their queues with duplicates and reordering, and the database is then checked for exactly-once application.

Each device pulls its jobs, then for each job produces EN_ROUTE, GPS fixes, ON_SITE, a NOTE and RESOLVED. Its
queue of unacknowledged mutations is pushed while online (shuffled, with already acknowledged mutations mixed
in as duplicates); some answers are "lost" (the device goes offline after sending) so the same batch is sent
again later. At the end every device comes online and drains its queue. `verify` then reads the database:

  lost        mutations a device made that the server has no record of, or recorded without their effect
              (a status without its history event, a GPS fix without its breadcrumb);
  duplicated  effects applied more than once (two history events for one status of one job, two breadcrumbs
              for one fix) or more ledger rows than mutations;
  refused     mutations answered with an error (the simulator only makes valid ones, so this must be 0 too).

Optional customer subscribers (`ticketUpdated` over graphql-transport-ws) measure the time from the push that
carried a status change to the subscriber seeing it (both ends stamp the wall clock of this machine).

The simulator must not be what a benchmark measures: devices talk to the server through `Http`, a small HTTP/1.1
keep-alive client (a bounded set of connections handed out in O(1); httpx's pool scans all its connections for
every request, which made the client, not the server, the bottleneck at 1 000 devices), and with
`processes` > 1 the devices are dealt out to that many OS processes, each with its own event loop, connections
and customers, started together once every customer is subscribed; their figures are merged and the exactly-once
check runs over all devices. With `ramp_seconds` the devices come online at random over that time; without it
they all pull and push in the same instant, a herd that the push latency's p95 then measures. The final sync
(every device sending its leftover queue at once, after `duration`) is a herd by design: reported apart.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.clock import utcnow
from crews.models import Crew
from dispatch.models import Assignment, Ticket
from mobile_sync.models import ClientMutation, CrewBreadcrumb, Device

PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) {
  results { clientMutationId applied duplicate error { code message } } errors { code message } } }"""
PULL = """query($d: ID!, $s: String) { syncPull(deviceId: $d, since: $s) {
  cursor hasMore tickets { id status } removedTicketIds } }"""
TRACK = "subscription($n: String!, $p: String!) { ticketUpdated(number: $n, phoneLast4: $p) { status } }"


@dataclass
class SimConfig:
    devices: int = 10
    offline_rate: float = 0.3  # share of time a device is offline
    duration: float = 60.0  # seconds of field work (draining the queues comes after)
    jobs_per_device: int = 3
    gps_fixes: int = 3  # per leg
    duplicate_rate: float = 0.2  # share of acknowledged mutations sent again
    lost_answer_rate: float = 0.1  # pushes whose answer never reaches the device
    step_seconds: float = 0.5  # a device's think time between actions
    batch_max: int = 50
    subscribers: int = 0  # customers following tickets live
    seed: int = 7
    concurrency: int | None = None  # HTTP connections per process; None: one per device (as phones), at most 250
    processes: int = 1  # OS processes driving the devices (see default_processes)
    ramp_seconds: float = 0.0  # devices come online at random over this long, not all at the same instant


def default_processes(devices: int) -> int:
    """Half the machine's CPUs (the server under test gets the other half), at most one per 100 devices."""
    return max(1, min((os.cpu_count() or 1) // 2, 8, -(-devices // 100)))


@dataclass
class SimDeviceSpec:
    crew_id: int
    device_id: str
    token: str
    tickets: list[tuple[int, str, str]]  # (id, number, phone last 4)


@dataclass
class SimReport:
    devices: int
    mutations: int
    pushes: int
    push_seconds: list[float]
    elapsed: float
    lost: int
    duplicated: int
    refused: int
    field_to_subscriber: list[float] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    answers_lost: int = 0  # pushes whose answer the device "lost" (their mutations were sent again)
    subscribers_dropped: int = 0
    transport_errors: int = 0
    offline_spells: int = 0
    processes: int = 1
    field_push_seconds: list[float] = field(default_factory=list)  # pushes during the field work
    final_push_seconds: list[float] = field(default_factory=list)  # pushes of the final sync, all devices at once

    @staticmethod
    def p95(values: list[float]) -> float | None:
        if not values:
            return None
        return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)

    @staticmethod
    def _ms(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds * 1000:.0f} ms"

    def lines(self) -> list[str]:
        p95_push = self.p95(self.push_seconds)
        p95_live = self.p95(self.field_to_subscriber)
        return [
            f"devices {self.devices} in {self.processes} simulator process(es), mutations {self.mutations}, "
            f"push requests {self.pushes} in {self.elapsed:.1f} s",
            f"pushes/s {self.pushes / self.elapsed:.1f}, mutations/s {self.mutations / self.elapsed:.1f}",
            f"p50 / p95 push latency {statistics.median(self.push_seconds) * 1000:.0f} / {p95_push * 1000:.0f} ms"
            if p95_push is not None else "p95 push latency: no pushes",
            f"  during the field work p95 {self._ms(self.p95(self.field_push_seconds))} over "
            f"{len(self.field_push_seconds)}, final sync p95 {self._ms(self.p95(self.final_push_seconds))} over "
            f"{len(self.final_push_seconds)}",
            f"p95 field change -> subscriber {p95_live * 1000:.0f} ms ({len(self.field_to_subscriber)} samples)"
            if p95_live is not None else "field change -> subscriber: no subscribers",
            f"answers lost {self.answers_lost}, offline spells {self.offline_spells}, "
            f"subscribers dropped {self.subscribers_dropped}, transport errors {self.transport_errors}",
            f"lost {self.lost}, duplicated {self.duplicated}, refused {self.refused}",
        ]


# ------------------------------------------------------------------ seeding


def seed(engine: Engine, config: SimConfig, token_for: Any, run: str | None = None) -> list[SimDeviceSpec]:
    """N crews with one device each and `jobs_per_device` assigned fault tickets, written in bulk."""
    run = run or uuid.uuid4().hex[:6]
    rng = random.Random(config.seed)
    now = utcnow()
    specs: list[SimDeviceSpec] = []
    with Session(engine, expire_on_commit=False) as session:
        crews = [Crew(name=f"sim {run} {i}", skills=["lv_overhead"], home_lat=30.4 + rng.random() * 0.4,
                      home_lng=114.0 + rng.random() * 0.5, shift_start=now - timedelta(hours=1),
                      shift_end=now + timedelta(hours=10)) for i in range(config.devices)]
        session.add_all(crews)
        session.flush()
        devices = [Device(id=f"sim-{run}-{i}", crew_id=c.id or 0) for i, c in enumerate(crews)]
        session.add_all(devices)
        tickets: list[Ticket] = []
        for crew in crews:
            for _ in range(config.jobs_per_device):
                phone = f"139{rng.randrange(10**8):08d}"
                tickets.append(Ticket(kind="FAULT_REPAIR", channel="HOTLINE", priority="NORMAL", status="ASSIGNED",
                                      summary=f"simulated fault ({run})", area_type="URBAN",
                                      lat=crew.home_lat + rng.uniform(-0.05, 0.05),
                                      lng=crew.home_lng + rng.uniform(-0.05, 0.05), contact_phone=phone,
                                      phone_last4=phone[-4:], created_at=now - timedelta(hours=1),
                                      updated_at=now - timedelta(hours=1)))
        session.add_all(tickets)
        session.flush()
        assignments = []
        for index, ticket in enumerate(tickets):
            crew = crews[index // config.jobs_per_device]
            assignments.append(Assignment(ticket_id=ticket.id or 0, crew_id=crew.id or 0,
                                          sequence=index % config.jobs_per_device, planned_arrival=now,
                                          planned_finish=now + timedelta(hours=1), active=True, reason="simulation"))
        session.add_all(assignments)
        session.commit()
        for i, (crew, device) in enumerate(zip(crews, devices, strict=True)):
            mine = tickets[i * config.jobs_per_device:(i + 1) * config.jobs_per_device]
            specs.append(SimDeviceSpec(crew.id or 0, device.id, token_for(crew.id, device.id),
                                       [(t.id or 0, t.number, t.phone_last4 or "") for t in mine]))
    return specs


# ------------------------------------------------------------------ the devices' HTTP client


class TransportError(Exception):
    """No usable answer (connection refused or lost, timeout, an HTTP error status): nothing was acknowledged."""


class _Stale(Exception):
    """A kept-alive connection the server had already closed: nothing was sent, try a fresh one."""


class Http:
    """A small HTTP/1.1 client for JSON POSTs to one server: up to `connections` kept-alive connections, handed
    out last-in first-out in O(1); a connection idle longer than `idle_seconds` (below uvicorn's 5 s keep-alive)
    is closed rather than reused."""

    def __init__(self, url: str, connections: int = 100, timeout: float = 120.0, idle_seconds: float = 4.0) -> None:
        parsed = urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.timeout, self.idle_seconds = timeout, idle_seconds
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post_json(self, path: str, body: bytes, headers: bytes = b"") -> Any:
        """POST `body` (JSON) with extra header lines `headers`; the decoded JSON answer."""
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n").encode() + headers + b"\r\n" + body
        async with self._slots:
            for _attempt in range(3):
                reader, writer, reused = await self._connection()
                try:
                    async with asyncio.timeout(self.timeout):
                        status, keep, data = await self._exchange(reader, writer, request)
                except _Stale as exc:
                    writer.close()
                    if reused:
                        continue
                    raise TransportError("the server closed the connection without answering") from exc
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                    writer.close()
                    if reused and isinstance(exc, ConnectionResetError | BrokenPipeError):
                        continue
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                if keep:
                    self._idle.append((reader, writer, time.monotonic()))
                else:
                    writer.close()
                if status >= 400:
                    raise TransportError(f"HTTP {status}")
                return json.loads(data)
        raise TransportError("the server keeps closing connections")

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since < self.idle_seconds and not reader.at_eof():
                return reader, writer, True
            writer.close()
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=2**22)
        except OSError as exc:
            raise TransportError(f"cannot connect: {exc}") from exc
        return reader, writer, False

    @staticmethod
    async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        request: bytes) -> tuple[int, bool, bytes]:
        writer.write(request)
        await writer.drain()
        line = await reader.readline()
        if not line:
            raise _Stale()
        status = int(line.split(b" ", 2)[1])
        length, chunked, keep = 0, False, True
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                keep = value != b"close"
        if not chunked:
            return status, keep, await reader.readexactly(length)
        parts = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        return status, keep, b"".join(parts)

    async def close(self) -> None:
        for _reader, writer, _since in self._idle:
            writer.close()
        self._idle.clear()


# ------------------------------------------------------------------ devices


class SimDevice:
    def __init__(self, spec: SimDeviceSpec, config: SimConfig, client: Http | httpx.AsyncClient, rng: random.Random,
                 stats: dict[str, Any]) -> None:
        self.spec, self.config, self.client, self.rng, self.stats = spec, config, client, rng, stats
        self._auth = f"Authorization: Bearer {spec.token}\r\n".encode()
        self.queue: list[dict[str, Any]] = []
        self.acked: list[dict[str, Any]] = []
        self.made: dict[str, dict[str, Any]] = {}
        self.online = True
        self.offline_until = 0.0
        self.counter = 0
        self.work = self._plan()

    def _plan(self) -> list[tuple[str, Any]]:
        steps: list[tuple[str, Any]] = []
        for ticket_id, _number, _digits in self.spec.tickets:
            steps.append(("STATUS_CHANGE", (ticket_id, "EN_ROUTE")))
            steps += [("LOCATION", ticket_id)] * self.config.gps_fixes
            steps.append(("STATUS_CHANGE", (ticket_id, "ON_SITE")))
            steps.append(("NOTE", ticket_id))
            steps.append(("STATUS_CHANGE", (ticket_id, "RESOLVED")))
        return steps

    def _make(self, kind: str, arg: Any) -> dict[str, Any]:
        self.counter += 1
        m: dict[str, Any] = {"clientMutationId": f"{self.spec.device_id}-{self.counter}", "kind": kind,
                             "occurredAt": utcnow().isoformat()}
        if kind == "STATUS_CHANGE":
            m["ticketId"], m["status"] = str(arg[0]), arg[1]
        elif kind == "LOCATION":
            m["location"] = {"lat": 30.4 + self.rng.random() * 0.4, "lng": 114.0 + self.rng.random() * 0.5}
        else:
            m["ticketId"], m["note"] = str(arg), "replaced a fuse"
        self.made[m["clientMutationId"]] = m
        return m

    async def _gql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Raises TransportError (or httpx.HTTPError with an httpx client) when nothing usable came back."""
        if isinstance(self.client, Http):
            body = json.dumps({"query": query, "variables": variables}, separators=(",", ":")).encode()
            return await self.client.post_json("/graphql", body, self._auth)
        response = await self.client.post("/graphql", json={"query": query, "variables": variables},
                                          headers={"Authorization": f"Bearer {self.spec.token}"})
        response.raise_for_status()
        return response.json()

    async def push(self, final: bool = False) -> None:
        fresh = self.queue[: self.config.batch_max]
        if not fresh:
            return
        replays = [m for m in self.acked if self.rng.random() < self.config.duplicate_rate][:10]
        batch = fresh + replays
        self.rng.shuffle(batch)  # reordering: the server orders by occurredAt
        started = time.perf_counter()
        sent_at = time.time()
        try:
            body = await self._gql(PUSH, {"input": {"deviceId": self.spec.device_id, "mutations": batch}})
        except (TransportError, httpx.HTTPError):
            self.stats["transport_errors"] += 1
            return  # nothing acknowledged: the whole batch goes again later
        seconds = time.perf_counter() - started
        self.stats["push_seconds"].append(seconds)
        # Split too: the final sync sends every device's leftover queue at the same moment (a herd, by design).
        self.stats.setdefault("final_push_seconds" if final else "field_push_seconds", []).append(seconds)
        self.stats["pushes"] += 1
        for m in fresh:
            if m["kind"] == "STATUS_CHANGE":
                self.stats["sent_at"].setdefault((int(m["ticketId"]), m["status"]), sent_at)
        if not final and self.rng.random() < self.config.lost_answer_rate:
            self.stats["lost_answers"] += 1
            return  # the answer never arrived: the device replays the same mutations later
        payload = (body.get("data") or {}).get("syncPush") or {}
        if payload.get("errors"):
            self.stats["batch_errors"].append(payload["errors"])
            return
        answered = {r["clientMutationId"]: r for r in payload.get("results", [])}
        for m in fresh:
            result = answered.get(m["clientMutationId"])
            if result is None:
                continue
            if result["error"] is not None:
                self.stats["refused"].append((self.spec.device_id, m, result["error"]))
            self.queue.remove(m)
            self.acked.append(m)

    async def run(self, deadline: float) -> None:
        if self.config.ramp_seconds > 0:
            await asyncio.sleep(self.rng.uniform(0, self.config.ramp_seconds))
        for _attempt in range(20):  # the first pull: the jobs (retried like a phone would)
            try:
                await self._gql(PULL, {"d": self.spec.device_id})
                break
            except (TransportError, httpx.HTTPError):
                self.stats["transport_errors"] += 1
                await asyncio.sleep(1.0)
        while time.monotonic() < deadline:
            now = time.monotonic()
            if self.online and self.rng.random() < self.config.offline_rate * 0.5:
                self.online, self.offline_until = False, now + self.rng.uniform(0.5, 3.0)
                self.stats["offline_spells"] += 1
            elif not self.online and now >= self.offline_until:
                self.online = True
            if self.work:
                kind, arg = self.work.pop(0)
                self.queue.append(self._make(kind, arg))
            if self.online:
                await self.push()
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.config.step_seconds)
        while self.work:  # field work not done in time is still done, then synced
            kind, arg = self.work.pop(0)
            self.queue.append(self._make(kind, arg))
        for _ in range(1000):
            if not self.queue:
                break
            await self.push(final=True)
            if self.queue:
                await asyncio.sleep(0.2)


# ------------------------------------------------------------------ customers watching


async def follow(ws_url: str, number: str, digits: str, ticket_id: int, stats: dict[str, Any],
                 ready: asyncio.Event) -> None:
    """Follow one ticket until cancelled, stamping when each status is first seen."""
    import websockets

    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[attr-defined]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": TRACK, "variables": {"n": number, "p": digits}}}))
        await ws.recv()  # the view now
        ready.set()
        seen: set[str] = set()
        while True:
            try:
                message = json.loads(await ws.recv())
            except websockets.ConnectionClosed:  # counted, not fatal: the report says how many dropped
                stats["subscribers_dropped"] += 1
                return
            seen_at = time.time()
            if message.get("type") != "next":
                continue
            status = message["payload"]["data"]["ticketUpdated"]["status"]
            if status not in seen:
                seen.add(status)
                stats["seen_at"][(ticket_id, status)] = seen_at


# ------------------------------------------------------------------ the run


def new_stats() -> dict[str, Any]:
    return {"push_seconds": [], "field_push_seconds": [], "final_push_seconds": [], "pushes": 0, "refused": [],
            "batch_errors": [], "lost_answers": 0, "transport_errors": 0, "sent_at": {}, "seen_at": {},
            "offline_spells": 0, "subscribers_dropped": 0}


async def simulate(url: str, specs: list[SimDeviceSpec], config: SimConfig,
                   go: Any = None) -> tuple[dict[str, Any], float]:
    """Drive `specs` in this process; `go()` (blocking, optional) is called once every customer is subscribed
    and returns when the devices may start."""
    stats = new_stats()
    rng = random.Random(config.seed)
    client = Http(url, connections=config.concurrency or max(1, min(len(specs), 250)), timeout=120)
    devices = [SimDevice(s, config, client, random.Random(rng.random()), stats) for s in specs]
    watchers = []
    ws_url = url.replace("http", "ws", 1).rstrip("/") + "/graphql"
    try:
        for spec in specs[: config.subscribers]:
            ticket_id, number, digits = spec.tickets[0]
            ready = asyncio.Event()
            watchers.append((asyncio.create_task(follow(ws_url, number, digits, ticket_id, stats, ready)), ready))
        for task, ready in watchers:
            waiter = asyncio.ensure_future(ready.wait())
            await asyncio.wait([waiter, task], timeout=60, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task.done() and task.exception() is not None:
                raise RuntimeError("a customer subscriber failed") from task.exception()
            if not ready.is_set():
                raise TimeoutError("a customer subscriber got no first answer in 60 s")
        if go is not None:
            await asyncio.to_thread(go)
        started = time.monotonic()
        await asyncio.gather(*(d.run(started + config.duration) for d in devices))
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.5 if watchers else 0)  # let the last live updates arrive
    finally:
        for task, _ready in watchers:
            task.cancel()
        await asyncio.gather(*(task for task, _ready in watchers), return_exceptions=True)
        await client.close()
    stats["made"] = {d.spec.device_id: d.made for d in devices}
    return stats, elapsed


def _process(url: str, specs: list[SimDeviceSpec], config: SimConfig, ready: Any, go: Any, results: Any) -> None:
    """One simulator process: its share of the devices and customers; puts (stats, elapsed) or an error."""
    announced: list[int] = []

    def wait_go() -> None:
        announced.append(os.getpid())
        ready.put(os.getpid())
        go.wait()

    try:
        results.put(asyncio.run(simulate(url, specs, config, wait_go)))
    except BaseException as exc:  # the parent reports it
        if not announced:
            ready.put(os.getpid())
        results.put(f"{type(exc).__name__}: {exc}")


def simulate_processes(url: str, specs: list[SimDeviceSpec], config: SimConfig) -> tuple[dict[str, Any], float]:
    """`simulate` in `config.processes` OS processes (devices and customers dealt out round robin), merged."""
    count = max(1, min(config.processes, len(specs)))
    if count == 1:
        return asyncio.run(simulate(url, specs, config))
    context = multiprocessing.get_context("spawn")  # the parent may run threads (an in-process server)
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    shares = [specs[i::count] for i in range(count)]
    followed = [config.subscribers // count + (i < config.subscribers % count) for i in range(count)]
    configs = [replace(config, devices=len(share), subscribers=min(n, len(share)), seed=config.seed + i, processes=1)
               for i, (share, n) in enumerate(zip(shares, followed, strict=True))]
    processes = [context.Process(target=_process, daemon=True, args=(url, share, part, ready, go, results))
                 for share, part in zip(shares, configs, strict=True)]
    for process in processes:
        process.start()
    try:
        for _ in processes:  # every customer of every process is subscribed: start the devices together
            ready.get(timeout=300)
        go.set()
        outcomes = [results.get(timeout=config.duration + 1800) for _ in processes]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    failures = [o for o in outcomes if isinstance(o, str)]
    if failures:
        raise RuntimeError("a simulator process failed: " + "; ".join(failures))
    stats = new_stats()
    stats["made"] = {}
    for part, _elapsed in outcomes:
        for key, value in part.items():
            if isinstance(value, list):
                stats[key] += value
            elif isinstance(value, dict):
                stats[key].update(value)
            else:
                stats[key] += value
    return stats, max(elapsed for _part, elapsed in outcomes)


def verify(engine: Engine, made: dict[str, dict[str, dict[str, Any]]]) -> tuple[int, int, list[str]]:
    """(lost, duplicated, details) of the devices' mutations, read from the database."""
    lost = duplicated = 0
    details: list[str] = []
    device_ids = list(made)
    with Session(engine) as session:
        rows: dict[tuple[str, str], list[ClientMutation]] = {}
        for start in range(0, len(device_ids), 500):
            for row in session.exec(select(ClientMutation).where(
                    col(ClientMutation.device_id).in_(device_ids[start:start + 500]))):
                rows.setdefault((row.device_id, row.client_mutation_id), []).append(row)
        crumbs = dict(session.exec(select(CrewBreadcrumb.mutation_id, func.count()).group_by(
            col(CrewBreadcrumb.mutation_id))).all())
        ticket_ids = sorted({int(m["ticketId"]) for ms in made.values() for m in ms.values() if "ticketId" in m})
        events: dict[tuple[int, str], int] = {}
        for start in range(0, len(ticket_ids), 500):
            chunk = ticket_ids[start:start + 500]
            params = {f"t{i}": t for i, t in enumerate(chunk)}
            for ticket_id, status, count in session.connection().execute(text(
                    "SELECT ticket_id, status, COUNT(*) FROM ticket_event WHERE source = 'crew device' "
                    "AND kind = 'STATUS' AND ticket_id IN (" + ", ".join(f":t{i}" for i in range(len(chunk)))
                    + ") GROUP BY ticket_id, status"), params):
                events[(ticket_id, status)] = count
    for device_id, mutations in made.items():
        for cmid, m in mutations.items():
            found = rows.get((device_id, cmid), [])
            if not found:
                lost += 1
                details.append(f"lost: {device_id} {cmid} never reached the database")
                continue
            duplicated += len(found) - 1
            row = found[0]
            if m["kind"] == "LOCATION" and crumbs.get(row.id, 0) != 1:
                if crumbs.get(row.id, 0) == 0:
                    lost += 1
                else:
                    duplicated += crumbs[row.id] - 1
                details.append(f"breadcrumbs of {cmid}: {crumbs.get(row.id, 0)}")
            if m["kind"] == "STATUS_CHANGE" and row.applied:
                count = events.get((int(m["ticketId"]), m["status"]), 0)
                if count == 0:
                    lost += 1
                    details.append(f"lost: no history event for {cmid} {m['status']}")
    # every (ticket, status) a device reported must be in the history exactly once
    for (ticket_id, status), count in events.items():
        if count > 1:
            duplicated += count - 1
            details.append(f"duplicated: ticket {ticket_id} has {count} {status} events from devices")
    return lost, duplicated, details


def run(url: str, engine: Engine, config: SimConfig, token_for: Any) -> SimReport:
    """Seed, drive the devices against the server at `url`, verify from the database."""
    specs = seed(engine, config, token_for)
    stats, elapsed = simulate_processes(url, specs, config)
    lost, duplicated, details = verify(engine, stats["made"])
    latencies = [stats["seen_at"][key] - sent for key, sent in stats["sent_at"].items() if key in stats["seen_at"]]
    refused = len(stats["refused"]) + sum(len(e) for e in stats["batch_errors"])
    details += [f"refused: {d} {m['clientMutationId']} {e}" for d, m, e in stats["refused"][:20]]
    return SimReport(devices=len(specs), mutations=sum(len(m) for m in stats["made"].values()),
                     pushes=stats["pushes"], push_seconds=stats["push_seconds"], elapsed=elapsed, lost=lost,
                     duplicated=duplicated, refused=refused, field_to_subscriber=[max(0.0, v) for v in latencies],
                     details=details, answers_lost=stats["lost_answers"], offline_spells=stats["offline_spells"],
                     subscribers_dropped=stats["subscribers_dropped"], transport_errors=stats["transport_errors"],
                     processes=max(1, min(config.processes, len(specs))),
                     field_push_seconds=stats.get("field_push_seconds", []),
                     final_push_seconds=stats.get("final_push_seconds", []))
