"""Tickets over GraphQL: intake, listing with filters and pages, lookup, cancel, and clear errors."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

CREATE = """
mutation Create($input: CreateTicketInput!) {
  createTicket(input: $input) {
    ticket { id number kind channel priority status summary areaType location { lat lng } requiredSkills
             needsGenerator customersAffected respondBy resolveBy overdue createdAt
             events { at status note source } }
    duplicateOf { id }
    errors { field message code }
  }
}"""

TICKETS = """
query List($status: [TicketStatus!], $kind: [TicketKind!], $priority: [Priority!], $overdue: Boolean,
           $first: Int, $after: String) {
  tickets(status: $status, kind: $kind, priority: $priority, overdue: $overdue, first: $first, after: $after) {
    totalCount
    edges { cursor node { id number priority kind } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


def create(api: Api, role: str = "dispatcher", **input_: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"kind": "FAULT_REPAIR", "channel": "APP", "summary": "no power",
                              "location": {"lat": 30.61, "lng": 114.31}}
    values.update(input_)
    return api(CREATE, {"input": values}, role=role)["data"]["createTicket"]


def test_a_dispatcher_creates_a_ticket_and_reads_it_back_by_number_id_and_node(api: Api) -> None:
    payload = create(api, summary="Wire down on Binjiang Road", contactPhone="+86 138 0013 8000")
    assert payload["errors"] == []
    ticket = payload["ticket"]
    assert ticket["priority"] == "EMERGENCY" and ticket["areaType"] == "URBAN"
    assert ticket["requiredSkills"] == ["lv_overhead"]
    assert ticket["events"][0]["status"] == "NEW" and ticket["events"][0]["source"] == "dispatcher"
    by_number = api("query($n: String){ ticket(number: $n){ id } }", {"n": ticket["number"]})
    by_id = api("query($id: ID){ ticket(id: $id){ number } }", {"id": ticket["id"]})
    node = api("query($id: ID!){ node(id: $id){ id ... on Ticket { number } } }", {"id": ticket["id"]})
    assert by_number["data"]["ticket"]["id"] == ticket["id"]
    assert by_id["data"]["ticket"]["number"] == ticket["number"]
    assert node["data"]["node"]["number"] == ticket["number"]


def test_a_retried_create_with_the_same_client_request_id_returns_the_first_ticket(api: Api) -> None:
    first = create(api, clientRequestId="wechat-msg-8812")["ticket"]
    again = create(api, clientRequestId="wechat-msg-8812", summary="different text, same request")["ticket"]
    assert again["id"] == first["id"] and again["summary"] == "no power"


def test_bad_input_answers_user_errors_with_field_message_and_code(api: Api) -> None:
    payload = create(api, summary="x" * 10_000, location={"lat": 91, "lng": 114.3}, customersAffected=-1,
                     contactPhone="12ab")
    assert payload["ticket"] is None
    codes = {tuple(e["field"]): e["code"] for e in payload["errors"]}
    assert codes == {("summary",): "INVALID", ("location",): "INVALID", ("customersAffected",): "INVALID",
                     ("contactPhone",): "INVALID"}
    assert all(e["message"] for e in payload["errors"])


def test_an_unknown_enum_value_is_a_graphql_error_not_a_500(api: Api) -> None:
    body = api(CREATE, {"input": {"kind": "FIRE", "channel": "APP", "summary": "x"}}, status=400)
    assert "FIRE" in body["errors"][0]["message"]
    assert "Traceback" not in str(body)


def test_malformed_json_and_documents_get_a_graphql_error_with_status_400(api: Api) -> None:
    response = api.client.post("/graphql", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["errors"][0]["message"]
    response = api.client.post("/graphql", json={"query": "{ tickets(first: 2) { totalCount "})
    assert response.status_code == 400 and "Syntax Error" in response.json()["errors"][0]["message"]


def test_tickets_filter_by_kind_priority_and_status_and_page_with_cursors(api: Api) -> None:
    for i in range(3):
        create(api, summary=f"outage {i}")
    create(api, kind="COMPLAINT", summary="billing is wrong")
    create(api, summary="路灯不亮")
    faults = api(TICKETS, {"kind": ["FAULT_REPAIR"], "first": 2})["data"]["tickets"]
    assert faults["totalCount"] == 4 and len(faults["edges"]) == 2 and faults["pageInfo"]["hasNextPage"]
    rest = api(TICKETS, {"kind": ["FAULT_REPAIR"], "first": 2, "after": faults["pageInfo"]["endCursor"]})
    rest_page = rest["data"]["tickets"]
    assert len(rest_page["edges"]) == 2 and not rest_page["pageInfo"]["hasNextPage"]
    numbers = {e["node"]["number"] for e in faults["edges"] + rest_page["edges"]}
    assert len(numbers) == 4
    low = api(TICKETS, {"priority": ["LOW"]})["data"]["tickets"]
    assert [e["node"]["priority"] for e in low["edges"]] == ["LOW"]
    assert api(TICKETS, {"status": ["NEW"]})["data"]["tickets"]["totalCount"] == 5
    assert api(TICKETS, {"overdue": True})["data"]["tickets"]["totalCount"] == 0


def test_page_size_is_bounded_and_a_bad_cursor_is_a_clear_error(api: Api) -> None:
    too_big = api(TICKETS, {"first": 100_000})
    assert too_big["errors"][0]["extensions"]["code"] == "INVALID"
    bad = api(TICKETS, {"after": "not-a-cursor"})
    assert "cursor" in bad["errors"][0]["message"]


def test_cancel_ticket_records_the_reason(api: Api) -> None:
    ticket = create(api)["ticket"]
    mutation = """mutation($input: CancelTicketInput!){ cancelTicket(input: $input){
        ticket { status events { status note } } errors { field code } } }"""
    done = api(mutation, {"input": {"ticketId": ticket["id"], "reason": "duplicate call"}})["data"]["cancelTicket"]
    assert done["errors"] == [] and done["ticket"]["status"] == "CANCELLED"
    assert done["ticket"]["events"][-1] == {"status": "CANCELLED", "note": "duplicate call"}
    unknown = api(mutation, {"input": {"ticketId": "999999", "reason": "x"}})["data"]["cancelTicket"]
    assert unknown["errors"][0]["code"] == "NOT_FOUND"


def test_anonymous_callers_cannot_list_tickets_or_create_them(api: Api) -> None:
    listed = api(TICKETS, role=None)
    assert listed["data"] is None and listed["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    created = create(api, role=None)
    assert created["ticket"] is None and created["errors"][0]["code"] == "UNAUTHENTICATED"


def test_an_expired_or_forged_token_is_unauthenticated_with_the_reason(api: Api) -> None:
    response = api.client.post("/graphql", json={"query": "{ tickets { totalCount } }"},
                               headers={"Authorization": "Bearer not.a.token"})
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED" and "invalid token" in error["message"]


def test_the_health_endpoint_checks_the_database(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"
