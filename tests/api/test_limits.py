"""Limits on what one request may ask: depth, complexity, page size, body size, batch size, and introspection
off in production. Each limit is a setting (core/settings.py) and each is exercised through the API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from api.app import build_services, create_app
from api.auth import Role, issue_token
from core.settings import Settings
from crews.roster import NewCrew, create_crew

SECRET = "limits-test-secret-" + "x" * 32


@contextlib.contextmanager
def serving(db: Engine, **overrides: Any) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(**{"gridcrew_env": "test", "secret_key": SECRET, **overrides})
    with TestClient(create_app(settings, build_services(settings, db)), raise_server_exceptions=False) as client:
        yield client, settings


def post(client: TestClient, settings: Settings, query: str, variables: dict[str, Any] | None = None,
         role: Role = Role.DISPATCHER, crew_id: int | None = None) -> Any:
    token = issue_token(role, crew_id=crew_id, device_id="tablet-1" if crew_id else None, settings=settings)
    return client.post("/graphql", json={"query": query, "variables": variables or {}},
                       headers={"Authorization": f"Bearer {token}"})


def nested(levels: int) -> str:
    """`tickets { edges { node { incident { tickets { incident { ... number` ever deeper."""
    inner = "number"
    for i in range(levels):
        inner = f"incident {{ tickets {{ {inner} }} }}" if i % 2 == 0 else inner
    return f"{{ tickets(first: 1) {{ edges {{ node {{ {inner} }} }} }} }}"


def test_the_defaults_are_sane() -> None:
    settings = Settings(gridcrew_env="test")
    assert 8 <= settings.max_query_depth <= 20
    assert 200 <= settings.max_query_complexity <= 5000
    assert 1024 * 1024 <= settings.max_body_bytes <= 16 * 1024 * 1024
    assert settings.max_page_size == 200 and settings.sync_max_batch == 500
    assert settings.public_rate_limit_per_minute >= 10


def test_a_document_nested_deeper_than_the_limit_is_refused_before_it_runs(db: Engine) -> None:
    with serving(db, max_query_depth=6) as (client, settings):
        allowed = post(client, settings, nested(1))  # tickets > edges > node > incident > tickets > number: 6
        assert allowed.status_code == 200 and "errors" not in allowed.json()
        refused = post(client, settings, nested(3))
    assert refused.status_code == 400
    error = refused.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX" and "at most 6" in error["message"]


def test_depth_counts_through_fragments(db: Engine) -> None:
    query = """query Deep { tickets(first: 1) { edges { node { ...T } } } }
               fragment T on Ticket { incident { tickets { incident { tickets { number } } } } }"""
    with serving(db, max_query_depth=6) as (client, settings):
        refused = post(client, settings, query)
    assert refused.status_code == 400
    assert "Deep is nested 8 levels deep" in refused.json()["errors"][0]["message"]


def test_an_alias_bomb_is_refused_by_the_complexity_limit(db: Engine) -> None:
    bomb = "{ " + " ".join(f"a{i}: me {{ role crewId }}" for i in range(400)) + " }"  # 1 200 fields
    with serving(db, max_query_complexity=1000) as (client, settings):
        small = post(client, settings, "{ " + " ".join(f"a{i}: me {{ role }}" for i in range(50)) + " }")
        refused = post(client, settings, bomb)
    assert small.status_code == 200 and len(small.json()["data"]) == 50
    assert refused.status_code == 400
    error = refused.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX" and "1200 fields" in error["message"]


def test_fragments_are_expanded_when_counting_fields(db: Engine) -> None:
    # Each level doubles the fields: 2^9 spreads of a 3-field fragment, in a document of a few hundred bytes.
    levels = ["fragment F0 on Me { role crewId deviceId }"]
    levels += [f"fragment F{i} on Me {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 10)]
    query = "{ " + " ".join(f"m{i}: me {{ ...F9 }}" for i in range(2)) + " } " + " ".join(levels)
    with serving(db, max_query_complexity=1000) as (client, settings):
        refused = post(client, settings, query)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def test_pages_are_bounded_by_max_page_size(db: Engine) -> None:
    with serving(db, max_page_size=20) as (client, settings):
        within = post(client, settings, "{ tickets(first: 20) { totalCount } qualityTasks(first: 20) { id } }")
        tickets = post(client, settings, "{ tickets(first: 21) { totalCount } }").json()
        tasks = post(client, settings, "{ callbackTasks(first: 21) { id } }").json()
    assert within.status_code == 200 and "errors" not in within.json()
    assert "at most 20" in tickets["errors"][0]["message"] and tickets["errors"][0]["path"] == ["tickets"]
    assert "between 0 and 20" in tasks["errors"][0]["message"]


def test_a_body_over_the_limit_gets_413_and_a_graphql_error(db: Engine) -> None:
    padding = "#" + "x" * 5000 + "\n"
    with serving(db, max_body_bytes=4096) as (client, settings):
        small = post(client, settings, "{ me { role } }")
        declared = post(client, settings, padding + "{ me { role } }")
        streamed = client.post("/graphql", content=iter([b'{"query": "', b"x" * 3000, b"x" * 3000, b'"}']),
                               headers={"Content-Type": "application/json"})
    assert small.status_code == 200
    for response in (declared, streamed):
        assert response.status_code == 413
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE" and "4096 bytes" in error["message"]


def test_a_sync_push_batch_over_the_limit_is_refused_whole(db: Engine, session: Any) -> None:
    crew = create_crew(session, NewCrew(name="Crew 1", skills=["lv_overhead"], home_lat=30.6, home_lng=114.3))
    push = """mutation($input: SyncPushInput!) { syncPush(input: $input) {
                results { clientMutationId applied } errors { message code } } }"""
    with serving(db, sync_max_batch=3) as (client, settings):
        registered = post(client, settings, """mutation($input: RegisterDeviceInput!) {
            registerDevice(input: $input) { device { id } errors { message } } }""",
                          {"input": {"deviceId": "tablet-1", "crewId": str(crew.id)}})
        assert registered.json()["data"]["registerDevice"]["errors"] == []
        mutations = [{"clientMutationId": f"m{i}", "kind": "NOTE", "note": "hi",
                      "occurredAt": "2026-11-23T10:00:00Z"} for i in range(4)]
        payload = post(client, settings, push, {"input": {"deviceId": "tablet-1", "mutations": mutations}},
                       role=Role.CREW, crew_id=crew.id).json()["data"]["syncPush"]
    assert payload["results"] == []
    assert payload["errors"] and "3" in payload["errors"][0]["message"]


def test_a_batch_of_graphql_operations_in_one_body_is_refused_cleanly(db: Engine) -> None:
    with serving(db) as (client, settings):
        token = issue_token(Role.DISPATCHER, settings=settings)
        response = client.post("/graphql", json=[{"query": "{ me { role } }"}] * 50,
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] and "Traceback" not in response.text


def test_introspection_is_off_in_production_and_on_in_development(db: Engine) -> None:
    query = "{ __schema { queryType { name } } }"
    with serving(db) as (client, settings):
        development = post(client, settings, query)
    with serving(db, gridcrew_env="production") as (client, settings):
        production = post(client, settings, query)
        still_works = post(client, settings, "{ me { role } }")
    assert development.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    assert production.status_code == 400 and "introspection" in production.json()["errors"][0]["message"].lower()
    assert still_works.json()["data"]["me"]["role"] == "DISPATCHER"


def test_subscriptions_are_held_to_the_same_limits(db: Engine) -> None:
    deep = "subscription Watch { dispatchBoard { incident { tickets { incident { tickets { number } } } } } }"
    with serving(db, max_query_depth=4) as (client, settings), \
            client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init",
                      "payload": {"Authorization": f"Bearer {issue_token(Role.ADMIN, settings=settings)}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": deep}})
        message = ws.receive_json()
    assert message["type"] == "error"
    assert message["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "Watch is nested 6 levels deep" in message["payload"][0]["message"]
