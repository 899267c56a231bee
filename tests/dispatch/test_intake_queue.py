"""Intake's group commit: reports submitted together are written together, and every caller still gets its own
answer, after the COMMIT; a report that fails does not take the others down."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.errors import DomainError
from dispatch import intake_queue
from dispatch.intake import IntakeContext, IntakeResult, NewTicket
from dispatch.intake_queue import IntakeQueue
from dispatch.locks import lock_rows
from dispatch.models import Ticket


def report(i: int, **extra: object) -> NewTicket:
    values: dict[str, object] = dict(kind="FAULT_REPAIR", channel="APP", summary=f"停电 #{i}",
                                     lat=30.5 + i * 0.01, lng=114.2, client_request_id=f"app-{i}")
    values.update(extra)
    return NewTicket(**values)  # type: ignore[arg-type]


def test_every_caller_gets_its_own_stored_ticket(db: Engine, intake_context: IntakeContext) -> None:
    sizes: list[int] = []
    intake_queue.BATCH_OBSERVERS.append(sizes.append)
    try:
        queue = IntakeQueue(db, intake_context)
        start = threading.Barrier(12)
        futures: dict[int, Future[IntakeResult]] = {}

        def caller(i: int) -> None:
            start.wait()
            futures[i] = queue.submit(report(i), "app")

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        answers = {i: future.result(timeout=60) for i, future in futures.items()}
    finally:
        intake_queue.BATCH_OBSERVERS.remove(sizes.append)
    assert all(a.created and a.ticket.summary == f"停电 #{i}" for i, a in answers.items())
    assert len({a.ticket.id for a in answers.values()}) == 12
    assert sum(sizes) == 12  # written in as many batches as the writer found them, none twice
    with Session(db) as session:  # answered after the COMMIT: another session reads them all
        stored = session.exec(select(Ticket.client_request_id)).all()
    assert sorted(stored) == sorted(f"app-{i}" for i in range(12))


def test_callers_that_report_again_once_answered_are_written_together(
        db: Engine, intake_context: IntakeContext) -> None:
    # Four callers each send a report, wait for its answer, take a moment and send the next (a closed loop, like
    # agents or a gateway). Right after a batch the writer waits for as many reports as it answered, so each
    # batch holds one report of every caller, instead of the first to come back being written alone.
    sizes: list[int] = []
    intake_queue.BATCH_OBSERVERS.append(sizes.append)
    try:
        queue = IntakeQueue(db, intake_context, linger_seconds=2.0)  # (generous: a loaded machine is slow)
        start = threading.Barrier(4)

        def caller(c: int) -> None:
            start.wait()
            for r in range(5):
                queue.submit(report(c * 10 + r), "app").result(timeout=60)
                time.sleep(0.02)

        threads = [threading.Thread(target=caller, args=(c,)) for c in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        intake_queue.BATCH_OBSERVERS.remove(sizes.append)
    assert sum(sizes) == 20
    assert sizes[1:-1] and all(size == 4 for size in sizes[1:-1])  # (the first and last depend on who was first)


def test_a_retried_report_is_answered_with_the_first_ticket(db: Engine, intake_context: IntakeContext) -> None:
    queue = IntakeQueue(db, intake_context)
    first = queue.submit(report(1), "app").result(timeout=60)
    again = [queue.submit(report(1), "app") for _ in range(3)]
    assert [f.result(timeout=60).ticket.id for f in again] == [first.ticket.id] * 3
    assert not any(f.result().created for f in again)


def test_a_bad_report_among_good_ones_gets_its_errors_and_the_others_are_stored(
        db: Engine, intake_context: IntakeContext) -> None:
    queue = IntakeQueue(db, intake_context)
    futures = [queue.submit(report(i, lat=91.0 if i == 2 else 30.5 + i * 0.01), "app") for i in range(5)]
    with pytest.raises(DomainError) as error:
        futures[2].result(timeout=60)
    assert error.value.problems[0].field == ["location"]
    assert all(f.result(timeout=60).created for i, f in enumerate(futures) if i != 2)
    with Session(db) as session:
        assert len(session.exec(select(Ticket)).all()) == 4


def test_a_wrong_report_is_answered_when_submitted_without_waiting_for_the_writer(
        db: Engine, intake_context: IntakeContext) -> None:
    # Reports are drafted (validated, located, triaged) in the caller's thread, before they join the queue.
    sizes: list[int] = []
    intake_queue.BATCH_OBSERVERS.append(sizes.append)
    try:
        wrong = IntakeQueue(db, intake_context).submit(report(1, summary="  "), "app")
        assert wrong.done()
        with pytest.raises(DomainError) as error:
            wrong.result()
    finally:
        intake_queue.BATCH_OBSERVERS.remove(sizes.append)
    assert error.value.problems[0].field == ["summary"]
    assert sizes == []  # no batch was written for it


def test_a_batch_meeting_a_request_id_being_stored_elsewhere_answers_that_ticket_and_stores_the_others(
        db: Engine, intake_context: IntakeContext, caplog: pytest.LogCaptureFixture) -> None:
    # Another server process is storing report 3 (same clientRequestId) right now; its transaction commits while
    # our batch waits on the unique index: report 3 is answered with its ticket, and the batch goes on.
    caplog.set_level(logging.INFO, logger="dispatch.intake_queue")
    queue = IntakeQueue(db, intake_context)
    with Session(db, expire_on_commit=False) as other:
        rival = Ticket(kind="FAULT_REPAIR", channel="APP", priority="NORMAL", summary="停电 #3", area_type="URBAN",
                       client_request_id="app-3")
        other.add(rival)
        other.flush()
        futures = [queue.submit(report(i), "app") for i in range(6)]
        time.sleep(0.5)  # the writer reaches the INSERT and waits for the rival's transaction
        other.commit()
    answers = [f.result(timeout=60) for f in futures]
    assert answers[3].ticket.id == rival.id and not answers[3].created
    assert all(a.created for i, a in enumerate(answers) if i != 3)
    with Session(db) as session:
        assert len(session.exec(select(Ticket)).all()) == 6
    if db.dialect.name == "postgresql":  # (SQLite's batch looks first, then fails on the index: one by one)
        assert "one by one" not in caplog.text  # no batch failed for it


def test_a_writer_whose_connection_broke_writes_the_next_report_on_a_new_one(
        db: Engine, intake_context: IntakeContext) -> None:
    # A writer keeps its connection between batches (no pool check before each); a connection lost meanwhile
    # (a database restart) must cost the next report nothing.
    if db.dialect.name != "postgresql":
        pytest.skip("the connection is killed by PostgreSQL's pg_terminate_backend")
    queue = IntakeQueue(db, intake_context)
    assert queue.submit(report(1), "app").result(timeout=60).created
    with db.connect() as connection:  # every other connection of this test's engine, the writer's among them
        killed = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = current_setting('application_name') AND pid <> pg_backend_pid()")).scalar()
    assert killed
    second = queue.submit(report(2), "app").result(timeout=60)
    assert second.created
    with Session(db) as session:
        assert len(session.exec(select(Ticket)).all()) == 2


def test_a_batch_that_finds_a_row_busy_waits_its_turn_and_groups_its_reports_as_usual(
        db: Engine, intake_context: IntakeContext, caplog: pytest.LogCaptureFixture) -> None:
    # A batch locks the rows its reports will likely be grouped with without a savepoint (NOWAIT): when one is
    # busy the batch fails as a whole and is written again, waiting for the row, in one transaction as before.
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: intake takes no row locks there")
    queue = IntakeQueue(db, intake_context)
    first = queue.submit(report(0, lat=30.55, lng=114.25, client_request_id="first"), "app").result(timeout=60)
    nearby = [report(i, lat=30.55 + i * 0.002, lng=114.25) for i in range(1, 4)]  # 220 m apart: one outage
    caplog.set_level(logging.DEBUG, logger="dispatch.intake_queue")
    with Session(db) as holder:
        lock_rows(holder, [first.ticket.id or 0])  # e.g. a crew's device writing the first report right now
        with queue._ready:  # (the condition's lock is reentrant: the three are queued before the writer looks)
            futures = [queue.submit(r, "app") for r in nearby]
        time.sleep(0.5)
        assert not any(f.done() for f in futures)  # waiting for the row
        holder.commit()
    answers = [f.result(timeout=60) for f in futures]
    assert all(a.created for a in answers)
    with Session(db) as session:
        tickets = [session.get_one(Ticket, t.ticket.id) for t in [first, *answers]]
        assert len({t.incident_id for t in tickets}) == 1 and tickets[0].incident_id is not None
    assert "writing it again, politely" in caplog.text and "one by one" not in caplog.text

