"""GET /metrics answers in the Prometheus text format: requests and latencies per operation, GraphQL errors by
code, optimizer solve times, the two outboxes' backlogs and the sync lag of crew devices."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.testclient import TestClient

from api.metrics import DatabaseCollector
from core.clock import utcnow
from crews.roster import NewCrew, create_crew
from customers.models import Notification
from mobile_sync.changes import allocate
from mobile_sync.live import LiveUpdates
from mobile_sync.models import SyncChange
from tests.conftest import Api

CREATE = """mutation($input: CreateTicketInput!) { createTicket(input: $input) { ticket { id } errors { message } } }"""


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_and_timed_per_graphql_root_field(api: Api) -> None:
    before = scrape(api.client)
    for _ in range(3):
        api(CREATE, {"input": {"kind": "FAULT_REPAIR", "channel": "APP", "summary": "no power"}})
    api("{ tickets(first: 1) { totalCount } crews { id } }")
    api("{ nonsense }", status=400)
    api.client.get("/no-such-page")
    after = scrape(api.client)
    created = dict(operation="Mutation.createTicket")
    assert value(after, "gridcrew_requests_total", status="200", **created) - \
        value(before, "gridcrew_requests_total", status="200", **created) == 3
    assert value(after, "gridcrew_request_duration_seconds_count", **created) - \
        value(before, "gridcrew_request_duration_seconds_count", **created) == 3
    assert value(after, "gridcrew_request_duration_seconds_sum", **created) > \
        value(before, "gridcrew_request_duration_seconds_sum", **created)
    for operation, status in (("multiple", "200"), ("invalid", "400"), ("other", "404")):
        assert value(after, "gridcrew_requests_total", operation=operation, status=status) - \
            value(before, "gridcrew_requests_total", operation=operation, status=status) == 1


def test_graphql_errors_are_counted_by_code(api: Api) -> None:
    before = scrape(api.client)
    api("{ tickets(first: 1) { totalCount } }", role="crew", crew_id=1)
    after = scrape(api.client)
    assert value(after, "gridcrew_graphql_errors_total", code="FORBIDDEN") - \
        value(before, "gridcrew_graphql_errors_total", code="FORBIDDEN") == 1


def test_optimizer_solves_are_timed(api: Api, session: Session) -> None:
    create_crew(session, NewCrew(name="Crew 1", skills=["lv_overhead"], home_lat=30.6, home_lng=114.3))
    api(CREATE, {"input": {"kind": "FAULT_REPAIR", "channel": "APP", "summary": "meter", "priority": "LOW",
                           "location": {"lat": 30.62, "lng": 114.32}}})
    before = scrape(api.client)
    plan = api("""mutation { optimizeDispatch(input: {timeLimitSeconds: 1, commit: false}) {
                    plan { solveSeconds } errors { message } } }""")["data"]["optimizeDispatch"]
    assert plan["errors"] == []
    after = scrape(api.client)
    count = "gridcrew_optimizer_solve_seconds_count"
    assert value(after, count, trigger="manual") - value(before, count, trigger="manual") == 1
    assert value(after, "gridcrew_optimizer_solve_seconds_sum", trigger="manual") - \
        value(before, "gridcrew_optimizer_solve_seconds_sum", trigger="manual") >= plan["plan"]["solveSeconds"] - 1e-6


def test_the_notification_outbox_backlog_is_read_from_the_database(api: Api, session: Session) -> None:
    now = utcnow()
    for i, status in enumerate(["PENDING", "PENDING", "PENDING", "SENT", "FAILED"]):
        session.add(Notification(dedup_key=f"k{i}", kind="ETA", channel="SMS", recipient="r", body="b",
                                 status=status, created_at=now - timedelta(minutes=10 - i)))
    session.commit()
    samples = scrape(api.client)
    assert value(samples, "gridcrew_notification_outbox_pending") == 3
    assert value(samples, "gridcrew_notification_outbox_failed") == 1
    assert 590 <= value(samples, "gridcrew_notification_outbox_oldest_pending_seconds") < 3600


def test_the_live_outbox_backlog_is_what_the_relay_has_not_handed_on(db: Engine) -> None:
    with Session(db) as session:
        last = allocate(session.connection(), 5)
        session.add_all(SyncChange(seq=seq, topic="BOARD", ticket_id=seq) for seq in range(last - 4, last + 1))
        session.commit()
    live = LiveUpdates(db)
    live.started, live.hub.delivered = True, last - 5
    collector = DatabaseCollector(db, live)
    samples = {f.name: f.samples[0].value for f in collector.collect() if f.name.startswith("gridcrew_live")}
    assert samples["gridcrew_live_outbox_backlog"] == 5
    live.hub.delivered = last
    samples = {f.name: f.samples[0].value for f in collector.collect() if f.name.startswith("gridcrew_live")}
    assert samples == {"gridcrew_live_outbox_backlog": 0, "gridcrew_live_outbox_oldest_seconds": 0}


def test_sync_lag_is_how_long_mutations_waited_on_the_device(api: Api, session: Session) -> None:
    crew = create_crew(session, NewCrew(name="Crew 2", skills=["lv_overhead"], home_lat=30.6, home_lng=114.3))
    token = api("""mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { token } }""",
                {"input": {"deviceId": "tablet-2", "crewId": str(crew.id)}})["data"]["registerDevice"]["token"]
    offline_since = utcnow() - timedelta(minutes=20)
    mutations = [{"clientMutationId": f"n{i}", "kind": "NOTE", "note": "generator on site",
                  "occurredAt": (offline_since + timedelta(minutes=i)).isoformat()} for i in range(3)]
    pushed = api.client.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
        "query": "mutation($i: SyncPushInput!) { syncPush(input: $i) { results { applied } errors { message } } }",
        "variables": {"i": {"deviceId": "tablet-2", "mutations": mutations}}}).json()
    assert pushed["data"]["syncPush"]["errors"] == []
    samples = scrape(api.client)
    assert value(samples, "gridcrew_sync_lag_seconds", stat="count") == 3
    assert 20 * 60 - 5 <= value(samples, "gridcrew_sync_lag_seconds", stat="max") < 21 * 60
    assert 18 * 60 - 5 <= value(samples, "gridcrew_sync_lag_seconds", stat="p50") < 20 * 60
