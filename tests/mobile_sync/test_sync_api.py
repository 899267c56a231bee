"""Crew sync over GraphQL: registerDevice, syncPull, syncPush, and the live subscriptions over graphql-transport-ws."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlmodel import Session
from starlette.testclient import TestClient

from api.auth import Role, issue_token
from core.clock import utcnow
from core.settings import Settings

World = Any  # the `world` fixture of tests/mobile_sync/conftest.py
EAST = (30.60, 114.36)

PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) {
  results { clientMutationId applied duplicate outcome error { code message field } } errors { code message } } }"""
PULL = """query($d: ID!, $s: String) { syncPull(deviceId: $d, since: $s) {
  cursor hasMore tickets { id number status } assignments { sequence crew { name } } removedTicketIds } }"""


def device_token(settings: Settings, crew_id: int, device_id: str) -> str:
    return issue_token(Role.CREW, crew_id=crew_id, device_id=device_id, settings=settings)


def gql(client: TestClient, query: str, variables: dict[str, Any], token: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def status_input(ticket_id: int, status: str, cmid: str) -> dict[str, Any]:
    return {"clientMutationId": cmid, "kind": "STATUS_CHANGE", "ticketId": str(ticket_id), "status": status,
            "occurredAt": utcnow().isoformat()}


def test_a_dispatcher_registers_a_device_and_gets_a_token_bound_to_crew_and_device(
        client: TestClient, session: Session, world: World, settings: Settings, tokens: dict[str, str]) -> None:
    west, _ = world.crew("West")
    east, _ = world.crew("East", EAST)
    query = """mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) {
      device { id crew { name } } token errors { code field } } }"""
    body = gql(client, query, {"input": {"deviceId": "tablet-7", "crewId": str(west.id)}}, tokens["dispatcher"])
    payload = body["data"]["registerDevice"]
    assert payload["errors"] == [] and payload["device"] == {"id": "tablet-7", "crew": {"name": "West"}}
    me = gql(client, "{ me { role crewId deviceId } }", {}, payload["token"])["data"]["me"]
    assert me == {"role": "CREW", "crewId": str(west.id), "deviceId": "tablet-7"}
    # a crew device may register devices of its own crew only
    crew_token = issue_token(Role.CREW, crew_id=west.id, settings=settings)
    other = gql(client, query, {"input": {"deviceId": "x-1", "crewId": str(east.id)}}, crew_token)
    assert other["data"]["registerDevice"]["errors"][0]["code"] == "FORBIDDEN"


def test_a_crew_token_not_bound_to_a_device_may_register_one_but_not_sync_as_any(
        client: TestClient, world: World, settings: Settings) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    crew_token = issue_token(Role.CREW, crew_id=west.id, settings=settings)

    pulled = gql(client, PULL, {"d": phone.id}, crew_token)
    pushed = gql(client, PUSH, {"input": {"deviceId": phone.id, "mutations": [
        status_input(ticket.id, "EN_ROUTE", "c1")]}}, crew_token)

    assert pulled["data"] is None and pulled["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    refusal = pushed["data"]["syncPush"]
    assert refusal["results"] == [] and refusal["errors"][0]["code"] == "FORBIDDEN"
    assert "device's own token" in refusal["errors"][0]["message"]
    registered = gql(client, """mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) {
      token errors { code } } }""", {"input": {"deviceId": "tablet-9", "crewId": str(west.id)}}, crew_token)
    own = registered["data"]["registerDevice"]["token"]
    assert registered["data"]["registerDevice"]["errors"] == []
    assert gql(client, PULL, {"d": "tablet-9"}, own)["data"]["syncPull"]["tickets"]


def test_push_then_replay_then_pull_over_graphql(client: TestClient, world: World, settings: Settings) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    token = device_token(settings, west.id, phone.id)
    start = gql(client, PULL, {"d": phone.id}, token)["data"]["syncPull"]
    assert [t["id"] for t in start["tickets"]] and start["assignments"][0]["crew"]["name"] == "West"

    batch = {"deviceId": phone.id, "mutations": [status_input(ticket.id, "EN_ROUTE", "c1"),
                                                  status_input(ticket.id, "NEW", "c2")]}
    first = gql(client, PUSH, {"input": batch}, token)["data"]["syncPush"]
    replay = gql(client, PUSH, {"input": batch}, token)["data"]["syncPush"]
    assert [(r["applied"], r["duplicate"]) for r in first["results"]] == [(True, False), (False, False)]
    assert first["results"][1]["error"]["code"] == "INVALID"
    assert [(r["applied"], r["duplicate"]) for r in replay["results"]] == [(True, True), (False, True)]

    changed = gql(client, PULL, {"d": phone.id, "s": start["cursor"]}, token)["data"]["syncPull"]
    assert [t["status"] for t in changed["tickets"]] == ["EN_ROUTE"] and changed["removedTicketIds"] == []


def test_push_and_pull_refuse_other_crews_devices_and_non_devices(
        client: TestClient, world: World, settings: Settings, tokens: dict[str, str]) -> None:
    west, phone = world.crew("West")
    east, east_phone = world.crew("East", EAST)
    ticket = world.ticket(west)
    east_token = device_token(settings, east.id, east_phone.id)
    batch = {"deviceId": phone.id, "mutations": [status_input(ticket.id, "EN_ROUTE", "c1")]}
    stolen = gql(client, PUSH, {"input": batch}, east_token)["data"]["syncPush"]
    assert stolen["results"] == [] and stolen["errors"][0]["code"] == "FORBIDDEN"
    by_dispatcher = gql(client, PUSH, {"input": batch}, tokens["dispatcher"])["data"]["syncPush"]
    assert by_dispatcher["errors"][0]["code"] == "FORBIDDEN"
    unknown = gql(client, PULL, {"d": "nobody"}, east_token)
    assert unknown["data"] is None and unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"


# ------------------------------------------------------------------ subscriptions


@contextmanager
def subscription(client: TestClient, query: str, variables: dict[str, Any] | None = None,
                 token: str | None = None) -> Iterator[Any]:
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"} if token else {}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables or {}}})
        yield ws


def next_data(ws: Any) -> dict[str, Any]:
    message = ws.receive_json()
    assert message["type"] == "next", message
    return message["payload"]["data"]


def test_a_crew_device_sees_its_jobs_then_a_new_assignment_live(
        client: TestClient, world: World, settings: Settings) -> None:
    west, phone = world.crew("West")
    first_job = world.ticket(west)
    query = "subscription($c: ID!) { crewJobs(crewId: $c) { cursor tickets { id number } removedTicketIds } }"
    with subscription(client, query, {"c": str(west.id)}, device_token(settings, west.id, phone.id)) as ws:
        now = next_data(ws)["crewJobs"]
        assert [t["number"] for t in now["tickets"]] == [first_job.number]
        second_job = world.ticket(west)  # committed by the dispatcher's assignment
        update = next_data(ws)["crewJobs"]
        assert second_job.number in [t["number"] for t in update["tickets"]]


def test_a_crew_device_may_not_watch_another_crew(client: TestClient, world: World, settings: Settings) -> None:
    west, phone = world.crew("West")
    east, _ = world.crew("East", EAST)
    query = "subscription($c: ID!) { crewJobs(crewId: $c) { cursor } }"
    with subscription(client, query, {"c": str(east.id)}, device_token(settings, west.id, phone.id)) as ws:
        message = ws.receive_json()
        assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_customer_follows_a_field_status_change_by_number_and_digits_without_personal_data(
        client: TestClient, session: Session, world: World, settings: Settings) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west, phone="13912345678")
    query = """subscription($n: String!, $p: String!) { ticketUpdated(number: $n, phoneLast4: $p) {
      number status eta etr timeline { message } } }"""
    with subscription(client, query, {"n": ticket.number, "p": "5678"}) as ws:
        assert next_data(ws)["ticketUpdated"]["status"] == "ASSIGNED"
        batch = {"deviceId": phone.id, "mutations": [status_input(ticket.id, "ON_SITE", "arrive")]}
        gql(client, PUSH, {"input": batch}, device_token(settings, west.id, phone.id))
        seen = next_data(ws)["ticketUpdated"]
        while seen["status"] != "ON_SITE":
            seen = next_data(ws)["ticketUpdated"]
        assert seen["etr"] is not None
        assert "13912345678" not in str(seen) and "West" not in str(seen)
    with subscription(client, query, {"n": ticket.number, "p": "0000"}) as ws:
        message = ws.receive_json()
        assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "NOT_FOUND"


def test_the_dispatch_board_shows_a_push_refused_because_the_job_was_reassigned(
        client: TestClient, world: World, settings: Settings, tokens: dict[str, str]) -> None:
    west, phone = world.crew("West")
    east, _ = world.crew("East", EAST)
    ticket = world.ticket(west)
    world.assign(ticket, east)
    query = "subscription { dispatchBoard { id number events { kind note } } }"
    with subscription(client, query, token=tokens["dispatcher"]) as ws:
        batch = {"deviceId": phone.id, "mutations": [status_input(ticket.id, "EN_ROUTE", "late")]}
        result = gql(client, PUSH, {"input": batch}, device_token(settings, west.id, phone.id))
        assert result["data"]["syncPush"]["results"][0]["error"]["code"] == "CONFLICT"
        # The hand assignment may still be on its way to the board; the refused push follows it.
        for _ in range(3):
            board = next_data(ws)["dispatchBoard"]
            assert board["number"] == ticket.number
            if "CONFLICT" in [e["kind"] for e in board["events"]]:
                break
        # History is ordered by when things happened: the device clock may put the conflict before the assignment.
        assert "CONFLICT" in [e["kind"] for e in board["events"]]
    with subscription(client, query) as ws:  # the board is for staff
        message = ws.receive_json()
        assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_websocket_may_also_authenticate_with_its_upgrade_headers(
        client: TestClient, world: World, settings: Settings) -> None:
    west, phone = world.crew("West")
    job = world.ticket(west)
    headers = {"Authorization": f"Bearer {device_token(settings, west.id, phone.id)}"}
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"], headers=headers) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($c: ID!) { crewJobs(crewId: $c) { tickets { number } } }",
            "variables": {"c": str(west.id)}}})
        assert [t["number"] for t in next_data(ws)["crewJobs"]["tickets"]] == [job.number]
