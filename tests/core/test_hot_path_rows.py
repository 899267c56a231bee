"""Rows on intake's hot path: built without SQLModel's field-by-field set-up (the same row as the model's own
constructor builds), and inserted outside the unit of work (stored as given, in order, and then part of the
session as if it had loaded them, so that later changes are flushed as updates)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.db import insert_as_loaded, new_row
from dispatch.models import Incident, Ticket


def tickets() -> list[Ticket]:
    beijing = timezone(timedelta(hours=8))
    return [Ticket(kind="FAULT_REPAIR", channel="APP", priority="HIGH", summary="电线落地，很危险", area_type="URBAN",
                   lat=30.612345678901, lng=114.3, required_skills=["lineman", "hv"], preferred_channels=["SMS"],
                   needs_generator=True, critical_load_kw=12.5, contact_phone="+8613800000000",
                   created_at=datetime(2026, 12, 5, 20, 1, 2, 345678, tzinfo=beijing)),
            Ticket(kind="INQUIRY", channel="WEB", priority="LOW", summary='"quoted", \\ and\nnewline',
                   area_type="RURAL", required_skills=[], preferred_channels=[],
                   created_at=datetime(2026, 12, 5, 12, 0, tzinfo=UTC)),
            Ticket(kind="EMERGENCY", channel="HOTLINE", priority="CRITICAL", summary="fire", area_type="REMOTE")]


def test_rows_are_stored_as_given_in_their_order(db: Engine) -> None:
    given = tickets()
    expected = [{c: getattr(t, c) for c in Ticket.model_fields if c != "id"} for t in given]
    with Session(db, expire_on_commit=False) as session:
        insert_as_loaded(session, given)
        session.commit()
    assert [t.id for t in given] == sorted(t.id for t in given)
    with Session(db) as session:
        stored = [session.get_one(Ticket, t.id) for t in given]
        assert [{c: getattr(t, c) for c in Ticket.model_fields if c != "id"} for t in stored] == expected
        assert stored[0].created_at == datetime(2026, 12, 5, 12, 1, 2, 345678, tzinfo=UTC)


def test_rows_inserted_are_then_updated_by_the_session_like_loaded_ones(db: Engine) -> None:
    with Session(db, expire_on_commit=False) as session:
        incident = Incident()
        insert_as_loaded(session, [incident])
        assert incident.id is not None and not session.new and not session.is_modified(incident)
        incident.customers_affected = 42
        session.commit()
    with Session(db) as session:
        assert session.exec(select(Incident.customers_affected).where(Incident.id == incident.id)).one() == 42


def test_a_row_built_directly_is_the_row_the_model_builds() -> None:
    values = {k: v for k, v in tickets()[0].__dict__.items() if not k.startswith("_")}
    built, direct = Ticket(**values), new_row(Ticket, values)
    assert direct.__dict__.keys() == built.__dict__.keys()
    assert direct.model_dump() == built.model_dump()
    assert direct.__pydantic_fields_set__ == built.__pydantic_fields_set__
    defaults, direct_defaults = Incident(), new_row(Incident, {})
    assert direct_defaults.model_dump(exclude={"created_at"}) == defaults.model_dump(exclude={"created_at"})
    assert direct.required_skills is not new_row(Ticket, {}).required_skills  # (a list per row, not shared)


def test_a_row_built_directly_is_saved_like_any_other(db: Engine) -> None:
    values = {k: v for k, v in tickets()[1].__dict__.items() if not k.startswith("_")}
    with Session(db, expire_on_commit=False) as session:
        row = new_row(Ticket, values)
        session.add(row)
        session.commit()
        row.priority = "HIGH"
        session.commit()
    with Session(db) as session:
        stored = session.get_one(Ticket, row.id)
        assert (stored.summary, stored.priority, stored.version) == (values["summary"], "HIGH", 1)



def test_rows_whose_unique_value_is_stored_already_are_left_out(db: Engine) -> None:
    with Session(db, expire_on_commit=False) as session:
        earlier = tickets()[1]
        earlier.client_request_id = "app-2"
        insert_as_loaded(session, [earlier])
        session.commit()
        given = tickets()
        for i, ticket in enumerate(given):
            ticket.client_request_id = f"app-{i + 1}" if i < 2 else None  # app-2 is stored; the third has none
        inserted = insert_as_loaded(session, given, unless_present="client_request_id")
        session.commit()
    assert inserted == [given[0], given[2]]
    assert given[0].id is not None and given[2].id is not None and given[1].id is None
    with Session(db) as session:
        stored = session.exec(select(Ticket.client_request_id, Ticket.summary).order_by(Ticket.id)).all()
    assert stored == [("app-2", '"quoted", \\ and\nnewline'), ("app-1", "电线落地，很危险"), (None, "fire")]
