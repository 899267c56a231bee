"""Real server processes for the reliability tests: a fresh PostgreSQL schema, `gridcrew serve` subprocesses on
free ports (each in its own process group, so SIGKILL takes its solver children too), a GraphQL client, a
private redis-server, a TCP proxy in front of PostgreSQL that can be cut, and row locks held by the test to
stop a server's transaction at a chosen point.

Server connections are named `<schema>-srv` in pg_stat_activity, the test's own `<schema>`; both are ended
before the schema is dropped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from api.auth import Role, issue_token
from core.db import drop_schema, make_engine, migrate, normalise_url
from core.settings import Settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
SECRET = "reliability-test-secret-" + "r" * 16
SETTINGS = Settings(secret_key=SECRET, gridcrew_env="test")
ROOT = Path(__file__).resolve().parents[2]
LOGS = Path(os.environ.get("TMPDIR", "/tmp"))

requires_postgresql = pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PostgreSQL: set TEST_DATABASE_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = 15.0, every: float = 0.05) -> Any:
    """Poll `check` until it returns something true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(every)


def token(role: Role = Role.DISPATCHER, crew_id: int | None = None, device_id: str | None = None) -> str:
    return issue_token(role, crew_id=crew_id, device_id=device_id, settings=SETTINGS)


# ------------------------------------------------------------------ a schema of its own


@dataclass
class Scratch:
    """A migrated schema: `engine` for the test itself, `server_url` for `DATABASE_URL` of the servers."""

    schema: str
    engine: Engine
    base_url: str

    @property
    def server_app(self) -> str:
        return f"{self.schema}-srv"

    def server_url(self, host: str = "127.0.0.1", port: int = 5432) -> str:
        """The servers' DATABASE_URL, optionally through another host and port (the proxy)."""
        from sqlalchemy.engine import make_url

        # A lock the test holds for longer than this fails the server's statement instead of hanging it.
        options = quote(f"-csearch_path={self.schema} -clock_timeout=30s")
        url = make_url(self.base_url).set(host=host, port=port).render_as_string(hide_password=False)
        return f"{url}{'&' if '?' in url else '?'}options={options}&application_name={self.server_app}"

    def server_backends(self, waiting_on: str | None = None, state: str | None = None) -> list[int]:
        """The PostgreSQL backends of the servers, optionally only those waiting on `waiting_on` (Lock,
        advisory) or in `state` (e.g. 'idle in transaction')."""
        sql = "SELECT pid FROM pg_stat_activity WHERE application_name = :app"
        if waiting_on == "Lock":
            sql += " AND wait_event_type = 'Lock'"
        elif waiting_on is not None:
            sql += " AND wait_event_type = 'Lock' AND wait_event = :event"
        if state is not None:
            sql += " AND state = :state"
        with self.engine.connect() as connection:
            return [int(r[0]) for r in connection.execute(text(sql), {"app": self.server_app, "event": waiting_on,
                                                                      "state": state})]

    def terminate_server_backends(self) -> int:
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                           "WHERE application_name = :app"), {"app": self.server_app}).all()
            connection.commit()
        return len(rows)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text(sql), params)]


@contextlib.contextmanager
def scratch_schema(prefix: str = "rel") -> Iterator[Scratch]:
    url = normalise_url(TEST_DATABASE_URL or "")
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, schema=schema, lock_timeout_s=30, application_name=schema)
    try:
        migrate(engine)
        yield Scratch(schema, engine, url)
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE application_name = :name"), {"name": f"{schema}-srv"})
        drop_schema(admin, schema)
        admin.dispose()


@contextlib.contextmanager
def row_locked(engine: Engine, table: str, row_id: int, mode: str = "FOR NO KEY UPDATE") -> Iterator[Connection]:
    """Hold a row lock in a transaction of the test's own until the block ends (then roll back).

    `FOR NO KEY UPDATE` stops a server's UPDATE of the row but not inserts referring to it."""
    with engine.connect() as connection:
        connection.execute(text(f"SELECT id FROM {table} WHERE id = :id {mode}"), {"id": row_id})
        try:
            yield connection
        finally:
            connection.rollback()


@contextlib.contextmanager
def plan_commits_blocked(engine: Engine, region: str = "default") -> Iterator[None]:
    """Hold the advisory lock that `commit_plan` takes for `region`, so every commit of it waits."""
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || :key))"),
                           {"key": f":gridcrew-plan:{region}"})
        try:
            yield
        finally:
            connection.rollback()


# ------------------------------------------------------------------ servers


class Server:
    """`gridcrew serve` in a process group of its own on a free port."""

    def __init__(self, database_url: str, redis_url: str | None = None, workers: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.database_url, self.redis_url, self.workers = database_url, redis_url, workers
        self.extra_env = env or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = LOGS / f"gridcrew-reliability-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def start(self, wait: bool = True) -> Server:
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "MQTT_URL"}}
        env.update({"DATABASE_URL": self.database_url, "SECRET_KEY": SECRET, "GRIDCREW_ENV": "test",
                    "LOG_LEVEL": "WARNING", **self.extra_env})
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers), "--no-migrate", "--no-notify"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        if wait:
            try:
                self.wait_healthy()
            except BaseException:
                self.stop()  # nothing of it left behind: processes, log
                raise
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_healthy(self, timeout: float = 30.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server on {self.port} exited: {self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server on {self.port} did not come up: {self.log()[-3000:]}")

    def _signal_group(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the server and everything it started (uvicorn workers, solver processes)."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self._reap()
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(10)
        self._reap()

    def _reap(self) -> None:
        # Whatever the server started and left behind (a killed supervisor's workers) goes with the group.
        if self.process is not None:
            self._signal_group(signal.SIGKILL)
        self.log_path.unlink(missing_ok=True)

    def post(self, query: str, variables: dict[str, Any] | None = None, bearer: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                              headers=headers, timeout=timeout)
        assert response.status_code in (200, 400), f"{response.status_code}: {response.text[:2000]}"
        return response.json()


@contextlib.contextmanager
def servers(*started: Server) -> Iterator[tuple[Server, ...]]:
    """Stop (and reap) the servers however the test ends."""
    try:
        yield started
    finally:
        for server in started:
            server.stop()


class InFlight:
    """A request sent from a thread, so the test can act while the server works on it."""

    def __init__(self, send: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Callable[[], Any]) -> None:
        try:
            self.result = send()
        except BaseException as exc:  # noqa: BLE001  (handed to the test by `wait`)
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float = 30.0) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("the request did not finish")
        if self.error is not None:
            raise self.error
        return self.result


# ------------------------------------------------------------------ a private Redis, a cuttable PostgreSQL


class PrivateRedis:
    """A redis-server of the test's own on a free port (never the shared one on 6379)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="gridcrew-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", self.directory],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), "private redis-server up", timeout=10)
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001  (not up yet)
        return False


class CuttableProxy:
    """A TCP proxy to PostgreSQL on a free port; `cut()` drops every connection and refuses new ones until
    `restore()`: the database seen from the server is gone and comes back."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._open = threading.Event()
        self._open.set()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._listen()
        self._thread.start()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener

    def _serve(self) -> None:
        while not self._stopped:
            listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update({client, upstream})
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(None)
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
            self._sockets.clear()

    def restore(self) -> None:
        self._listen()

    def close(self) -> None:
        self._stopped = True
        self.cut()
        self._thread.join(5)


# ------------------------------------------------------------------ a customer following a ticket live


TRACK = "subscription($n: String!, $p: String!) { ticketUpdated(number: $n, phoneLast4: $p) { status } }"


class Follower:
    """A `ticketUpdated` subscription over graphql-transport-ws, in a thread of its own; `statuses` lists what
    the server sent, the first being the ticket as it was when the subscription started."""

    def __init__(self, ws_url: str, number: str, phone_last4: str) -> None:
        self.ws_url, self.number, self.phone_last4 = ws_url, number, phone_last4
        self.statuses: list[str] = []
        self.closed_with: str | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self.wait_for(lambda s: bool(s), "the first answer of the subscription")

    def _run(self) -> None:
        import asyncio

        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001  (reported through closed_with)
            self.closed_with = repr(exc)
        with self._changed:
            self._changed.notify_all()

    async def _main(self) -> None:
        import asyncio
        import json

        import websockets

        async with websockets.connect(self.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": TRACK, "variables": {"n": self.number, "p": self.phone_last4}}}))
            while not self._stop.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except TimeoutError:
                    continue
                if message.get("type") != "next":
                    self.closed_with = json.dumps(message)[:500]
                    return
                with self._changed:
                    self.statuses.append(message["payload"]["data"]["ticketUpdated"]["status"])
                    self._changed.notify_all()

    def wait_for(self, seen: Callable[[list[str]], bool], what: str, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not seen(self.statuses):
                left = deadline - time.monotonic()
                if left <= 0 or self.closed_with is not None:
                    raise AssertionError(f"gave up waiting for {what}: got {self.statuses}, {self.closed_with}")
                self._changed.wait(left)
            return list(self.statuses)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# ------------------------------------------------------------------ seeding through the domain functions


def seed_board(db: Scratch, ctx: Any, crews: int, tickets: int) -> tuple[list[int], list[int]]:
    """Crews on shift and NORMAL fault tickets a few km apart, all NEW; returns (crew ids, ticket ids)."""
    from datetime import timedelta

    from sqlmodel import Session

    from core.clock import utcnow
    from crews.roster import NewCrew, create_crew
    from dispatch.intake import NewTicket, create_ticket

    now = utcnow()
    with Session(db.engine, expire_on_commit=False) as session:
        crew_ids = [create_crew(session, NewCrew(
            name=f"Crew {i}", skills=["lv_overhead"], home_lat=30.55 + 0.05 * i, home_lng=114.25,
            shift_start=now - timedelta(hours=1), shift_end=now + timedelta(hours=8))).id or 0 for i in range(crews)]
        ticket_ids = [create_ticket(session, ctx, NewTicket(
            kind="FAULT_REPAIR", channel="HOTLINE", summary="家里停电了", priority="NORMAL",
            lat=30.52 + 0.03 * (n % 5), lng=114.20 + 0.03 * (n // 5), contact_phone=f"1390000{n:04d}",
            reported_at=now - timedelta(hours=2)), "dispatcher").ticket.id or 0 for n in range(tickets)]
    return crew_ids, ticket_ids


@dataclass
class FieldCrew:
    crew_id: int
    device_id: str
    bearer: str
    tickets: list[tuple[int, str, str]]  # (id, number, phone last 4)


def seed_field_crew(db: Scratch, ctx: Any, jobs: int = 2) -> FieldCrew:
    """A crew on shift with a registered device and `jobs` tickets assigned to it by hand."""
    from sqlmodel import Session

    from dispatch.models import Ticket
    from dispatch.planning import AssignRequest, assign_ticket
    from mobile_sync.protocol import register_device

    (crew_id,), ticket_ids = seed_board(db, ctx, crews=1, tickets=jobs)
    with Session(db.engine, expire_on_commit=False) as session:
        device = register_device(session, crew_id, f"phone-{crew_id}")
        for ticket_id in ticket_ids:
            assign_ticket(session, AssignRequest(ticket_id=ticket_id, crew_id=crew_id), "dispatcher")
        tickets = [session.get(Ticket, t) for t in ticket_ids]
        return FieldCrew(crew_id, device.id, token(Role.CREW, crew_id=crew_id, device_id=device.id),
                         [(t.id or 0, t.number, t.phone_last4 or "") for t in tickets if t is not None])


PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) {
  results { clientMutationId applied duplicate error { code message } } errors { code message } } }"""
OPTIMIZE = """mutation($input: OptimizeDispatchInput!) { optimizeDispatch(input: $input) {
  plan { id status } errors { code message } } }"""


def status_change(cmid: str, ticket_id: int, status: str, minutes_ago: float) -> dict[str, Any]:
    from datetime import timedelta

    from core.clock import utcnow

    return {"clientMutationId": cmid, "kind": "STATUS_CHANGE", "ticketId": str(ticket_id), "status": status,
            "occurredAt": (utcnow() - timedelta(minutes=minutes_ago)).isoformat()}
