"""What the board needs from the API beyond the contract: committing the very plan the dispatcher reviewed
(`commitDispatchPlan`), refused when the board moved on since; and the region outline the map draws."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Api

PLAN = """id status assignments { sequence plannedArrival pinned ticket { id number } crew { id name } }
  unassigned { ticket { number } reason }"""
OPTIMIZE = f"""mutation($input: OptimizeDispatchInput!) {{ optimizeDispatch(input: $input) {{
  plan {{ {PLAN} }} errors {{ field message code }} }} }}"""
COMMIT = f"""mutation($input: CommitDispatchPlanInput!) {{ commitDispatchPlan(input: $input) {{
  plan {{ {PLAN} }} errors {{ field message code }} }} }}"""
ASSIGN = """mutation($input: AssignTicketInput!) { assignTicket(input: $input) { errors { code } } }"""
TICKET = """query($n: String) { ticket(number: $n) { status eta assignment { sequence crew { id } } } }"""


def make_board(api: Api) -> dict[str, Any]:
    """Two crews on call and three fault tickets between them, none assigned."""
    crews = [api("""mutation($name: String!, $lng: Float!) { createCrew(input: {name: $name, skills: ["lv_overhead"],
               home: {lat: 30.60, lng: $lng}}) { crew { id } } }""", {"name": name, "lng": lng})[
        "data"]["createCrew"]["crew"] for name, lng in (("West", 114.26), ("East", 114.36))]
    tickets = [api("""mutation($lat: Float!, $lng: Float!, $phone: String!) { createTicket(input: {kind: FAULT_REPAIR,
                 channel: HOTLINE, summary: "家里停电了", location: {lat: $lat, lng: $lng}, contactPhone: $phone}) {
                 ticket { id number } } }""", {"lat": 30.55 + 0.04 * i, "lng": 114.24 + 0.06 * i,
                                                "phone": f"1390000{i:04d}"})["data"]["createTicket"]["ticket"]
               for i in range(3)]
    return {"crews": crews, "tickets": tickets}


def propose(api: Api) -> dict[str, Any]:
    payload = api(OPTIMIZE, {"input": {"timeLimitSeconds": 1, "commit": False}})["data"]["optimizeDispatch"]
    assert payload["errors"] == [] and payload["plan"]["status"] == "PROPOSED"
    return payload["plan"]


def commit(api: Api, plan_id: str, role: str = "dispatcher") -> dict[str, Any]:
    return api(COMMIT, {"input": {"planId": plan_id}}, role=role, crew_id=1 if role == "crew" else None)[
        "data"]["commitDispatchPlan"]


def test_the_reviewed_proposal_is_what_gets_committed(api: Api) -> None:
    board = make_board(api)
    proposal = propose(api)
    assert proposal["assignments"], "two crews on call take the three tickets"
    for ticket in board["tickets"]:
        assert api(TICKET, {"n": ticket["number"]})["data"]["ticket"]["status"] == "NEW"  # proposing changes nothing

    committed = commit(api, proposal["id"])
    assert committed["errors"] == [] and committed["plan"]["status"] == "COMMITTED"
    assert committed["plan"]["assignments"] == proposal["assignments"]
    for a in proposal["assignments"]:
        ticket = api(TICKET, {"n": a["ticket"]["number"]})["data"]["ticket"]
        assert ticket["status"] == "ASSIGNED" and ticket["eta"] == a["plannedArrival"]
        assert ticket["assignment"] == {"sequence": a["sequence"], "crew": {"id": a["crew"]["id"]}}
    assert api("{ dispatchPlan { id status } }")["data"]["dispatchPlan"] == {"id": proposal["id"],
                                                                             "status": "COMMITTED"}


def test_a_proposal_is_refused_once_the_board_has_moved_on(api: Api) -> None:
    board = make_board(api)
    first = propose(api)
    assert commit(api, first["id"])["errors"] == []
    again = commit(api, first["id"])
    assert again["plan"] is None and again["errors"][0]["code"] == "CONFLICT" and "COMMITTED" in \
        again["errors"][0]["message"]

    # a dispatcher assigns by hand after the proposal was made: its routes are out of date
    outdated = propose(api)
    ticket = board["tickets"][0]
    other_crew = next(c for c in board["crews"]
                      if c["id"] != api(TICKET, {"n": ticket["number"]})["data"]["ticket"]["assignment"]["crew"]["id"])
    assert api(ASSIGN, {"input": {"ticketId": ticket["id"], "crewId": other_crew["id"]}})[
        "data"]["assignTicket"]["errors"] == []
    refused = commit(api, outdated["id"])
    assert refused["errors"][0]["code"] == "CONFLICT" and "optimise again" in refused["errors"][0]["message"]

    # two proposals, the later one committed: the earlier one can no longer be
    older, newer = propose(api), propose(api)
    assert commit(api, newer["id"])["errors"] == []
    late = commit(api, older["id"])
    assert late["errors"][0]["code"] == "CONFLICT" and "committed after" in late["errors"][0]["message"]


def test_only_staff_commit_plans_and_unknown_plans_are_not_found(api: Api) -> None:
    make_board(api)
    proposal = propose(api)
    denied = commit(api, proposal["id"], role="crew")
    assert denied["plan"] is None and denied["errors"][0]["code"] == "FORBIDDEN"
    missing = commit(api, "RGlzcGF0Y2hQbGFuOjk5OTk5")  # DispatchPlan:99999
    assert missing["errors"] == [{"field": ["planId"], "message": "plan 99999 does not exist", "code": "NOT_FOUND"}]
    assert commit(api, proposal["id"])["plan"]["status"] == "COMMITTED"


def test_the_region_outline_and_the_pages_are_served(client: TestClient) -> None:
    region = client.get("/region.geojson")
    assert region.status_code == 200 and region.headers["content-type"].startswith("application/geo+json")
    features = region.json()["features"]
    assert features[0]["properties"]["kind"] == "outline"  # drawn first, under everything
    areas = [f["properties"] for f in features if f["properties"]["kind"] == "area"]
    assert {a["area_type"] for a in areas} <= {"URBAN", "RURAL", "REMOTE"} and len(areas) >= 2
    assert all(f["geometry"]["type"] in {"Polygon", "MultiPolygon", "Point"} for f in features)
    for path in ("/board", "/track"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/web/track.js").headers["content-type"].split(";")[0] in {"text/javascript",
                                                                                 "application/javascript"}
    assert client.get("/web/../api/app.py").status_code == 404
