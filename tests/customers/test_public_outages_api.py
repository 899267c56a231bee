"""Public API: the outage map (aggregated, cached), rate-limited tracking, staff imports, planned outages."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from core.clock import utcnow
from customers.models import Notification
from customers.outage_map import OutageArea, cell_of, outage_map_for, summarise
from customers.planned import NewPlannedOutage, create_planned_outage, notify_planned_outages
from dispatch.models import Incident
from tests.conftest import Api
from tests.customers.customer_world import build_world

SUMMARY = "{ outageSummary { cell center { lat lng } incidents customersAffected causes etr } }"
TRACK = """query($n: String!, $p: String!){ trackTicket(number: $n, phoneLast4: $p){ number status } }"""


def test_incidents_are_aggregated_to_grid_cells_with_public_causes() -> None:
    incidents = [Incident(id=1, status="CONFIRMED", center_lat=30.6012, center_lng=114.3034, customers_affected=40,
                          cause="predicted fuse A"),
                 Incident(id=2, status="SUSPECTED", center_lat=30.6049, center_lng=114.3001, customers_affected=3,
                          cause="grouped by distance and time"),
                 Incident(id=3, status="SUSPECTED", center_lat=30.7, center_lng=114.3, customers_affected=2)]
    areas = summarise(incidents, 0.01)
    assert [(a.incidents, a.customers_affected) for a in areas] == [(2, 43), (1, 2)]
    assert areas[0].causes == ["fuse fault", "under investigation"]
    assert (areas[0].lat, areas[0].lng) == (30.605, 114.305)  # the cell centre, not an incident's
    assert cell_of(30.6012, 114.3034, 0.01)[0] == areas[0].cell


def test_outage_summary_and_geojson_are_public_and_cached(api: Api, session: Session) -> None:
    session.add(Incident(status="CONFIRMED", center_lat=30.6012, center_lng=114.3034, customers_affected=40,
                         cause="predicted fuse A", etr=utcnow() + timedelta(hours=2)))
    session.add(Incident(status="RESTORED", center_lat=30.7, center_lng=114.3, customers_affected=9))
    session.commit()
    outage_map_for(api.client.app.state.services.engine).invalidate()  # type: ignore[attr-defined]
    [area] = api(SUMMARY, role=None)["data"]["outageSummary"]
    assert area["customersAffected"] == 40 and area["causes"] == ["fuse fault"] and area["etr"]
    response = api.client.get("/outages.geojson")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/geo+json")
    [feature] = response.json()["features"]
    assert feature["geometry"]["type"] == "Polygon" and feature["properties"]["customersAffected"] == 40
    session.add(Incident(status="CONFIRMED", center_lat=30.5, center_lng=114.2, customers_affected=5))
    session.commit()
    assert len(api(SUMMARY, role=None)["data"]["outageSummary"]) == 1  # cached for a while


def test_tracking_is_rate_limited_per_number_alike_for_real_and_unknown_numbers(api: Api) -> None:
    created = api("""mutation{ createTicket(input: {kind: FAULT_REPAIR, channel: APP, summary: "停电",
                  location: {lat: 30.61, lng: 114.27}, contactPhone: "13800131234"}){ ticket { number } } }""")
    number = created["data"]["createTicket"]["ticket"]["number"]
    for _ in range(5):
        assert api(TRACK, {"n": number, "p": "0000"}, role=None)["data"]["trackTicket"] is None
    limited = api(TRACK, {"n": number, "p": "1234"}, role=None)  # right digits, but too late
    unknown_limited = [api(TRACK, {"n": "GC000000-99999", "p": "0000"}, role=None) for _ in range(6)][-1]
    assert limited["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert limited["errors"][0]["message"] == unknown_limited["errors"][0]["message"]


def test_tracking_is_rate_limited_per_client_across_numbers(api: Api) -> None:
    answers = [api(TRACK, {"n": f"GC000000-{i:05d}", "p": "0000"}, role=None) for i in range(21)]
    assert all(a["data"]["trackTicket"] is None for a in answers[:20])
    assert answers[20]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_staff_import_customers_and_see_row_errors(api: Api) -> None:
    mutation = """mutation($csv: String!){ importCustomers(input: {csv: $csv}){ created updated
                  rowErrors { line column message } errors { code } } }"""
    csv = "account_number,phone,language\nA1,13800000001,zh\nA2,13800000002,xx\n"
    result = api(mutation, {"csv": csv})["data"]["importCustomers"]
    assert (result["created"], result["errors"]) == (1, [])
    assert result["rowErrors"] == [{"line": 3, "column": "language", "message": result["rowErrors"][0]["message"]}]
    refused = api(mutation, {"csv": csv}, role=None)["data"]["importCustomers"]
    assert refused["errors"][0]["code"] == "UNAUTHENTICATED"


def test_a_planned_outage_is_announced_ahead_at_the_start_and_at_restoration(session: Session) -> None:
    build_world(session)
    now = utcnow()
    start = now + timedelta(days=10)
    outage = create_planned_outage(session, NewPlannedOutage(title="线路检修", feeder="F1", start_at=start,
                                                             end_at=start + timedelta(hours=6)), now=now)
    assert notify_planned_outages(session, now) == 0  # more than 7 days ahead: not yet
    notify_planned_outages(session, now + timedelta(days=3, minutes=1))
    notify_planned_outages(session, now + timedelta(days=3, minutes=2))  # run again: nothing twice
    notify_planned_outages(session, start + timedelta(minutes=1))
    outage.restored_at = start + timedelta(hours=5)
    notify_planned_outages(session, start + timedelta(hours=5, minutes=1))
    session.commit()
    kinds = [n.kind for n in session.exec(select(Notification).order_by(col(Notification.id)))]
    assert kinds == ["PLANNED_NOTICE"] * 40 + ["PLANNED_START"] * 40 + ["PLANNED_RESTORED"] * 40


def test_a_planned_outage_needs_an_area_and_a_future_time(api: Api) -> None:
    mutation = """mutation($input: PlanOutageInput!){ planOutage(input: $input){
                  plannedOutage { id customersAffected } errors { field code } } }"""
    past = (utcnow() - timedelta(hours=1)).isoformat()
    bad = api(mutation, {"input": {"title": "x", "startAt": past, "endAt": past}})["data"]["planOutage"]
    assert {tuple(e["field"]) for e in bad["errors"]} == {("endAt",), ("startAt",), ("area",)}
    start = utcnow() + timedelta(days=8)
    polygon = [[30.59, 114.29], [30.59, 114.31], [30.61, 114.31], [30.61, 114.29]]
    good = api(mutation, {"input": {"title": "检修", "startAt": start.isoformat(),
                                    "endAt": (start + timedelta(hours=4)).isoformat(), "polygon": polygon}})
    assert good["data"]["planOutage"]["errors"] == [] and good["data"]["planOutage"]["plannedOutage"]["id"]


def test_outage_area_is_a_plain_dataclass() -> None:
    assert OutageArea("1:2", 0.0, 0.0, 0.01).customers_affected == 0
