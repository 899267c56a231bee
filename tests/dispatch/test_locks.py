"""The lock order's row locks (dispatch/locks.py) keep what they read under the lock for the transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.clock import utcnow
from crews.roster import NewCrew, create_crew
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.locks import crews_when_locked, lock_rows
from dispatch.models import Ticket
from dispatch.planning import AssignRequest, assign_ticket
from tests.conftest import statements_during


def test_locked_tickets_and_their_crews_are_read_once_per_transaction(
        db: Engine, intake_context: IntakeContext) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: lock_rows takes no row locks there")
    now = utcnow()
    with Session(db, expire_on_commit=False) as session:
        crew = create_crew(session, NewCrew(name="Crew 1", skills=["lv_overhead"], home_lat=30.6, home_lng=114.3,
                                            shift_start=now - timedelta(hours=1), shift_end=now + timedelta(hours=8)))
        held, free = (create_ticket(session, intake_context, NewTicket(
            kind="FAULT_REPAIR", channel="HOTLINE", summary="No power", lat=30.6 + i * 0.1, lng=114.3),
            "dispatcher").ticket for i in range(2))
        assign_ticket(session, AssignRequest(ticket_id=held.id or 0, crew_id=crew.id or 0), "dispatcher")
        session.commit()
        held_id, free_id = held.id or 0, free.id or 0
    with Session(db) as session:
        lock_rows(session, [held_id])
        assert crews_when_locked(session, [held_id]) == {held_id: {crew.id}}
        assert crews_when_locked(session, [held_id, free_id]) is None  # the other one was not locked
        again = statements_during(db, lambda: (session.get(Ticket, held_id), lock_rows(session, [held_id])))
        assert again == []  # read from the session, and held already: no statement at all
        session.rollback()
        assert crews_when_locked(session, [held_id]) is None  # a new transaction holds nothing yet


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
