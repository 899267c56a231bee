"""Who may call what, checked for every root field of the served schema × every role, through the API.

The expected answer of each cell comes from one table, api/permissions.py: ROOT_FIELDS (roles) and CREW_SCOPED (a
crew device acts for its own crew only). Each field is called for real with minimal valid arguments (EXAMPLES
below): an allowed role gets an answer without errors, a refused one FORBIDDEN (signed in) or UNAUTHENTICATED
(anonymous). A root field served but missing from ROOT_FIELDS or from EXAMPLES fails here, so a new field can't
be published without deciding who may use it.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from graphql_relay import to_global_id
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.testclient import TestClient

from api.auth import Role, issue_token
from api.graphql.schema import schema
from api.permissions import CREW_SCOPED, ROOT_FIELDS
from core.clock import utcnow
from core.settings import Settings
from crews.models import Crew
from crews.roster import NewCrew, create_crew
from customers.directory import import_network
from customers.planned import NewPlannedOutage, create_planned_outage
from dispatch.enums import TicketStatus
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.models import Ticket
from dispatch.planning import AssignRequest, assign_ticket, optimize_and_store
from dispatch.tickets import change_status
from mobile_sync.changes import last_sequence
from mobile_sync.protocol import register_device
from quality.models import CallbackTask

ROLES = ("ADMIN", "DISPATCHER", "CREW_OWN", "CREW_OTHER", "PUBLIC")
ROOTS = (schema.graphql_schema.query_type, schema.graphql_schema.mutation_type, schema.graphql_schema.subscription_type)
SERVED = sorted(f"{root.name}.{name}" for root in ROOTS if root is not None for name in root.fields)
DENIED = ("FORBIDDEN", "UNAUTHENTICATED")


def expected(key: str, role: str) -> str:
    """What the permission table says `role` gets from root field `key`: ALLOWED, FORBIDDEN or UNAUTHENTICATED."""
    as_role = Role.CREW if role.startswith("CREW") else Role(role)
    if as_role not in ROOT_FIELDS.get(key, frozenset()):
        return "UNAUTHENTICATED" if as_role == Role.PUBLIC else "FORBIDDEN"
    if role == "CREW_OTHER" and key in CREW_SCOPED:
        return "FORBIDDEN"
    return "ALLOWED"


@dataclass
class World:
    """Two crews with a device each, the tokens of every role, and a way to make fresh tickets."""

    session: Session
    intake: IntakeContext
    settings: Settings
    own_crew: int = 0
    other_crew: int = 0
    tokens: dict[str, str | None] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=itertools.count)

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}-{uuid.uuid4().hex[:6]}"

    def ticket(self, status: TicketStatus | None = None, located: bool = True) -> Ticket:
        report = NewTicket(kind="FAULT_REPAIR", channel="HOTLINE", summary="no power in the street",
                           lat=30.61 if located else None, lng=114.31 if located else None, priority="LOW",
                           required_skills=["lv_overhead"], contact_phone="13800001234")
        ticket = create_ticket(self.session, self.intake, report, source="dispatcher").ticket
        if status is not None:
            change_status(self.session, ticket, status, "dispatcher")
            self.session.commit()
        return ticket


def make_world(session: Session, intake: IntakeContext, settings: Settings) -> World:
    world = World(session, intake, settings)
    crews = []
    for name in ("Own crew", "Other crew"):
        crew = create_crew(session, NewCrew(name=name, skills=["lv_overhead", "hv"], home_lat=30.6, home_lng=114.3,
                                            can_tow_generator=True))
        register_device(session, crew.id or 0, f"device-of-{crew.id}")
        crews.append(crew.id or 0)
    world.own_crew, world.other_crew = crews
    world.tokens = {
        "ADMIN": issue_token(Role.ADMIN, settings=settings),
        "DISPATCHER": issue_token(Role.DISPATCHER, settings=settings),
        "CREW_OWN": issue_token(Role.CREW, crew_id=world.own_crew, device_id=f"device-of-{world.own_crew}",
                                settings=settings),
        "CREW_OTHER": issue_token(Role.CREW, crew_id=world.other_crew, device_id=f"device-of-{world.other_crew}",
                                  settings=settings),
        "PUBLIC": None,
    }
    return world


Example = Callable[[World], tuple[str, dict[str, Any]]]


def mutation(name: str, input_type: str, selection: str = "") -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {selection} errors {{ code message }} }} }}"


def tracked(world: World, status: TicketStatus | None = None) -> dict[str, Any]:
    ticket = world.ticket(status)
    return {"number": ticket.number, "last4": "1234"}


def spare_crew(world: World) -> int:
    """A crew of its own for an example that changes it (e.g. marks it unavailable)."""
    return create_crew(world.session, NewCrew(name=world.unique("Spare crew"), skills=["lv_overhead"],
                                              home_lat=30.6, home_lng=114.3)).id or 0


def own_job(world: World) -> Ticket:
    """A ticket assigned to the own crew: its device may read it, the other crew's may not."""
    ticket = world.ticket()
    assign_ticket(world.session, AssignRequest(ticket_id=ticket.id or 0, crew_id=world.own_crew), "dispatcher")
    return ticket


def unavailable(world: World, crew_id: int) -> int:
    """The crew, marked unavailable (so that it can come back)."""
    crew = world.session.get(Crew, crew_id)
    assert crew is not None
    crew.unavailable = True
    world.session.add(crew)
    world.session.commit()
    return crew_id


def callback_task(world: World) -> int:
    ticket = world.ticket(TicketStatus.RESOLVED)
    task = CallbackTask(ticket_id=ticket.id or 0, resolved_at=utcnow(), reason="SAMPLE", due_at=utcnow())
    world.session.add(task)
    world.session.commit()
    return task.id or 0


def proposed_plan(world: World) -> int:
    world.ticket()
    return optimize_and_store(world.session, time_limit_s=0.2, commit=False).id or 0


def feeder(world: World) -> str:
    name = world.unique("F")
    assert import_network(world.session, f"device_id,kind,parent_id\n{name},FEEDER,\n").created == 1
    return name


def planned_outage(world: World) -> int:
    start = utcnow() + timedelta(days=1)
    outage = create_planned_outage(world.session, NewPlannedOutage(title="Feeder works", start_at=start,
                                                                   end_at=start + timedelta(hours=2),
                                                                   feeder=feeder(world)))
    world.session.commit()
    return outage.id or 0


EXAMPLES: dict[str, Example] = {
    "Query.node": lambda w: ("query($id: ID!) { node(id: $id) { id } }",
                             {"id": to_global_id("Ticket", str(w.ticket().id))}),
    "Query.ticket": lambda w: ("query($n: String) { ticket(number: $n) { number } }", {"n": own_job(w).number}),
    "Query.tickets": lambda w: ("{ tickets(first: 5) { totalCount } }", {}),
    "Query.incidents": lambda w: ("{ incidents { id } }", {}),
    "Query.crews": lambda w: ("{ crews { id } }", {}),
    "Query.mobileGenerators": lambda w: ("{ mobileGenerators { id } }", {}),
    "Query.dispatchPlan": lambda w: ("{ dispatchPlan { id } }", {}),
    "Query.recommendSlots": lambda w: ("query($t: ID!) { recommendSlots(ticketId: $t, count: 3) { start } }",
                                       {"t": str(w.ticket().id)}),
    "Query.syncPull": lambda w: ("query($d: ID!) { syncPull(deviceId: $d) { cursor } }",
                                 {"d": f"device-of-{w.own_crew}"}),
    "Query.trackTicket": lambda w: ("query($n: String!, $p: String!) { trackTicket(number: $n, phoneLast4: $p) "
                                    "{ status } }", {"n": w.ticket().number, "p": "1234"}),
    "Query.outageSummary": lambda w: ("{ outageSummary { cell } }", {}),
    "Query.repeatCallers": lambda w: ("{ repeatCallers { phoneMasked } }", {}),
    "Query.hotspots": lambda w: ("{ hotspots { keyword } }", {}),
    "Query.serviceStats": lambda w: ("{ serviceStats { ticketCount } }", {}),
    "Query.qualityTasks": lambda w: ("{ qualityTasks { id } }", {}),
    "Query.callbackTasks": lambda w: ("{ callbackTasks { id } }", {}),
    "Query.me": lambda w: ("{ me { role } }", {}),
    "Mutation.createTicket": lambda w: (mutation("createTicket", "CreateTicketInput", "ticket { id }"), {"input": {
        "kind": "FAULT_REPAIR", "channel": "APP", "summary": "no power"}}),
    "Mutation.cancelTicket": lambda w: (mutation("cancelTicket", "CancelTicketInput", "ticket { status }"), {
        "input": {"ticketId": str(w.ticket().id), "reason": "reported twice"}}),
    "Mutation.createCrew": lambda w: (mutation("createCrew", "CreateCrewInput", "crew { id }"), {"input": {
        "name": w.unique("Crew"), "skills": ["lv_overhead"], "home": {"lat": 30.6, "lng": 114.3}}}),
    "Mutation.createMobileGenerator": lambda w: (mutation("createMobileGenerator", "CreateMobileGeneratorInput",
                                                          "generator { id }"), {"input": {
        "name": w.unique("Gen"), "capacityKw": 200.0, "location": {"lat": 30.6, "lng": 114.3}}}),
    "Mutation.lendCrew": lambda w: (mutation("lendCrew", "LendCrewInput", "crew { id }"), {"input": {
        "crewId": str(w.own_crew), "region": "north"}}),
    "Mutation.optimizeDispatch": lambda w: (mutation("optimizeDispatch", "OptimizeDispatchInput", "plan { id }"), {
        "input": {"timeLimitSeconds": 0.2, "commit": False}}),
    "Mutation.commitDispatchPlan": lambda w: (mutation("commitDispatchPlan", "CommitDispatchPlanInput", "plan { id }"),
                                              {"input": {"planId": str(proposed_plan(w))}}),
    "Mutation.bookSlot": lambda w: (mutation("bookSlot", "BookSlotInput", "ticket { id }"), {"input": {
        "ticketId": str(w.ticket().id), "start": (utcnow() + timedelta(hours=2)).isoformat(),
        "end": (utcnow() + timedelta(hours=4)).isoformat()}}),
    "Mutation.reportOverrun": lambda w: (mutation("reportOverrun", "ReportOverrunInput", "changes { kind }"), {
        "input": {"ticketId": str(w.ticket(TicketStatus.ON_SITE).id),
                  "expectedFinish": (utcnow() + timedelta(hours=1)).isoformat()}}),
    "Mutation.crewUnavailable": lambda w: (mutation("crewUnavailable", "CrewUnavailableInput", "plan { id }"), {
        "input": {"crewId": str(w.own_crew), "reason": "vehicle broken"}}),
    "Mutation.crewAvailable": lambda w: (mutation("crewAvailable", "CrewAvailableInput", "plan { id }"), {
        "input": {"crewId": str(unavailable(w, w.own_crew)), "note": "vehicle fixed"}}),
    "Mutation.mealBreakTaken": lambda w: (mutation("mealBreakTaken", "MealBreakTakenInput", "plan { id }"), {
        "input": {"crewId": str(w.own_crew)}}),
    "Mutation.customerNotHome": lambda w: (mutation("customerNotHome", "CustomerNotHomeInput", "plan { id }"), {
        "input": {"ticketId": str(w.ticket(TicketStatus.EN_ROUTE).id), "reason": "nobody at the door"}}),
    "Mutation.setCrewsNeeded": lambda w: (mutation("setCrewsNeeded", "SetCrewsNeededInput", "crewsNeeded"), {
        "input": {"ticketId": str(w.ticket().id), "crewsNeeded": 2}}),
    "Mutation.setTicketDependency": lambda w: (mutation("setTicketDependency", "SetTicketDependencyInput",
                                                        "ticket { id }"), {"input": {
        "ticketId": str(w.ticket().id), "dependsOnId": str(w.ticket().id), "gapMinutes": 10}}),
    "Mutation.crewsJoined": lambda w: (mutation("crewsJoined", "CrewsJoinedInput", "plan { id }"), {
        "input": {"crewIds": [str(spare_crew(w))]}}),
    "Mutation.assignTicket": lambda w: (mutation("assignTicket", "AssignTicketInput", "assignment { sequence }"), {
        "input": {"ticketId": str(w.ticket().id), "crewId": str(w.own_crew)}}),
    "Mutation.syncPush": lambda w: (mutation("syncPush", "SyncPushInput", "results { applied }"), {"input": {
        "deviceId": f"device-of-{w.own_crew}", "mutations": [{
            "clientMutationId": w.unique("m"), "kind": "NOTE", "note": "on the way",
            "occurredAt": utcnow().isoformat()}]}}),
    "Mutation.registerDevice": lambda w: (mutation("registerDevice", "RegisterDeviceInput", "token"), {"input": {
        "deviceId": w.unique("tablet"), "crewId": str(w.own_crew)}}),
    "Mutation.submitFeedback": lambda w: (mutation("submitFeedback", "SubmitFeedbackInput"), {"input": {
        "ticketNumber": w.ticket(TicketStatus.RESOLVED).number, "phoneLast4": "1234", "score": 5}}),
    "Mutation.recordCallback": lambda w: (mutation("recordCallback", "RecordCallbackInput", "callback { id }"), {
        "input": {"callbackId": str(callback_task(w)), "reached": False}}),
    "Mutation.handoverTicket": lambda w: (mutation("handoverTicket", "HandoverTicketInput", "ticket { id }"), {
        "input": {"ticketId": str(w.ticket(located=False).id), "toUnit": "NORTH", "reason": "their area"}}),
    "Mutation.importCustomers": lambda w: (mutation("importCustomers", "ImportInput", "created"), {"input": {
        "csv": f"account_number,phone,language\n{w.unique('A')},13800000001,zh\n"}}),
    "Mutation.importNetwork": lambda w: (mutation("importNetwork", "ImportInput", "created"), {"input": {
        "csv": f"device_id,kind,parent_id\n{w.unique('F')},FEEDER,\n"}}),
    "Mutation.planOutage": lambda w: (mutation("planOutage", "PlanOutageInput", "plannedOutage { id }"), {"input": {
        "title": "Feeder works", "startAt": (utcnow() + timedelta(days=1)).isoformat(),
        "endAt": (utcnow() + timedelta(days=1, hours=2)).isoformat(), "feeder": feeder(w)}}),
    "Mutation.restorePlannedOutage": lambda w: (mutation("restorePlannedOutage", "RestorePlannedOutageInput",
                                                         "plannedOutage { id }"),
                                                {"input": {"id": str(planned_outage(w))}}),
    "Mutation.revokeToken": lambda w: (mutation("revokeToken", "RevokeTokenInput", "revoked"), {"input": {
        "deviceId": w.unique("lost-tablet"), "reason": "lost"}}),
    "Subscription.ticketUpdated": lambda w: ("subscription($n: String!, $p: String!) { ticketUpdated(number: $n, "
                                             "phoneLast4: $p) { status } }", {"n": w.ticket().number, "p": "1234"}),
    "Subscription.crewJobs": lambda w: ("subscription($c: ID!) { crewJobs(crewId: $c) { cursor } }",
                                        {"c": str(w.own_crew)}),
    "Subscription.dispatchBoard": lambda w: ("subscription { dispatchBoard { number } }", {}),
}


def outcome_of_http(key: str, body: dict[str, Any]) -> tuple[str, Any]:
    name = key.split(".")[1]
    if key.startswith("Mutation."):
        errors = (body.get("data") or {}).get(name, {}).get("errors") if body.get("data") else body.get("errors")
        codes = [e.get("code") or (e.get("extensions") or {}).get("code") for e in errors or []]
    else:
        codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
    denied = [c for c in codes if c in DENIED]
    if denied:
        return denied[0], body
    return ("ALLOWED" if not codes else "ERROR"), body


def settle(client: TestClient, db: Engine) -> None:
    """Wait until the app's relay has handed on every committed change, so none arrives while a socket closes."""
    with db.connect() as connection:
        last = last_sequence(connection)
    live = client.app.state.services.live  # type: ignore[attr-defined]
    for _ in range(1000):
        if live.hub.delivered >= last:
            return
        time.sleep(0.01)


def outcome_of_subscription(client: TestClient, world: World, token: str | None, document: str,
                            variables: dict[str, Any]) -> tuple[str, Any]:
    settle(client, world.session.get_bind())  # type: ignore[arg-type]
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"} if token else {}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": document, "variables": variables}})
        if "dispatchBoard" in document:
            world.ticket()  # a change on the board: its first event (a refusal is already on its way)
        message = ws.receive_json()
        ws.send_json({"id": "1", "type": "complete"})
    if message["type"] == "next" and not message["payload"].get("errors"):
        return "ALLOWED", message
    errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors", [])
    codes = [(e.get("extensions") or {}).get("code") for e in errors]
    return next((c for c in codes if c in DENIED), "ERROR"), message


def test_every_served_root_field_is_in_the_permission_table_and_has_an_example() -> None:
    assert [key for key in SERVED if key not in ROOT_FIELDS] == []
    assert [key for key in SERVED if key not in EXAMPLES] == []
    assert [key for key in ROOT_FIELDS if key not in SERVED] == [], "the table names fields the schema lacks"
    assert set(SERVED) >= CREW_SCOPED


@pytest.mark.parametrize("key", SERVED)
def test_each_role_gets_what_the_permission_table_says(key: str, client: TestClient, session: Session, db: Engine,
                                                       intake_context: IntakeContext, settings: Settings) -> None:
    if key not in EXAMPLES:
        pytest.fail(f"{key} is served but has no example in EXAMPLES: add one and its row in ROOT_FIELDS")
    world = make_world(session, intake_context, settings)
    wrong = []
    for role in ROLES:
        document, variables = EXAMPLES[key](world)
        token = world.tokens[role]
        if key.startswith("Subscription."):
            got, answer = outcome_of_subscription(client, world, token, document, variables)
        else:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = client.post("/graphql", json={"query": document, "variables": variables}, headers=headers)
            assert response.status_code == 200, response.text
            got, answer = outcome_of_http(key, response.json())
        if got != expected(key, role):
            wrong.append(f"{role}: expected {expected(key, role)}, got {got}: {str(answer)[:300]}")
    assert wrong == [], f"{key}:\n" + "\n".join(wrong)
