"""Several API processes on one PostgreSQL share state correctly: racing dispatchers, racing plan commits and
retried intake across processes.

Each race is made certain rather than likely: the test holds the lock the servers queue on (a ticket's row,
the region's plan lock, the ticket table) until both servers are waiting on it, then lets go.
PostgreSQL only (skipped without TEST_DATABASE_URL).
"""

from __future__ import annotations

from sqlalchemy import bindparam, text

from dispatch.intake import IntakeContext
from tests.reliability.cluster import (
    OPTIMIZE,
    InFlight,
    Scratch,
    Server,
    plan_commits_blocked,
    requires_postgresql,
    row_locked,
    scratch_schema,
    seed_board,
    servers,
    token,
    wait_until,
)

pytestmark = requires_postgresql

ASSIGN = """mutation($input: AssignTicketInput!) { assignTicket(input: $input) {
  assignment { crew { id name } } errors { code message } } }"""
CREATE = """mutation($input: CreateTicketInput!) { createTicket(input: $input) {
  ticket { id number } errors { code message } } }"""


def start_two(db: Scratch) -> tuple[Server, Server]:
    a, b = Server(db.server_url()), Server(db.server_url())
    a.start(wait=False)
    b.start(wait=False)
    a.wait_healthy()
    b.wait_healthy()
    return a, b


def test_two_dispatchers_assigning_one_ticket_at_once_through_two_processes_one_wins_the_other_gets_conflict(
        intake_context: IntakeContext) -> None:
    with scratch_schema() as db:
        (north, south), (ticket_id,) = seed_board(db, intake_context, crews=2, tickets=1)
        bearer = token()
        with servers(*start_two(db)) as (a, b):
            with row_locked(db.engine, "ticket", ticket_id):
                first = InFlight(lambda: a.post(ASSIGN, {"input": {"ticketId": ticket_id, "crewId": north}}, bearer))
                second = InFlight(lambda: b.post(ASSIGN, {"input": {"ticketId": ticket_id, "crewId": south}}, bearer))
                wait_until(lambda: len(db.server_backends("Lock")) == 2, "both assignments queued on the ticket")
            answers = [first.wait()["data"]["assignTicket"], second.wait()["data"]["assignTicket"]]
            winners = [x for x in answers if not x["errors"]]
            losers = [x for x in answers if x["errors"]]
            assert len(winners) == 1 and len(losers) == 1, answers
            assert [e["code"] for e in losers[0]["errors"]] == ["CONFLICT"]
            active = db.rows("SELECT crew.name FROM assignment JOIN crew ON crew.id = assignment.crew_id "
                             "WHERE ticket_id = :t AND active", t=ticket_id)
            assert active == [(winners[0]["assignment"]["crew"]["name"],)], "one active assignment: the winner's"
            assert db.scalar("SELECT count(*) FROM ticket_event WHERE ticket_id = :t AND kind = 'STATUS' "
                             "AND status = 'ASSIGNED'", t=ticket_id) == 1

            # Not a race any more: a deliberate reassignment afterwards is the dispatcher's right.
            other = south if active[0][0] == "Crew 0" else north
            again = b.post(ASSIGN, {"input": {"ticketId": ticket_id, "crewId": other}}, bearer)["data"]["assignTicket"]
            assert again["errors"] == []
            assert db.rows("SELECT crew_id FROM assignment WHERE ticket_id = :t AND active", t=ticket_id) == [(other,)]


def test_plan_commits_of_one_region_from_two_processes_never_overlap(intake_context: IntakeContext) -> None:
    with scratch_schema() as db:
        _crews, ticket_ids = seed_board(db, intake_context, crews=3, tickets=8)
        bearer = token()
        with servers(*start_two(db)) as (a, b):
            request = {"input": {"commit": True, "timeLimitSeconds": 2}}
            with plan_commits_blocked(db.engine):
                first = InFlight(lambda: a.post(OPTIMIZE, request, bearer))
                second = InFlight(lambda: b.post(OPTIMIZE, request, bearer))
                wait_until(lambda: len(db.server_backends("advisory")) == 2,
                           "both solved and waiting to commit", timeout=20)
            answers = [first.wait()["data"]["optimizeDispatch"], second.wait()["data"]["optimizeDispatch"]]
        assert [x["errors"] for x in answers] == [[], []]
        statuses = dict(db.rows("SELECT id, status FROM dispatch_plan"))
        assert sorted(statuses.values()) == ["COMMITTED", "SUPERSEDED"], statuses
        committed = next(plan_id for plan_id, status in statuses.items() if status == "COMMITTED")
        per_ticket = dict(db.rows("SELECT ticket_id, count(*) FROM assignment WHERE active GROUP BY ticket_id"))
        assert per_ticket and max(per_ticket.values()) == 1, per_ticket
        assert set(per_ticket) <= set(ticket_ids)
        assert {r[0] for r in db.rows("SELECT DISTINCT plan_id FROM assignment WHERE active")} == {committed}
        # Every ticket the committed plan assigns is ASSIGNED, and only once in its history per commit.
        assigned = set(r[0] for r in db.rows("SELECT id FROM ticket WHERE status = 'ASSIGNED'"))
        assert assigned == set(per_ticket)


def test_a_retried_create_ticket_sent_to_two_processes_at_once_makes_one_ticket(
        intake_context: IntakeContext) -> None:
    with scratch_schema() as db:
        bearer = token()
        report = {"kind": "FAULT_REPAIR", "channel": "APP", "summary": "整栋楼停电", "clientRequestId": "app-77-1",
                  "location": {"lat": 30.6, "lng": 114.3}, "contactPhone": "13800007777"}
        with servers(*start_two(db)) as (a, b):
            with db.engine.connect() as blocker:  # inserts wait; reads do not: both look, then both insert
                blocker.execute(text("LOCK TABLE ticket IN SHARE ROW EXCLUSIVE MODE"))
                first = InFlight(lambda: a.post(CREATE, {"input": report}, bearer))
                second = InFlight(lambda: b.post(CREATE, {"input": report}, bearer))
                wait_until(lambda: len(db.server_backends("Lock")) == 2, "both inserts queued")
                blocker.rollback()
            answers = [first.wait()["data"]["createTicket"], second.wait()["data"]["createTicket"]]
            assert [x["errors"] for x in answers] == [[], []]
            assert answers[0]["ticket"] == answers[1]["ticket"]

            # A burst of retries of other reports, each sent to both processes: still one ticket per key.
            burst = [dict(report, clientRequestId=f"app-77-{k}", location={"lat": 30.5 + 0.02 * k, "lng": 114.3})
                     for k in range(2, 8)]
            flights = [InFlight(lambda r=r, s=s: s.post(CREATE, {"input": r}, bearer))
                       for r in burst for s in (a, b)]
            tickets = [f.wait()["data"]["createTicket"]["ticket"]["id"] for f in flights]
            assert tickets[0::2] == tickets[1::2]
        assert db.scalar("SELECT count(*) FROM ticket") == 7
        assert db.scalar("SELECT count(DISTINCT client_request_id) FROM ticket") == 7


def test_a_dispatcher_assigning_an_emergency_while_it_is_inserted_at_once_leaves_one_active_assignment(
        intake_context: IntakeContext) -> None:
    with scratch_schema() as db:
        crews, tickets = seed_board(db, intake_context, crews=2, tickets=2)
        bearer = token()
        with servers(*start_two(db)) as (a, b):
            for crew, ticket in zip(crews, tickets, strict=True):
                assert b.post(ASSIGN, {"input": {"ticketId": ticket, "crewId": crew}}, bearer)["data"][
                    "assignTicket"]["errors"] == []
            routes = [row[0] for row in db.rows("SELECT id FROM assignment WHERE active")]
            emergency = {"kind": "FAULT_REPAIR", "channel": "HOTLINE", "summary": "电线落地，很危险",
                         "clientRequestId": "fire-1", "location": {"lat": 30.56, "lng": 114.26},
                         "contactPhone": "13800001111"}
            with db.engine.connect() as blocker:  # the insertion rewrites the receiving crew's route: it waits
                blocker.execute(text("SELECT id FROM assignment WHERE id IN :ids FOR NO KEY UPDATE")
                                .bindparams(bindparam("ids", expanding=True)), {"ids": routes})
                created = InFlight(lambda: a.post(CREATE, {"input": emergency}, bearer))
                wait_until(lambda: db.server_backends("Lock"), "the fast insertion to wait on a crew's route")
                fire = db.scalar("SELECT id FROM ticket WHERE client_request_id = 'fire-1'")
                manual = InFlight(lambda: b.post(ASSIGN, {"input": {"ticketId": fire, "crewId": crews[1]}}, bearer))
                wait_until(lambda: manual.done or len(db.server_backends("Lock")) == 2,
                           "the dispatcher's assignment to finish or to queue behind the insertion")
                blocker.rollback()
            answer = manual.wait()["data"]["assignTicket"]
            created.wait()
        assert [e["code"] for e in answer["errors"]] in ([], ["CONFLICT"])
        assert db.scalar("SELECT count(*) FROM assignment WHERE active AND ticket_id = :t", t=fire) == 1


def test_serve_with_two_workers_serves_one_database_and_every_worker_logs_json_lines() -> None:
    import json

    with scratch_schema() as db:
        bearer = token()
        with servers(Server(db.server_url(), workers=2, env={"LOG_LEVEL": "INFO"}).start()) as (server,):
            reports = [{"kind": "FAULT_REPAIR", "channel": "APP", "summary": "停电", "clientRequestId": f"w-{k}",
                        "location": {"lat": 30.5 + 0.02 * k, "lng": 114.3}} for k in range(5)]
            flights = [InFlight(lambda r=r: server.post(CREATE, {"input": r}, bearer)) for r in reports * 2]
            ids = [f.wait()["data"]["createTicket"]["ticket"]["id"] for f in flights]
            assert ids[:5] == ids[5:]
            # /healthz answered once the first worker was up; the second may still be importing on a busy machine.
            # Count lines, not the phrase: uvicorn's line holds it twice (msg and color_message).
            wait_until(lambda: sum('"msg": "Started server process' in line for line in server.log().splitlines()) >= 2,
                       "both workers to start")
            lines = [line for line in server.log().splitlines() if line.strip()]
        assert db.scalar("SELECT count(*) FROM ticket") == 5
        entries = [json.loads(line) for line in lines]  # not one plain-text line, workers included
        assert sum(e["msg"].startswith("Started server process") for e in entries) == 2
