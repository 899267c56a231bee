"""The lock order's row locks (dispatch/locks.py) keep what they read under the lock for the transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.clock import utcnow
from crews.roster import NewCrew, create_crew
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.locks import crews_when_locked, lock_rows
from dispatch.models import Ticket
from dispatch.planning import AssignRequest, assign_ticket
from tests.conftest import statements_during


def _crew_and_tickets(db: Engine, intake_context: IntakeContext) -> tuple[int, int, int]:
    """A crew and two tickets, the first of them assigned to the crew: their ids."""
    now = utcnow()
    with Session(db, expire_on_commit=False) as session:
        crew = create_crew(session, NewCrew(name="Crew 1", skills=["lv_overhead"], home_lat=30.6, home_lng=114.3,
                                            shift_start=now - timedelta(hours=1), shift_end=now + timedelta(hours=8)))
        held, free = (create_ticket(session, intake_context, NewTicket(
            kind="FAULT_REPAIR", channel="HOTLINE", summary="No power", lat=30.6 + i * 0.1, lng=114.3),
            "dispatcher").ticket for i in range(2))
        assign_ticket(session, AssignRequest(ticket_id=held.id or 0, crew_id=crew.id or 0), "dispatcher")
        session.commit()
        return crew.id or 0, held.id or 0, free.id or 0


def test_locked_tickets_and_their_crews_are_read_once_per_transaction(
        db: Engine, intake_context: IntakeContext) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: lock_rows takes no row locks there")
    crew_id, held_id, free_id = _crew_and_tickets(db, intake_context)
    with Session(db) as session:
        lock_rows(session, [held_id])
        assert crews_when_locked(session, [held_id]) == {held_id: {crew_id}}
        assert crews_when_locked(session, [held_id, free_id]) is None  # the other one was not locked
        again = statements_during(db, lambda: (session.get(Ticket, held_id), lock_rows(session, [held_id])))
        assert again == []  # read from the session, and held already: no statement at all
        session.rollback()
        assert crews_when_locked(session, [held_id]) is None  # a new transaction holds nothing yet


def test_a_ticket_is_locked_with_its_active_assignments_and_what_its_customers_were_told(
        db: Engine, intake_context: IntakeContext) -> None:
    # One statement locks both (assignments, then publications): another writer finds each of those rows busy.
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: lock_rows takes no row locks there")
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from customers.models import TicketPublication
    from dispatch.models import Assignment

    crew_id, ticket_id, _free = _crew_and_tickets(db, intake_context)
    with Session(db, expire_on_commit=False) as session:
        if session.get(TicketPublication, ticket_id) is None:
            session.add(TicketPublication(ticket_id=ticket_id, status="ASSIGNED"))
        session.commit()
        assignment = session.exec(select(Assignment).where(Assignment.ticket_id == ticket_id)).one()
    with Session(db) as session:
        lock_rows(session, [ticket_id])
        assert crews_when_locked(session, [ticket_id]) == {ticket_id: {crew_id}}
        with db.connect() as other:
            for table, column, key in [("assignment", "id", assignment.id),
                                       ("ticket_publication", "ticket_id", ticket_id)]:
                with pytest.raises(OperationalError, match="could not obtain lock"):
                    other.execute(text(f"SELECT 1 FROM {table} WHERE {column} = :k FOR UPDATE NOWAIT"), {"k": key})
                other.rollback()
        session.rollback()


def test_a_replan_turn_with_the_database_away_is_taken_so_the_replan_itself_reports_it() -> None:
    # The background re-planner asks for its turn first: a database that is down must not kill its thread.
    from core.db import make_engine
    from dispatch.locks import replan_turn

    away = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    try:
        with replan_turn(away, "default") as mine:
            assert mine
    finally:
        away.dispose()


def _incident_of_two(db: Engine, intake_context: IntakeContext) -> tuple[int, int, int]:
    """Two reports grouped into one incident (a hundred metres apart, at once); their ids and the incident's."""
    with Session(db, expire_on_commit=False) as session:
        first, second = (create_ticket(session, intake_context, NewTicket(
            kind="FAULT_REPAIR", channel="HOTLINE", summary="No power", lat=30.6 + i * 0.001, lng=114.3),
            "hotline").ticket for i in range(2))
        session.refresh(first)
        assert first.incident_id is not None
        return first.id or 0, second.id or 0, first.incident_id


def test_the_tickets_of_a_locked_incident_are_known_without_reading_them_again(
        db: Engine, intake_context: IntakeContext) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: lock_rows takes no row locks there")
    from dispatch.locks import tickets_of_locked_incident

    first, second, incident = _incident_of_two(db, intake_context)
    with Session(db) as session:
        assert tickets_of_locked_incident(session, incident) is None  # not locked in this transaction
        lock_rows(session, [first])  # the incident comes with it, and all of its tickets
        members = statements_during(db, lambda: tickets_of_locked_incident(session, incident))
        assert members == []
        assert sorted(t.id or 0 for t in tickets_of_locked_incident(session, incident) or []) == [first, second]
        session.rollback()


def test_a_busy_ticket_is_locked_once_its_holder_lets_go(db: Engine, intake_context: IntakeContext) -> None:
    # The first try does not wait (NOWAIT); the next ones wait a little and back off, until the row is free.
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: lock_rows takes no row locks there")
    import threading

    from sqlalchemy import text

    from dispatch.locks import lock_ticket

    first, _second, _incident = _incident_of_two(db, intake_context)
    with db.connect() as holder:
        holder.execute(text("SELECT id FROM ticket WHERE id = :t FOR UPDATE"), {"t": first})
        done = threading.Event()
        locked: list[int | None] = []

        def lock() -> None:
            with Session(db) as session:
                ticket = lock_ticket(session, first)
                locked.append(ticket.id if ticket is not None else None)
                session.rollback()
            done.set()

        worker = threading.Thread(target=lock)
        worker.start()
        assert not done.wait(0.5)  # still trying while the row is held
        holder.rollback()
        worker.join(30)
    assert done.is_set() and locked == [first]
