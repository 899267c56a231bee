"""GraphQL fuzzing with schemathesis: documents generated from the served schema, every query and mutation, sent
to the app. Whatever comes in, the answer is a GraphQL document without a 500, an INTERNAL error, a stack trace
or a null in a non-null field. Bounded: a fixed number of examples per field, derandomized (the same run
each time).
Subscriptions (which schemathesis doesn't generate) get hostile arguments by hand over the WebSocket.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from graphql import introspection_from_schema
from hypothesis import HealthCheck, given, settings
from sqlmodel import Session
from starlette.testclient import TestClient

from api.auth import Role, issue_token
from api.graphql.schema import schema
from api.permissions import ROOT_FIELDS
from core.settings import Settings
from crews.roster import NewCrew, create_crew
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from mobile_sync.protocol import register_device

# CI runs a bounded, derandomized sample; GRIDCREW_FUZZ_EXAMPLES=500 digs deeper by hand.
EXAMPLES_PER_FIELD = int(os.environ.get("GRIDCREW_FUZZ_EXAMPLES", "12"))
LOADED = schemathesis.graphql.from_dict({"data": introspection_from_schema(schema.graphql_schema)})
OPERATIONS = {result.ok().label: result.ok() for result in LOADED.get_all_operations()}
# Fuzzing without crews keeps optimizeDispatch's solves trivial whatever time limit it draws.
WITHOUT_CREWS = {"Mutation.optimizeDispatch", "Mutation.commitDispatchPlan"}


def problems_in(response: Any) -> list[str]:
    """Why an answer is not acceptable (nothing when it is)."""
    if response.status_code >= 500:
        return [f"status {response.status_code}"]
    try:
        body = response.json()
    except ValueError:
        return [f"not JSON: {response.text[:200]}"]
    if not isinstance(body, dict) or not ({"data", "errors"} & set(body)):
        return [f"not a GraphQL answer: {response.text[:200]}"]
    found = []
    text = json.dumps(body, ensure_ascii=False)
    found += [f"stack trace marker {m!r}" for m in ("Traceback", 'File "') if m in text]
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code == "INTERNAL" or "Cannot return null for non-nullable field" in error.get("message", ""):
            found.append(f"{code}: {error.get('message')}")
    for payload in (body.get("data") or {}).values():
        for error in (payload.get("errors") or []) if isinstance(payload, dict) else []:
            if isinstance(error, dict) and error.get("code") == "INTERNAL":
                found.append(f"INTERNAL in payload: {error.get('message')}")
    return found


def seed(session: Session, intake: IntakeContext, crews: bool) -> None:
    """A little data so that generated ids ("1", "2") sometimes hit something."""
    if crews:
        crew = create_crew(session, NewCrew(name="Crew 1", skills=["lv_overhead"], home_lat=30.6, home_lng=114.3))
        register_device(session, crew.id or 0, "device-1")
    for summary in ("wire down on the road", "no power since noon"):
        create_ticket(session, intake, NewTicket(kind="FAULT_REPAIR", channel="HOTLINE", summary=summary,
                                                 lat=30.61, lng=114.31, contact_phone="13800001234"), "dispatcher")


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_generated_documents_never_get_a_server_error(label: str, client: TestClient, session: Session,
                                                      intake_context: IntakeContext, settings: Settings) -> None:
    seed(session, intake_context, crews=label not in WITHOUT_CREWS)
    role = Role.ADMIN if Role.ADMIN in ROOT_FIELDS[label] else Role.CREW
    token = issue_token(role, crew_id=1 if role == Role.CREW else None,
                        device_id="device-1" if role == Role.CREW else None, settings=settings)
    headers = {"Authorization": f"Bearer {token}"}

    @settings_for_fuzzing
    @given(case=OPERATIONS[label].as_strategy())
    def run(case: Any) -> None:
        response = client.post("/graphql", json={"query": case.body}, headers=headers)
        found = problems_in(response)
        assert not found, f"{found} for:\n{case.body}"

    run()


settings_for_fuzzing = settings(max_examples=EXAMPLES_PER_FIELD, deadline=None, derandomize=True, database=None,
                                suppress_health_check=list(HealthCheck))

HOSTILE_STRINGS = ["", " ", "0", "-1", "99999999999999999999", "VGlja2V0Oi0x", "Q3JldzpB", "' OR 1=1 --",
                   "\u0000", "🙂" * 50, "x" * 5000, "null", "Ticket:1"]
SUBSCRIPTIONS = {
    "ticketUpdated": "subscription($a: String!, $b: String!) { ticketUpdated(number: $a, phoneLast4: $b) { status } }",
    "crewJobs": "subscription($a: ID!, $b: String) { crewJobs(crewId: $a, since: $b) { cursor } }",
}


@pytest.mark.parametrize("name", sorted(SUBSCRIPTIONS))
def test_hostile_subscription_arguments_get_graphql_errors(name: str, client: TestClient, session: Session,
                                                          intake_context: IntakeContext, settings: Settings) -> None:
    seed(session, intake_context, crews=True)
    token = issue_token(Role.ADMIN, settings=settings)
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        for i, (a, b) in enumerate(zip(HOSTILE_STRINGS, reversed(HOSTILE_STRINGS), strict=True)):
            ws.send_json({"id": str(i), "type": "subscribe",
                          "payload": {"query": SUBSCRIPTIONS[name], "variables": {"a": a, "b": b}}})
            message = ws.receive_json()
            text = json.dumps(message)
            assert message["type"] in {"error", "next"} and "Traceback" not in text and "INTERNAL" not in text, text
            if message["type"] == "next":
                ws.send_json({"id": str(i), "type": "complete"})
