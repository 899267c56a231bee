"""A server process killed with SIGKILL at the worst moment: in the middle of a crew's push batch, in the middle
of a plan commit, while the optimizer solves. Nothing is half-applied; the client's retry completes the work
exactly once; the committed plan stays in force until a later run replaces it.

The test stops the server's transaction at a chosen point by holding a row lock the server needs next (or the
region's plan lock), checks in pg_stat_activity that the server is waiting there, and kills the server's whole
process group. PostgreSQL only (skipped without TEST_DATABASE_URL).
"""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import Session

from dispatch.intake import IntakeContext, NewTicket, create_ticket
from tests.reliability.cluster import (
    OPTIMIZE,
    PUSH,
    InFlight,
    Scratch,
    Server,
    requires_postgresql,
    row_locked,
    scratch_schema,
    seed_board,
    seed_field_crew,
    servers,
    status_change,
    token,
    wait_until,
)

pytestmark = requires_postgresql


def server_gone(db: Scratch) -> None:
    """The killed server's PostgreSQL sessions have ended (their open transactions rolled back)."""
    wait_until(lambda: not db.server_backends(), "the killed server's sessions to end")


def test_a_server_killed_in_the_middle_of_a_push_batch_applied_none_of_it_and_the_retry_applies_it_once(
        intake_context: IntakeContext) -> None:
    with scratch_schema() as db:
        crew = seed_field_crew(db, intake_context, jobs=2)
        (first_id, _, _), (second_id, _, _) = crew.tickets
        batch = {"input": {"deviceId": crew.device_id, "mutations": [
            status_change("leave-1", first_id, "EN_ROUTE", minutes_ago=3),
            status_change("leave-2", second_id, "EN_ROUTE", minutes_ago=2)]}}
        with servers(Server(db.server_url()).start()) as (server,):
            with row_locked(db.engine, "ticket", second_id):
                push = InFlight(lambda: server.post(PUSH, batch, crew.bearer))
                # The first mutation is applied inside the transaction; the second waits for the ticket's row.
                wait_until(lambda: db.server_backends("Lock"), "the push to reach the second ticket")
                server.kill()
            server_gone(db)
        with pytest.raises(httpx.HTTPError):  # the device sees a dropped connection and keeps its queue
            push.wait()
        assert db.rows("SELECT status FROM ticket WHERE id IN (:a, :b)", a=first_id, b=second_id) == \
            [("ASSIGNED",), ("ASSIGNED",)]
        assert db.scalar("SELECT count(*) FROM client_mutation") == 0
        assert db.scalar("SELECT count(*) FROM ticket_event WHERE source = 'crew device'") == 0
        assert db.scalar("SELECT count(*) FROM sync_change WHERE CAST(payload AS text) LIKE '%EN_ROUTE%'") == 0

        with servers(Server(db.server_url()).start()) as (restarted,):
            retry = restarted.post(PUSH, batch, crew.bearer)["data"]["syncPush"]
            assert [(r["applied"], r["duplicate"]) for r in retry["results"]] == [(True, False), (True, False)]
            again = restarted.post(PUSH, batch, crew.bearer)["data"]["syncPush"]
            assert [(r["applied"], r["duplicate"]) for r in again["results"]] == [(True, True), (True, True)]
        assert db.rows("SELECT status FROM ticket WHERE id IN (:a, :b)", a=first_id, b=second_id) == \
            [("EN_ROUTE",), ("EN_ROUTE",)]
        assert db.rows("SELECT ticket_id, count(*) FROM ticket_event WHERE source = 'crew device' AND "
                       "status = 'EN_ROUTE' GROUP BY ticket_id ORDER BY ticket_id") == [(first_id, 1), (second_id, 1)]
        assert db.scalar("SELECT count(*) FROM client_mutation") == 2
        assert db.scalar("SELECT count(*) FROM sync_change WHERE CAST(payload AS text) LIKE '%EN_ROUTE%'") == 2


def plan_state(db: Scratch) -> dict[str, object]:
    return {"plans": db.rows("SELECT id, status FROM dispatch_plan ORDER BY id"),
            "active": db.rows("SELECT ticket_id, crew_id, plan_id FROM assignment WHERE active ORDER BY ticket_id"),
            "tickets": db.rows("SELECT id, status, eta FROM ticket ORDER BY id")}


def add_ticket(db: Scratch, ctx: IntakeContext, n: int) -> int:
    with Session(db.engine, expire_on_commit=False) as session:
        return create_ticket(session, ctx, NewTicket(
            kind="FAULT_REPAIR", channel="APP", summary="停电", priority="NORMAL", lat=30.6, lng=114.27 + 0.01 * n,
            contact_phone=f"1370000{n:04d}"), "dispatcher").ticket.id or 0


def assert_one_committed_plan_in_force(db: Scratch) -> int:
    committed = [plan_id for (plan_id,) in db.rows("SELECT id FROM dispatch_plan WHERE status = 'COMMITTED'")]
    assert len(committed) == 1, committed
    per_ticket = db.rows("SELECT ticket_id, count(*), min(plan_id), max(plan_id) FROM assignment WHERE active "
                         "GROUP BY ticket_id")
    assert per_ticket and all(count == 1 for _, count, _, _ in per_ticket), per_ticket
    assert {low for _, _, low, _ in per_ticket} == set(committed)
    return committed[0]


def test_a_server_killed_in_the_middle_of_a_plan_commit_leaves_the_committed_plan_and_the_retry_commits_once(
        intake_context: IntakeContext) -> None:
    with scratch_schema() as db:
        seed_board(db, intake_context, crews=2, tickets=5)
        bearer = token()
        request = {"input": {"commit": True, "timeLimitSeconds": 1}}
        with servers(Server(db.server_url()).start()) as (server,):
            assert server.post(OPTIMIZE, request, bearer)["data"]["optimizeDispatch"]["errors"] == []
            newcomer = add_ticket(db, intake_context, 1)
            before = plan_state(db)
            with row_locked(db.engine, "ticket", newcomer):
                # The new plan is stored, the old one marked SUPERSEDED and its assignments deactivated, all in
                # the commit's transaction, which then waits to make the newcomer ASSIGNED.
                commit = InFlight(lambda: server.post(OPTIMIZE, request, bearer))
                wait_until(lambda: db.server_backends("Lock"), "the commit to reach the new ticket", timeout=20)
                server.kill()
            server_gone(db)
        with pytest.raises(httpx.HTTPError):
            commit.wait()
        assert plan_state(db) == before
        first = assert_one_committed_plan_in_force(db)

        with servers(Server(db.server_url()).start()) as (restarted,):
            retry = restarted.post(OPTIMIZE, request, bearer)["data"]["optimizeDispatch"]
        assert retry["errors"] == [] and retry["plan"]["status"] == "COMMITTED"
        second = assert_one_committed_plan_in_force(db)
        assert second != first
        assert dict(db.rows("SELECT id, status FROM dispatch_plan"))[first] == "SUPERSEDED"
        assert db.scalar("SELECT status FROM ticket WHERE id = :t", t=newcomer) == "ASSIGNED"
        assert db.scalar("SELECT count(*) FROM ticket_event WHERE ticket_id = :t AND kind = 'STATUS' "
                         "AND status = 'ASSIGNED'", t=newcomer) == 1


def test_the_optimizer_killed_while_solving_leaves_the_committed_plan_in_force_and_a_later_run_recovers(
        intake_context: IntakeContext) -> None:
    with scratch_schema() as db:
        seed_board(db, intake_context, crews=3, tickets=12)
        bearer = token()
        with servers(Server(db.server_url()).start()) as (server,):
            first = server.post(OPTIMIZE, {"input": {"commit": True, "timeLimitSeconds": 1}}, bearer)
            assert first["data"]["optimizeDispatch"]["errors"] == []
            add_ticket(db, intake_context, 2)
            before = plan_state(db)
            long_run = InFlight(lambda: server.post(OPTIMIZE, {"input": {"commit": True, "timeLimitSeconds": 60}},
                                                    bearer, timeout=90))
            # The board has been read and the solver works: the request's transaction sits idle meanwhile.
            wait_until(lambda: db.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app AND state = 'idle in "
                "transaction' AND now() - state_change > interval '1 second'", app=db.server_app),
                "the solver to be at work", timeout=20)
            server.kill()  # the server and its solver processes
            server_gone(db)
        with pytest.raises(httpx.HTTPError):
            long_run.wait()
        assert plan_state(db) == before
        committed = assert_one_committed_plan_in_force(db)

        with servers(Server(db.server_url()).start()) as (restarted,):
            later = restarted.post(OPTIMIZE, {"input": {"commit": True, "timeLimitSeconds": 1}}, bearer)
        assert later["data"]["optimizeDispatch"]["errors"] == []
        assert assert_one_committed_plan_in_force(db) != committed
        assert db.scalar("SELECT count(*) FROM ticket WHERE status = 'NEW'") == \
            db.scalar("SELECT count(*) FROM ticket t WHERE NOT EXISTS (SELECT 1 FROM assignment a WHERE a.active "
                      "AND a.ticket_id = t.id)")
