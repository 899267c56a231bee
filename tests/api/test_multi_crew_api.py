"""Multi-crew jobs over GraphQL: `crewsNeeded` at intake, the ticket's crews (lead and assisting) and its
dependency, and each assignment's role."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

CREATE = """mutation($input: CreateTicketInput!){ createTicket(input: $input){
  ticket { id number crewsNeeded dependsOn { id } dependsGapMinutes }
  errors { field message code } } }"""
TICKET = """query($id: ID){ ticket(id: $id){ status crewsNeeded dependsOn { number } dependsGapMinutes
  assignment { role crew { name } }
  assignments { role plannedArrival crew { name route { role ticket { number } } } } } }"""
OPTIMIZE = """mutation{ optimizeDispatch(input: {timeLimitSeconds: 1, commit: true}){
  plan { assignments { role crew { name } ticket { number } } } errors { message } } }"""


def create(api: Api, **input_: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"kind": "FAULT_REPAIR", "channel": "HOTLINE", "summary": "停电",
                              "location": {"lat": 30.60, "lng": 114.31}, "contactPhone": "13800138000"}
    values.update(input_)
    return api(CREATE, {"input": values})["data"]["createTicket"]


def add_crew(api: Api, name: str, lng: float) -> None:
    api("""mutation($input: CreateCrewInput!){ createCrew(input: $input){ crew { id } } }""",
        {"input": {"name": name, "skills": ["lv_overhead"], "home": {"lat": 30.60, "lng": lng}}})


def test_a_two_crew_job_round_trips_and_both_crews_show_on_the_ticket_with_their_role(api: Api) -> None:
    add_crew(api, "West crew", 114.26)
    add_crew(api, "East crew", 114.36)
    created = create(api, crewsNeeded=2)
    assert created["errors"] == [] and created["ticket"]["crewsNeeded"] == 2
    assert created["ticket"]["dependsOn"] is None and created["ticket"]["dependsGapMinutes"] == 0

    plan = api(OPTIMIZE)["data"]["optimizeDispatch"]["plan"]
    assert sorted(a["role"] for a in plan["assignments"]) == ["ASSIST", "LEAD"]

    ticket = api(TICKET, {"id": created["ticket"]["id"]})["data"]["ticket"]
    assert ticket["status"] == "ASSIGNED" and ticket["crewsNeeded"] == 2
    lead, assist = ticket["assignments"]
    assert (lead["role"], assist["role"]) == ("LEAD", "ASSIST")
    assert ticket["assignment"] == {"role": "LEAD", "crew": {"name": lead["crew"]["name"]}}
    assert {lead["crew"]["name"], assist["crew"]["name"]} == {"West crew", "East crew"}
    assert lead["plannedArrival"] == assist["plannedArrival"]
    assert assist["crew"]["route"] == [{"role": "ASSIST", "ticket": {"number": created["ticket"]["number"]}}]


def test_a_ticket_shows_the_job_it_waits_for(api: Api) -> None:
    first = create(api, summary="先做隔离操作")["ticket"]
    second = create(api, summary="再修线路", location={"lat": 30.62, "lng": 114.33}, contactPhone="13800138001")
    dependency = api("""mutation($input: SetTicketDependencyInput!){ setTicketDependency(input: $input){
                          errors { message } } }""",
                     {"input": {"ticketId": second["ticket"]["id"], "dependsOnId": first["id"], "gapMinutes": 15}})
    assert dependency["data"]["setTicketDependency"]["errors"] == []
    ticket = api(TICKET, {"id": second["ticket"]["id"]})["data"]["ticket"]
    assert ticket["dependsOn"] == {"number": first["number"]} and ticket["dependsGapMinutes"] == 15
    assert ticket["assignments"] == [] and ticket["assignment"] is None


def test_more_crews_than_a_job_may_have_is_a_user_error_on_crews_needed(api: Api) -> None:
    payload = create(api, crewsNeeded=5)
    assert payload["ticket"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [(["crewsNeeded"], "INVALID")]
