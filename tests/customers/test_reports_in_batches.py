"""Reports written together (intake's group commit): each gets its own answer, and the batch decides duplicates
and incidents exactly as if its reports had come one by one, in order."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.errors import DomainError
from customers.incidents import _site_cells
from dispatch.intake import IntakeContext, IntakeResult, NewTicket, create_ticket, create_tickets
from dispatch.models import Incident, Ticket
from geo.points import haversine_km
from tests.conftest import empty_tables, statements_during
from tests.customers.customer_world import SPOTS, build_world, phone_of

START = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


def storm_reports() -> list[NewTicket]:
    """A few minutes of a storm: customers of a fuse calling (one twice), a house on another fuse, two neighbours
    without a customer record at one site, three calls along a road with no network, an inquiry."""
    def customer(transformer: str, n: int, minute: int, **extra: object) -> NewTicket:
        lat, lng = SPOTS[transformer]
        values: dict[str, object] = dict(kind="FAULT_REPAIR", channel="HOTLINE", summary="家里停电了",
                                         lat=lat + n * 0.0001, lng=lng, account_number=f"{transformer}-{n:02d}",
                                         contact_phone=phone_of(transformer, n), reported_at=START + timedelta(
                                             minutes=minute))
        values.update(extra)
        return NewTicket(**values)  # type: ignore[arg-type]

    def stranger(lat: float, lng: float, minute: int, phone: str) -> NewTicket:
        return NewTicket(kind="FAULT_REPAIR", channel="APP", summary="No power", lat=lat, lng=lng,
                         contact_phone=phone, reported_at=START + timedelta(minutes=minute))

    return [
        customer("T1", 1, 0),
        customer("T2", 3, 1),
        customer("T1", 1, 2, channel="WECHAT", summary="还是没电"),  # the same customer again
        customer("T3", 5, 3),
        customer("T4", 2, 4),
        stranger(30.65, 114.35, 5, "13800000001"),
        stranger(30.65005, 114.35, 6, "13800000002"),  # 6 m from the one before
        stranger(30.700, 114.200, 7, "13800000003"),
        stranger(30.702, 114.200, 8, "13800000004"),
        NewTicket(kind="INQUIRY", channel="WEB", summary="When is the power back?", contact_phone=phone_of("T2", 3),
                  reported_at=START + timedelta(minutes=9)),
        stranger(30.704, 114.200, 10, "13800000005"),
    ]


def outcome(session: Session, tickets: list[Ticket]) -> dict[str, object]:
    """What intake decided, by position in the list (ids differ from one run to the other)."""
    position = {t.id: i for i, t in enumerate(tickets)}
    for ticket in tickets:
        session.refresh(ticket)
    groups: dict[int, list[int]] = {}
    for i, ticket in enumerate(tickets):
        if ticket.incident_id is not None:
            groups.setdefault(ticket.incident_id, []).append(i)
    incidents = {}
    for incident_id, members in groups.items():
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incidents[tuple(members)] = (incident.status, incident.cause, incident.customers_affected)
    return {"duplicate_of": [position.get(t.duplicate_of_id) for t in tickets],
            "priority": [t.priority for t in tickets], "customers": [t.customers_affected for t in tickets],
            "incidents": incidents}


def test_a_batch_decides_as_if_its_reports_came_one_by_one(db: Engine, intake_context: IntakeContext) -> None:
    with Session(db, expire_on_commit=False) as session:
        build_world(session)
        alone = [create_ticket(session, intake_context, report, "hotline").ticket for report in storm_reports()]
        one_by_one = outcome(session, alone)
    empty_tables(db)
    with Session(db, expire_on_commit=False) as session:
        build_world(session)
        answers = create_tickets(session, intake_context, [(report, "hotline") for report in storm_reports()])
        assert all(isinstance(a, IntakeResult) and a.created for a in answers)
        together = outcome(session, [a.ticket for a in answers if isinstance(a, IntakeResult)])
    assert together == one_by_one
    # ...and what they decided is what the trouble-call analysis is for:
    assert one_by_one["duplicate_of"][2] == 0  # the repeat call joined the first
    assert one_by_one["duplicate_of"][6] == 5  # the neighbour at the same site too
    assert (0, 1, 2, 3) in one_by_one["incidents"]  # fuse A's calls: one incident
    assert (7, 8, 10) in one_by_one["incidents"]  # the road's calls: one more


def test_each_report_of_a_batch_gets_its_own_answer(session: Session, intake_context: IntakeContext) -> None:
    good = NewTicket(kind="FAULT_REPAIR", channel="SMS", summary="停电", lat=30.6, lng=114.3, client_request_id="sms-1")
    answers = create_tickets(session, intake_context, [
        (good, "sms"),
        (NewTicket(kind="FAULT_REPAIR", channel="SMS", summary="停电", lat=91, lng=114.3), "sms"),
        (NewTicket(kind="FAULT_REPAIR", channel="SMS", summary="停电", lat=30.6, lng=114.3,
                   client_request_id="sms-1"), "sms"),  # the gateway sent the first one twice
        (NewTicket(kind="EMERGENCY", channel="SMS", summary="电线落地", lat=30.61, lng=114.31), "sms"),
    ])
    first, wrong, again, other = answers
    assert isinstance(first, IntakeResult) and first.created
    assert isinstance(wrong, DomainError) and wrong.problems[0].field == ["location"]
    assert isinstance(again, IntakeResult) and not again.created and again.ticket.id == first.ticket.id
    assert isinstance(other, IntakeResult) and other.created and other.ticket.priority == "EMERGENCY"
    assert len(session.exec(select(Ticket)).all()) == 2
    # A later batch with the same clientRequestId answers the stored ticket too, and so does a lone retry.
    later, later_again, inquiry = create_tickets(session, intake_context, [(good, "sms"), (good, "sms"), (NewTicket(
        kind="INQUIRY", channel="SMS", summary="还要等多久"), "sms")])
    for answer in (later, later_again):
        assert isinstance(answer, IntakeResult) and not answer.created and answer.ticket.id == first.ticket.id
    assert isinstance(inquiry, IntakeResult) and inquiry.created
    assert len(session.exec(select(Ticket)).all()) == 3
    alone = create_ticket(session, intake_context, good, "sms")
    assert not alone.created and alone.ticket.id == first.ticket.id


def test_two_reports_within_the_duplicate_distance_always_share_a_lock_cell() -> None:
    # Intake's reports at one site take turns on advisory locks of grid cells: two reports within the distance
    # must share a cell wherever they are (cells are narrower in longitude towards the poles).
    rng = random.Random(11)
    for _ in range(20_000):
        lat, lng = rng.uniform(-70, 70), rng.uniform(-179, 179)
        angle, metres = rng.uniform(0, 2 * math.pi), rng.uniform(0, 15)
        other = (lat + metres * math.cos(angle) / 111_000,
                 lng + metres * math.sin(angle) / 111_000 / math.cos(math.radians(lat)))
        if haversine_km(lat, lng, *other) * 1000 > 15:
            continue
        mine, theirs = _site_cells(lat, lng, 15), _site_cells(*other, 15)
        assert set(mine) & set(theirs), (lat, lng, other)
        assert len(mine) <= 6


def test_a_batch_locks_the_groups_its_reports_join_at_once(db: Engine, intake_context: IntakeContext) -> None:
    # Each grouped report locks its group politely, in a savepoint of its own; a batch predicts the groups of
    # all its reports first and locks them in one go, so its reports find their rows held.
    def savepoints(write: Callable[[], object]) -> int:
        return sum(1 for s in statements_during(db, write) if s.startswith("SAVEPOINT"))

    with Session(db, expire_on_commit=False) as session:
        build_world(session)
        alone = savepoints(lambda: [create_ticket(session, intake_context, r, "hotline") for r in storm_reports()])
    empty_tables(db)
    with Session(db, expire_on_commit=False) as session:
        build_world(session)
        together = savepoints(lambda: create_tickets(session, intake_context,
                                                     [(r, "hotline") for r in storm_reports()]))
    if db.dialect.name == "postgresql":
        assert alone >= 5 and together == 1
    else:
        assert alone == together == 0  # SQLite serialises writers: no row locks to take
