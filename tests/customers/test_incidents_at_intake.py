"""Fault reports at intake: linked to their customer, repeats joined (`duplicateOf`), outages grouped into
incidents by the network (or by distance and time), never dispatched twice."""

from __future__ import annotations

import random

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from customers.models import IncidentScope, TicketCustomer
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.models import Incident, Ticket
from dispatch.planning import read_planning_input
from geo.points import haversine_km
from tests.conftest import run_at_once
from tests.customers.customer_world import build_world, call


def test_a_report_links_to_its_customer_by_account_or_phone(session: Session, intake_context: IntakeContext) -> None:
    build_world(session)
    by_account = call(session, intake_context, "T1", 1, contact_phone=None)
    by_phone = call(session, intake_context, "T4", 2, account_number=None)
    links = {link.ticket_id: link.customer_id for link in session.exec(select(TicketCustomer))}
    assert by_account.id in links and by_phone.id in links and links[by_account.id] != links[by_phone.id]


def test_a_second_report_by_the_same_customer_joins_the_first_and_is_not_dispatched(
        session: Session, intake_context: IntakeContext) -> None:
    build_world(session)
    first = call(session, intake_context, "T1", 1)
    again = call(session, intake_context, "T1", 1, channel="WECHAT", summary="还是没电")
    assert first.duplicate_of_id is None and again.duplicate_of_id == first.id
    planned = {t.id for t in read_planning_input(session).tickets}
    assert str(first.id) in planned and str(again.id) not in planned


def test_when_the_first_report_is_cancelled_its_repeat_is_dispatched_instead(
        session: Session, intake_context: IntakeContext) -> None:
    from dispatch.tickets import cancel_ticket

    build_world(session)
    first = call(session, intake_context, "T1", 1)
    again = call(session, intake_context, "T1", 1, channel="WECHAT")
    third = call(session, intake_context, "T1", 1, channel="SMS")
    assert again.duplicate_of_id == third.duplicate_of_id == first.id
    cancel_ticket(session, first.id or 0, "caller was the wrong house", "dispatcher")
    session.commit()
    session.refresh(again)
    session.refresh(third)
    assert again.duplicate_of_id is None and third.duplicate_of_id == again.id
    assert [t.id for t in read_planning_input(session).tickets] == [str(again.id)]


def test_a_report_at_the_same_site_joins_without_a_customer_record(
        session: Session, intake_context: IntakeContext) -> None:
    first = create_ticket(session, intake_context, NewTicket(kind="FAULT_REPAIR", channel="HOTLINE", summary="停电",
                                                             lat=30.65, lng=114.35), "dispatcher").ticket
    neighbour = create_ticket(session, intake_context, NewTicket(kind="FAULT_REPAIR", channel="APP", summary="停电",
                                                                 lat=30.65005, lng=114.35), "dispatcher").ticket
    assert neighbour.duplicate_of_id == first.id


def test_calls_from_three_transformers_of_a_fuse_make_one_incident_on_the_fuse(
        session: Session, intake_context: IntakeContext) -> None:
    build_world(session)
    first = call(session, intake_context, "T1", 1)
    assert first.incident_id is None  # one house so far
    second = call(session, intake_context, "T2", 3)
    third = call(session, intake_context, "T3", 5)
    for ticket in (first, second, third):
        session.refresh(ticket)
    incident = session.get(Incident, first.incident_id)
    assert incident is not None and second.incident_id == third.incident_id == incident.id
    assert incident.customers_affected == 30  # every customer of the fuse, not just the three who called
    assert incident.status == "CONFIRMED" and incident.cause == "predicted fuse A"
    scope = session.get(IncidentScope, incident.id)
    assert scope is not None and (scope.device, scope.lead_ticket_id) == ("A", first.id)
    # The lead is dispatched with the incident's weight; the others joined it.
    assert first.customers_affected == 30 and first.duplicate_of_id is None
    assert second.duplicate_of_id == third.duplicate_of_id == first.id
    assert [t.id for t in read_planning_input(session).tickets] == [str(first.id)]


def test_the_create_ticket_payload_names_the_ticket_a_report_joined(api: object) -> None:
    from tests.conftest import Api

    assert isinstance(api, Api)
    create = """mutation($input: CreateTicketInput!){ createTicket(input: $input){
        ticket { id duplicateOf { id } } duplicateOf { id number } errors { message } } }"""
    values = {"kind": "FAULT_REPAIR", "channel": "APP", "summary": "停电", "location": {"lat": 30.63, "lng": 114.33},
              "contactPhone": "13712345678"}
    first = api(create, {"input": values})["data"]["createTicket"]
    second = api(create, {"input": {**values, "channel": "WECHAT"}})["data"]["createTicket"]
    assert first["duplicateOf"] is None and second["errors"] == []
    assert second["duplicateOf"]["id"] == first["ticket"]["id"] == second["ticket"]["duplicateOf"]["id"]


def test_without_a_network_nearby_calls_share_an_incident_but_each_is_dispatched(
        session: Session, intake_context: IntakeContext) -> None:
    points = [(30.700, 114.200), (30.702, 114.200), (30.704, 114.200)]  # about 220 m apart
    tickets = [create_ticket(session, intake_context, NewTicket(kind="FAULT_REPAIR", channel="HOTLINE", summary="停电",
                                                                lat=lat, lng=lng), "dispatcher").ticket
               for lat, lng in points]
    far = create_ticket(session, intake_context, NewTicket(kind="FAULT_REPAIR", channel="HOTLINE", summary="停电",
                                                           lat=30.80, lng=114.20), "dispatcher").ticket
    for ticket in tickets + [far]:
        session.refresh(ticket)
    assert len({t.incident_id for t in tickets}) == 1 and tickets[0].incident_id is not None
    assert far.incident_id is None
    incident = session.get(Incident, tickets[0].incident_id)
    assert incident is not None and incident.customers_affected == 3
    assert all(t.duplicate_of_id is None for t in tickets)
    assert len(session.exec(select(Ticket)).all()) == 4


def test_a_dense_storm_without_a_network_makes_many_incidents_none_wider_than_the_bound(
        session: Session, intake_context: IntakeContext) -> None:
    # 150 reports scattered over a strip 20 km long and 2 km wide, in random order: every report has neighbours
    # within the incident radius (0.8 km), so chaining neighbours (or incidents) would join the whole strip.
    rng = random.Random(5)
    points = [(30.700 + rng.random() * 0.02, 114.100 + rng.random() * 0.21) for _ in range(150)]
    tickets = [create_ticket(session, intake_context, NewTicket(kind="FAULT_REPAIR", channel="HOTLINE", summary="停电",
                                                                lat=lat, lng=lng), "dispatcher").ticket
               for lat, lng in points]
    session.commit()
    incidents: dict[int, list[Ticket]] = {}
    for ticket in tickets:
        session.refresh(ticket)
        if ticket.incident_id is not None:
            incidents.setdefault(ticket.incident_id, []).append(ticket)
    assert len(incidents) >= 8  # 20 km of 2.4 km incidents
    assert sum(len(members) for members in incidents.values()) >= 120  # most reports have an incident
    for members in incidents.values():
        assert max(haversine_km(a.lat, a.lng, b.lat, b.lng) for a in members for b in members) <= 2.4


def test_end_to_end_imports_reports_and_the_incidents_query(api: object) -> None:
    from tests.conftest import Api
    from tests.customers.customer_world import NETWORK_CSV, SPOTS, customers_csv, phone_of

    assert isinstance(api, Api)
    imported = """mutation($csv: String!){ n: importNetwork(input: {csv: $csv}){ created errors { code } } }"""
    assert api(imported, {"csv": NETWORK_CSV})["data"]["n"]["created"] == 7
    customers = """mutation($csv: String!){ importCustomers(input: {csv: $csv}){ created rowErrors { line } } }"""
    assert api(customers, {"csv": customers_csv()})["data"]["importCustomers"] == {"created": 40, "rowErrors": []}
    create = """mutation($input: CreateTicketInput!){ createTicket(input: $input){
        ticket { number } duplicateOf { number } errors { message } } }"""
    answers = []
    for transformer, n in (("T1", 1), ("T2", 2), ("T3", 3)):
        lat, lng = SPOTS[transformer]
        report = {"kind": "FAULT_REPAIR", "channel": "WECHAT", "summary": "停电", "location": {"lat": lat, "lng": lng},
                  "accountNumber": f"{transformer}-{n:02d}", "contactPhone": phone_of(transformer, n)}
        answers.append(api(create, {"input": report})["data"]["createTicket"])
    lead = answers[0]["ticket"]["number"]
    assert [a["duplicateOf"] for a in answers] == [None, {"number": lead}, {"number": lead}]
    incidents = api("""{ incidents(status: [CONFIRMED]) { status cause customersAffected center { lat }
                        tickets { number } } }""")["data"]["incidents"]
    assert len(incidents) == 1 and incidents[0]["customersAffected"] == 30
    assert incidents[0]["cause"] == "predicted fuse A" and len(incidents[0]["tickets"]) == 3
    track = """query($n: String!, $p: String!){ trackTicket(number: $n, phoneLast4: $p){ status } }"""
    joined = answers[2]["ticket"]["number"]
    assert api(track, {"n": joined, "p": phone_of("T3", 3)[-4:]}, role=None)["data"]["trackTicket"]["status"] == "NEW"


def test_two_reports_by_one_caller_at_the_same_moment_are_dispatched_once(
        db: Engine, intake_context: IntakeContext) -> None:
    for attempt in range(3):  # a race: run it a few times
        same = NewTicket(kind="FAULT_REPAIR", channel="APP", summary="停电", contact_phone=f"1390000{attempt:04d}",
                         lat=30.61 + attempt * 0.05, lng=114.31)
        made = run_at_once(2, lambda own, same=same: create_ticket(own, intake_context, same, "app").ticket, db)
        assert one_joined_the_other(made)


def test_two_neighbours_reporting_the_same_site_at_once_are_dispatched_once(
        db: Engine, intake_context: IntakeContext) -> None:
    made = run_at_once(2, lambda own: create_ticket(own, intake_context, NewTicket(
        kind="FAULT_REPAIR", channel="HOTLINE", summary="停电", lat=30.70001, lng=114.20001), "hotline").ticket, db)
    assert one_joined_the_other(made)


def one_joined_the_other(pair: list[Ticket]) -> bool:
    """Whichever committed first is dispatched; the other joined it."""
    a, b = pair
    return (a.duplicate_of_id, b.duplicate_of_id) in {(None, a.id), (b.id, None)}
