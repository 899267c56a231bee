"""PostgreSQL and Redis failing under a running server: requests fail cleanly (an error in the payload, no
trace, no hang) and the server recovers by itself when the dependency is back; with Redis down writes still
succeed and nothing is lost from the outbox.

PostgreSQL is cut with pg_terminate_backend on the server's sessions and with a TCP proxy the test closes and
reopens; Redis is a private redis-server on a free port that the test stops and starts (the shared Redis is
never touched). PostgreSQL only (skipped without TEST_DATABASE_URL).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from dispatch.intake import IntakeContext
from tests.reliability.cluster import (
    PUSH,
    CuttableProxy,
    Follower,
    InFlight,
    PrivateRedis,
    Server,
    requires_postgresql,
    row_locked,
    scratch_schema,
    seed_field_crew,
    servers,
    status_change,
    token,
    wait_until,
)

pytestmark = requires_postgresql

CREATE = """mutation($input: CreateTicketInput!) { createTicket(input: $input) {
  ticket { id } errors { code message } } }"""
TICKETS = "query { tickets(first: 5) { totalCount } }"


def report(n: int) -> dict[str, object]:
    return {"input": {"kind": "FAULT_REPAIR", "channel": "WEB", "summary": "停电", "clientRequestId": f"web-{n}",
                      "location": {"lat": 30.5 + 0.02 * n, "lng": 114.3}, "contactPhone": f"1350000{n:04d}"}}


def listening(redis_server: PrivateRedis) -> int:
    """How many server processes are subscribed to the change channel of the private Redis."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        channels = client.pubsub_channels("gridcrew:changes:*")
        return sum(count for _name, count in client.pubsub_numsub(*channels)) if channels else 0
    finally:
        client.close()


def assert_clean_failure(body: dict[str, object]) -> None:
    """An error a client can act on: a code, a reference, nothing about our insides."""
    text = json.dumps(body)
    assert "INTERNAL" in text, text
    for leak in ("Traceback", "psycopg", "sqlalchemy", "File \""):
        assert leak not in text, text


def test_server_sessions_ended_by_postgresql_fail_the_request_in_flight_cleanly_and_the_next_ones_succeed(
        intake_context: IntakeContext) -> None:
    with scratch_schema() as db:
        crew = seed_field_crew(db, intake_context, jobs=1)
        ticket_id = crew.tickets[0][0]
        push = {"input": {"deviceId": crew.device_id, "mutations": [
            status_change("go-1", ticket_id, "EN_ROUTE", minutes_ago=1)]}}
        with servers(Server(db.server_url()).start()) as (server,):
            pid = server.process.pid if server.process else None
            with row_locked(db.engine, "ticket", ticket_id):
                in_flight = InFlight(lambda: server.post(PUSH, push, crew.bearer))
                wait_until(lambda: db.server_backends("Lock"), "the push to wait on the ticket")
                assert db.terminate_server_backends() >= 1
                answer = in_flight.wait()
            assert_clean_failure(answer)
            assert db.scalar("SELECT count(*) FROM client_mutation") == 0

            # Sessions ended while idle in the pool are replaced on the next checkout (pool_pre_ping).
            assert server.post(TICKETS, bearer=token())["data"]["tickets"]["totalCount"] == 1
            db.terminate_server_backends()
            retried = server.post(PUSH, push, crew.bearer)["data"]["syncPush"]
            assert [(r["applied"], r["duplicate"]) for r in retried["results"]] == [(True, False)]
            assert httpx.get(f"{server.url}/healthz").status_code == 200
            assert server.process is not None and server.process.pid == pid and server.process.poll() is None
        assert db.scalar("SELECT status FROM ticket WHERE id = :t", t=ticket_id) == "EN_ROUTE"


def test_postgresql_unreachable_then_back_requests_fail_cleanly_and_the_server_recovers_without_restart() -> None:
    with scratch_schema() as db:
        proxy = CuttableProxy()
        try:
            with servers(Server(db.server_url(port=proxy.port)).start()) as (server,):
                bearer = token()
                assert server.post(CREATE, report(1), bearer)["data"]["createTicket"]["errors"] == []

                proxy.cut()
                failed = server.post(CREATE, report(2), bearer, timeout=20)
                assert_clean_failure(failed)
                assert failed["data"]["createTicket"]["ticket"] is None
                assert_clean_failure(server.post(TICKETS, bearer=bearer, timeout=20))
                health = httpx.get(f"{server.url}/healthz", timeout=20)
                assert health.status_code == 503 and health.json()["status"] == "error"

                proxy.restore()
                wait_until(lambda: httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200,
                           "the server to see the database again")
                again = server.post(CREATE, report(2), bearer)["data"]["createTicket"]
                assert again["errors"] == [] and again["ticket"] is not None
                assert server.post(TICKETS, bearer=bearer)["data"]["tickets"]["totalCount"] == 2
                assert server.process is not None and server.process.poll() is None
        finally:
            proxy.close()
        assert db.scalar("SELECT count(*) FROM ticket") == 2


@dataclass
class TwoFollowed:
    redis: PrivateRedis
    db: Any
    crew: Any
    ticket_id: int
    a: Server
    followers: tuple[Follower, Follower]


@contextmanager
def two_servers_followed_on_one_redis(intake_context: IntakeContext) -> Iterator[TwoFollowed]:
    """A private Redis, two server processes on it and one field crew's ticket followed live on each."""
    redis_server = PrivateRedis().start()
    try:
        with scratch_schema() as db:
            crew = seed_field_crew(db, intake_context, jobs=1)
            ticket_id, number, digits = crew.tickets[0]
            a = Server(db.server_url(), redis_url=redis_server.url).start(wait=False)
            b = Server(db.server_url(), redis_url=redis_server.url).start(wait=False)
            with servers(a, b):
                a.wait_healthy()
                b.wait_healthy()
                on_a, on_b = Follower(a.ws_url, number, digits), Follower(b.ws_url, number, digits)
                try:
                    yield TwoFollowed(redis_server, db, crew, ticket_id, a, (on_a, on_b))
                finally:
                    on_a.close()
                    on_b.close()
    finally:
        redis_server.close()


def test_redis_down_writes_still_succeed_nothing_is_lost_from_the_outbox_and_fan_out_resumes(
        intake_context: IntakeContext) -> None:
    with two_servers_followed_on_one_redis(intake_context) as world:
        db, crew, ticket_id = world.db, world.crew, world.ticket_id
        world.redis.stop()
        pushed = world.a.post(PUSH, {"input": {"deviceId": crew.device_id, "mutations": [
            status_change("go-1", ticket_id, "EN_ROUTE", minutes_ago=2)]}}, crew.bearer)
        assert [r["applied"] for r in pushed["data"]["syncPush"]["results"]] == [True]
        assert db.scalar("SELECT status FROM ticket WHERE id = :t", t=ticket_id) == "EN_ROUTE"
        # The change waits in the outbox, past the relay's mark, for Redis to come back ...
        change = db.scalar("SELECT max(seq) FROM sync_change WHERE topic = 'CUSTOMER' AND ticket_id = :t "
                           "AND CAST(payload AS text) LIKE '%EN_ROUTE%'", t=ticket_id)
        assert change is not None
        assert db.scalar("SELECT value FROM sync_counter WHERE name = 'relay'") < change

        # ... and is published once it is back.
        world.redis.start()
        wait_until(lambda: db.scalar("SELECT value FROM sync_counter WHERE name = 'relay'") >= change,
                   "the relay to publish the change made while Redis was down")
        wait_until(lambda: listening(world.redis) == 2, "both processes to listen to Redis again")
        world.a.post(PUSH, {"input": {"deviceId": crew.device_id, "mutations": [
            status_change("go-2", ticket_id, "ON_SITE", minutes_ago=1)]}}, crew.bearer)
        for follower in world.followers:
            follower.wait_for(lambda s: "ON_SITE" in s, "a change after Redis came back")


def test_a_change_made_while_redis_was_down_reaches_the_subscribers_of_every_process(
        intake_context: IntakeContext) -> None:
    with two_servers_followed_on_one_redis(intake_context) as world:
        world.redis.stop()
        world.a.post(PUSH, {"input": {"deviceId": world.crew.device_id, "mutations": [
            status_change("go-1", world.ticket_id, "EN_ROUTE", minutes_ago=2)]}}, world.crew.bearer)
        world.redis.start()
        for follower in world.followers:
            follower.wait_for(lambda s: "EN_ROUTE" in s, "the change made while Redis was down", timeout=10)


def test_with_redis_down_a_server_still_starts_and_its_subscribers_get_its_changes(
        intake_context: IntakeContext) -> None:
    redis_server = PrivateRedis()  # never started: REDIS_URL points at a closed port
    try:
        with scratch_schema() as db:
            crew = seed_field_crew(db, intake_context, jobs=1)
            ticket_id, number, digits = crew.tickets[0]
            with servers(Server(db.server_url(), redis_url=redis_server.url).start()) as (server,):
                follower = Follower(server.ws_url, number, digits)
                try:
                    server.post(PUSH, {"input": {"deviceId": crew.device_id, "mutations": [
                        status_change("go-1", ticket_id, "EN_ROUTE", minutes_ago=1)]}}, crew.bearer)
                    follower.wait_for(lambda s: "EN_ROUTE" in s, "the change, fanned out in-process", timeout=10)
                finally:
                    follower.close()
    finally:
        redis_server.close()
