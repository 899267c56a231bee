"""Dispatch over GraphQL: optimise (propose or commit), read the plan with reasons, assign and pin by hand."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

PLAN_FIELDS = """id status solveSeconds lateTickets totalTravelMinutes
  assignments { sequence pinned reason plannedArrival plannedFinish ticket { number } crew { name } }
  unassigned { reason ticket { number } }"""
OPTIMIZE = f"""mutation($input: OptimizeDispatchInput!){{ optimizeDispatch(input: $input){{
  plan {{ {PLAN_FIELDS} }} errors {{ field message code }} }} }}"""
ASSIGN = """mutation($input: AssignTicketInput!){ assignTicket(input: $input){
  assignment { pinned reason crew { name route { ticket { number } } } ticket { number status eta } }
  warnings errors { field message code } } }"""


def setup_board(api: Api) -> dict[str, Any]:
    crew = api("""mutation{ createCrew(input: {name: "West crew", skills: ["lv_overhead"],
                 home: {lat: 30.60, lng: 114.26}}){ crew { id } } }""")["data"]["createCrew"]["crew"]
    ticket = api("""mutation{ createTicket(input: {kind: FAULT_REPAIR, channel: HOTLINE, summary: "停电",
                   location: {lat: 30.61, lng: 114.27}, contactPhone: "13800138000"}){ ticket { id number } } }""")
    return {"crew": crew, "ticket": ticket["data"]["createTicket"]["ticket"]}


def test_a_dispatcher_proposes_then_commits_a_plan_and_reads_why(api: Api) -> None:
    board = setup_board(api)
    proposed = api(OPTIMIZE, {"input": {"timeLimitSeconds": 1, "commit": False}})["data"]["optimizeDispatch"]
    assert proposed["errors"] == [] and proposed["plan"]["status"] == "PROPOSED"
    assignment = proposed["plan"]["assignments"][0]
    assert assignment["crew"]["name"] == "West crew" and assignment["reason"]
    assert api("query($n: String){ ticket(number: $n){ status } }", {"n": board["ticket"]["number"]})[
        "data"]["ticket"]["status"] == "NEW"
    committed = api(OPTIMIZE, {"input": {"timeLimitSeconds": 1, "commit": True}})["data"]["optimizeDispatch"]
    assert committed["plan"]["status"] == "COMMITTED"
    latest = api("{ dispatchPlan { id status } }")["data"]["dispatchPlan"]
    assert latest == {"id": committed["plan"]["id"], "status": "COMMITTED"}
    ticket = api("query($n: String){ ticket(number: $n){ status eta assignment { crew { name } } } }",
                 {"n": board["ticket"]["number"]})["data"]["ticket"]
    assert ticket["status"] == "ASSIGNED" and ticket["eta"] and ticket["assignment"]["crew"]["name"] == "West crew"


def test_a_bad_time_limit_is_a_user_error(api: Api) -> None:
    payload = api(OPTIMIZE, {"input": {"timeLimitSeconds": -1}})["data"]["optimizeDispatch"]
    assert payload["plan"] is None and payload["errors"][0]["field"] == ["timeLimitSeconds"]


def test_assign_ticket_pins_and_answers_errors_for_unknown_ids(api: Api) -> None:
    board = setup_board(api)
    done = api(ASSIGN, {"input": {"ticketId": board["ticket"]["id"], "crewId": board["crew"]["id"], "pin": True}})
    payload = done["data"]["assignTicket"]
    assert payload["errors"] == [] and payload["assignment"]["pinned"]
    assert payload["assignment"]["ticket"]["status"] == "ASSIGNED"
    assert payload["assignment"]["crew"]["route"] == [{"ticket": {"number": board["ticket"]["number"]}}]
    unknown = api(ASSIGN, {"input": {"ticketId": board["ticket"]["id"], "crewId": "Q3JldzoxMjM0NQ=="}})
    assert unknown["data"]["assignTicket"]["errors"][0]["code"] == "NOT_FOUND"


def test_only_dispatchers_optimise(api: Api) -> None:
    denied = api(OPTIMIZE, {"input": {"commit": True}}, role="crew", crew_id=1)["data"]["optimizeDispatch"]
    assert denied["errors"][0]["code"] == "FORBIDDEN"
