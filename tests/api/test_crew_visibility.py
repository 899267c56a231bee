"""Specification: a crew device reads its own crew's jobs, not the whole board. Staff read everything.

The root fields a crew may call are in the authorization matrix; this is about what they return inside: a
ticket by number only when it is (or was) one of the crew's jobs, other crews' routes empty, a generator's
ticket only when it is the crew's job.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.testclient import TestClient

from api.auth import Role, issue_token
from core.settings import Settings
from crews.models import MobileGenerator
from crews.roster import NewCrew, create_crew
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.models import Ticket
from dispatch.planning import AssignRequest, assign_ticket

ROUTES = "{ crews { name route { ticket { number address } } } }"


def job_for(session: Session, intake: IntakeContext, crew_id: int, address: str) -> Ticket:
    ticket = create_ticket(session, intake, NewTicket(
        kind="FAULT_REPAIR", channel="HOTLINE", summary="no power", address=address, lat=30.61, lng=114.31,
        required_skills=["lv_overhead"]), "dispatcher").ticket
    assign_ticket(session, AssignRequest(ticket_id=ticket.id or 0, crew_id=crew_id), "dispatcher")
    return ticket


def ask(client: TestClient, token: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables or {}},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.json()


def test_a_crew_device_sees_its_own_jobs_and_not_other_crews(
        client: TestClient, session: Session, intake_context: IntakeContext, settings: Settings) -> None:
    crews = [create_crew(session, NewCrew(name=name, skills=["lv_overhead"], home_lat=30.6, home_lng=114.3))
             for name in ("North", "South")]
    north, south = (c.id or 0 for c in crews)
    mine = job_for(session, intake_context, north, "1 Riverside Road")
    theirs = job_for(session, intake_context, south, "9 Hill Street")
    generator = MobileGenerator(name="Gen 1", capacity_kw=200, lat=30.6, lng=114.3, assigned_ticket_id=theirs.id)
    session.add(generator)
    session.commit()
    device = issue_token(Role.CREW, crew_id=north, device_id="north-tablet", settings=settings)
    dispatcher = issue_token(Role.DISPATCHER, settings=settings)

    routes = {c["name"]: c["route"] for c in ask(client, device, ROUTES)["data"]["crews"]}
    assert routes == {"North": [{"ticket": {"number": mine.number, "address": "1 Riverside Road"}}], "South": []}
    staff = {c["name"]: len(c["route"]) for c in ask(client, dispatcher, ROUTES)["data"]["crews"]}
    assert staff == {"North": 1, "South": 1}

    by_number = "query($n: String) { ticket(number: $n) { number } }"
    assert ask(client, device, by_number, {"n": mine.number})["data"]["ticket"] == {"number": mine.number}
    refused = ask(client, device, by_number, {"n": theirs.number})
    assert refused["data"]["ticket"] is None
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    generators = "{ mobileGenerators { name assignedTicket { number } } }"
    assert ask(client, device, generators)["data"]["mobileGenerators"] == [{"name": "Gen 1", "assignedTicket": None}]
    assert ask(client, dispatcher, generators)["data"]["mobileGenerators"] == [
        {"name": "Gen 1", "assignedTicket": {"number": theirs.number}}]
