"""The change log's sequence follows commit order: concurrent writers never let a tailing reader skip a change."""

from __future__ import annotations

import random
import threading

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dispatch.models import Ticket
from dispatch.tickets import record_event
from mobile_sync.changes import allocate, last_sequence


def new_ticket(session: Session, summary: str) -> Ticket:
    ticket = Ticket(kind="FAULT_REPAIR", channel="HOTLINE", priority="NORMAL", summary=summary, area_type="URBAN")
    session.add(ticket)
    session.flush()
    record_event(session, ticket, "test")
    return ticket


def test_a_writer_holding_sequence_numbers_makes_the_next_wait_until_it_commits(db: Engine) -> None:
    with Session(db) as first:
        new_ticket(first, "first")
        first.flush()
        first_seq = allocate(first.connection(), 1)  # what the commit hook does last: the counter is now held
        seqs: list[int] = []

        def second_writer() -> None:
            with Session(db) as second:
                new_ticket(second, "second")
                second.commit()
                with db.connect() as connection:
                    seqs.append(last_sequence(connection))

        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second writer must wait for the first transaction"
        first.commit()
    thread.join(30)
    assert not thread.is_alive() and seqs and seqs[0] > first_seq


def test_a_reader_tailing_by_sequence_sees_every_change_of_concurrent_writers_exactly_once(db: Engine) -> None:
    writers, per_writer = 6, 8
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        rng = random.Random(worker)
        try:
            for i in range(per_writer):
                with Session(db) as session:
                    new_ticket(session, f"w{worker}-{i}")
                    session.flush()
                    threading.Event().wait(rng.random() * 0.01)  # hold the transaction open a little
                    session.commit()
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)

    def tail() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            with db.connect() as connection:
                rows = [r[0] for r in connection.execute(
                    text("SELECT seq FROM sync_change WHERE seq > :c ORDER BY seq"), {"c": cursor})]
            seen.extend(rows)
            cursor = rows[-1] if rows else cursor
            if finished:
                return

    reader = threading.Thread(target=tail)
    reader.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    reader.join(30)

    assert errors == []
    with db.connect() as connection:
        committed = [r[0] for r in connection.execute(text("SELECT seq FROM sync_change ORDER BY seq"))]
    assert len(committed) >= writers * per_writer  # a board row at least per ticket change
    assert seen == committed  # nothing skipped, nothing twice, in order
    assert committed == list(range(committed[0], committed[0] + len(committed)))  # and no gaps


def test_the_same_batch_pushed_twice_at_once_is_applied_once(db: Engine, intake_context: object) -> None:
    from datetime import timedelta

    from sqlmodel import select

    from core.clock import utcnow
    from crews.roster import NewCrew, create_crew
    from dispatch.models import Assignment, TicketEvent
    from mobile_sync.protocol import MutationIn, push, register_device

    with Session(db, expire_on_commit=False) as session:
        now = utcnow()
        crew = create_crew(session, NewCrew(name="Twin", skills=[], home_lat=30.6, home_lng=114.3,
                                            shift_start=now - timedelta(hours=1), shift_end=now + timedelta(hours=8)))
        device = register_device(session, crew.id or 0, "twin-phone")
        ticket = new_ticket(session, "twin job")
        ticket.status = "ASSIGNED"
        session.add(Assignment(ticket_id=ticket.id or 0, crew_id=crew.id or 0, planned_arrival=now,
                               planned_finish=now, active=True))
        session.commit()
    batch = [MutationIn(f"t{i}", "STATUS_CHANGE", utcnow(), ticket_id=ticket.id, status=status)
             for i, status in enumerate(["EN_ROUTE", "ON_SITE", "RESOLVED"])]
    answers: list[list[bool]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def send() -> None:
        try:
            with Session(db, expire_on_commit=False) as session:
                start.wait()
                answers.append([r.duplicate for r in push(session, crew.id, device.id, batch).results])
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(answers) == [[False, False, False], [True, True, True]]  # one applied it, one replayed it
    with Session(db) as session:
        statuses = session.exec(select(TicketEvent.status).where(TicketEvent.ticket_id == ticket.id,
                                                                  TicketEvent.source == "crew device")).all()
    assert sorted(statuses) == ["EN_ROUTE", "ON_SITE", "RESOLVED"]
