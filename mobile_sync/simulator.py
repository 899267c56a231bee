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
carried a status change to the subscriber seeing it.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

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
    concurrency: int = 100  # HTTP connections to the server


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

    @staticmethod
    def p95(values: list[float]) -> float | None:
        if not values:
            return None
        return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)

    def lines(self) -> list[str]:
        p95_push = self.p95(self.push_seconds)
        p95_live = self.p95(self.field_to_subscriber)
        return [
            f"devices {self.devices}, mutations {self.mutations}, push requests {self.pushes} in {self.elapsed:.1f} s",
            f"pushes/s {self.pushes / self.elapsed:.1f}, mutations/s {self.mutations / self.elapsed:.1f}",
            f"p95 push latency {p95_push * 1000:.0f} ms" if p95_push is not None else "p95 push latency: no pushes",
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


# ------------------------------------------------------------------ devices


class SimDevice:
    def __init__(self, spec: SimDeviceSpec, config: SimConfig, client: httpx.AsyncClient, rng: random.Random,
                 stats: dict[str, Any]) -> None:
        self.spec, self.config, self.client, self.rng, self.stats = spec, config, client, rng, stats
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
        except httpx.HTTPError:
            self.stats["transport_errors"] += 1
            return  # nothing acknowledged: the whole batch goes again later
        self.stats["push_seconds"].append(time.perf_counter() - started)
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
        for _attempt in range(20):  # the first pull: the jobs (retried like a phone would)
            try:
                await self._gql(PULL, {"d": self.spec.device_id})
                break
            except httpx.HTTPError:
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
                 ready: asyncio.Event, stop: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[attr-defined]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": TRACK, "variables": {"n": number, "p": digits}}}))
        await ws.recv()  # the view now
        ready.set()
        seen: set[str] = set()
        while not stop.is_set():
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            except websockets.ConnectionClosed:  # counted, not fatal: the report says how many dropped
                stats["subscribers_dropped"] += 1
                return
            if message.get("type") != "next":
                continue
            status = message["payload"]["data"]["ticketUpdated"]["status"]
            if status not in seen:
                seen.add(status)
                stats["seen_at"][(ticket_id, status)] = time.time()


# ------------------------------------------------------------------ the run


async def simulate(url: str, specs: list[SimDeviceSpec], config: SimConfig) -> tuple[dict[str, Any], float]:
    stats: dict[str, Any] = {"push_seconds": [], "pushes": 0, "refused": [], "batch_errors": [], "lost_answers": 0,
                             "transport_errors": 0, "sent_at": {}, "seen_at": {}, "offline_spells": 0,
                             "subscribers_dropped": 0}
    rng = random.Random(config.seed)
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        devices = [SimDevice(s, config, client, random.Random(rng.random()), stats) for s in specs]
        stop = asyncio.Event()
        watchers = []
        ws_url = url.replace("http", "ws", 1).rstrip("/") + "/graphql"
        for spec in specs[: config.subscribers]:
            ticket_id, number, digits = spec.tickets[0]
            ready = asyncio.Event()
            watchers.append((asyncio.create_task(follow(ws_url, number, digits, ticket_id, stats, ready, stop)),
                             ready))
        for task, ready in watchers:
            waiter = asyncio.ensure_future(ready.wait())
            await asyncio.wait([waiter, task], timeout=60, return_when=asyncio.FIRST_COMPLETED)
            if task.done() and task.exception() is not None:
                raise RuntimeError("a customer subscriber failed") from task.exception()
            if not ready.is_set():
                raise TimeoutError("a customer subscriber got no first answer in 60 s")
        started = time.monotonic()
        await asyncio.gather(*(d.run(started + config.duration) for d in devices))
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.5 if watchers else 0)  # let the last live updates arrive
        stop.set()
        for task, _ready in watchers:
            await asyncio.gather(task, return_exceptions=True)
    stats["made"] = {d.spec.device_id: d.made for d in devices}
    return stats, elapsed


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
    stats, elapsed = asyncio.run(simulate(url, specs, config))
    lost, duplicated, details = verify(engine, stats["made"])
    latencies = [stats["seen_at"][key] - sent for key, sent in stats["sent_at"].items() if key in stats["seen_at"]]
    refused = len(stats["refused"]) + sum(len(e) for e in stats["batch_errors"])
    details += [f"refused: {d} {m['clientMutationId']} {e}" for d, m, e in stats["refused"][:20]]
    return SimReport(devices=len(specs), mutations=sum(len(m) for m in stats["made"].values()),
                     pushes=stats["pushes"], push_seconds=stats["push_seconds"], elapsed=elapsed, lost=lost,
                     duplicated=duplicated, refused=refused, field_to_subscriber=[max(0.0, v) for v in latencies],
                     details=details, answers_lost=stats["lost_answers"], offline_spells=stats["offline_spells"],
                     subscribers_dropped=stats["subscribers_dropped"], transport_errors=stats["transport_errors"])
