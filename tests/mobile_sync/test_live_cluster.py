"""Two API processes on one PostgreSQL and one Redis: a field push to one reaches a subscriber of the other.

Needs TEST_DATABASE_URL (PostgreSQL) and Redis on REDIS_URL (default redis://127.0.0.1:6379/0); skipped only
when TEST_DATABASE_URL is unset.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text
from sqlmodel import Session

from api.auth import Role, issue_token
from core.clock import utcnow
from core.db import drop_schema, make_engine, migrate, normalise_url
from core.settings import Settings
from crews.roster import NewCrew, create_crew
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.planning import AssignRequest, assign_ticket
from mobile_sync.protocol import register_device

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "cluster-test-secret-" + "y" * 20
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PostgreSQL: set TEST_DATABASE_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def schema_url() -> Iterator[str]:
    """A migrated PostgreSQL schema of its own, as a DATABASE_URL the servers can use."""
    url = normalise_url(TEST_DATABASE_URL or "")
    schema = f"cluster_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, schema=schema)
    migrate(engine)
    engine.dispose()
    try:
        yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        drop_schema(admin, schema)
        admin.dispose()


LOGS = Path(os.environ.get("TMPDIR", "/tmp"))


def log_of(port: int) -> str:
    path = LOGS / f"gridcrew-cluster-{port}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=REDIS_URL, SECRET_KEY=SECRET,
               GRIDCREW_ENV="test", LOG_LEVEL="WARNING")
    return subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--no-migrate"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=(LOGS / f"gridcrew-cluster-{port}.log").open("wb"))


def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(150):
        if process.poll() is not None:
            raise AssertionError(f"server on {port} exited: {log_of(port)[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server on {port} did not come up")


async def follow_and_push(port_a: int, port_b: int, number: str, push: dict[str, Any], token: str) -> list[str]:
    """Subscribe to ticketUpdated on B, push ON_SITE to A, return the statuses B sent (until ON_SITE)."""
    query = """subscription($n: String!, $p: String!) { ticketUpdated(number: $n, phoneLast4: $p) { status } }"""
    statuses: list[str] = []
    async with websockets.connect(f"ws://127.0.0.1:{port_b}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": query, "variables": {"n": number, "p": "4321"}}}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        statuses.append(first["payload"]["data"]["ticketUpdated"]["status"])
        async with httpx.AsyncClient() as client:
            response = await client.post(f"http://127.0.0.1:{port_a}/graphql", json=push,
                                         headers={"Authorization": f"Bearer {token}"})
        assert response.json()["data"]["syncPush"]["results"][0]["applied"] is True, response.text
        while statuses[-1] != "ON_SITE":
            message = json.loads(await asyncio.wait_for(ws.recv(), 15))
            assert message["type"] == "next", message
            statuses.append(message["payload"]["data"]["ticketUpdated"]["status"])
    return statuses


def test_a_push_to_one_server_reaches_a_subscriber_of_another_through_redis(
        schema_url: str, intake_context: IntakeContext) -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).ping()  # Redis must be there when PostgreSQL is: a failure, not a skip
    engine = make_engine(schema_url)
    with Session(engine, expire_on_commit=False) as session:
        now = utcnow()
        crew = create_crew(session, NewCrew(name="North", skills=["lv_overhead"], home_lat=30.6, home_lng=114.26,
                                            shift_start=now - timedelta(hours=1), shift_end=now + timedelta(hours=8)))
        device = register_device(session, crew.id or 0, "north-phone")
        ticket = create_ticket(session, intake_context, NewTicket(
            kind="FAULT_REPAIR", channel="HOTLINE", summary="停电", lat=30.61, lng=114.27,
            contact_phone="13800004321", reported_at=now - timedelta(hours=1)), "dispatcher").ticket
        assign_ticket(session, AssignRequest(ticket_id=ticket.id or 0, crew_id=crew.id or 0), "dispatcher")
        number = ticket.number
    engine.dispose()
    token = issue_token(Role.CREW, crew_id=crew.id, device_id=device.id,
                        settings=Settings(secret_key=SECRET, gridcrew_env="test"))
    push = {"query": "mutation($input: SyncPushInput!) { syncPush(input: $input) { results { applied } } }",
            "variables": {"input": {"deviceId": device.id, "mutations": [{
                "clientMutationId": "arrive", "kind": "STATUS_CHANGE", "ticketId": str(ticket.id),
                "status": "ON_SITE", "occurredAt": utcnow().isoformat()}]}}}

    port_a, port_b = free_port(), free_port()
    servers = [start_server(schema_url, port_a), start_server(schema_url, port_b)]
    try:
        wait_healthy(port_a, servers[0])
        wait_healthy(port_b, servers[1])
        statuses = asyncio.run(follow_and_push(port_a, port_b, number, push, token))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    assert statuses[0] == "ASSIGNED" and statuses[-1] == "ON_SITE"
