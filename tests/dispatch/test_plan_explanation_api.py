"""Visibility over GraphQL: a plan's score by goal, its KPIs, and why a crew is (not) going to a ticket."""

from __future__ import annotations

from tests.conftest import Api

CREW = """mutation($name: String!, $lat: Float!, $lng: Float!){ createCrew(input: {name: $name,
  skills: ["lv_overhead"], home: {lat: $lat, lng: $lng}}){ crew { id } } }"""
TICKET = """mutation($lat: Float!, $lng: Float!){ createTicket(input: {kind: FAULT_REPAIR, channel: HOTLINE,
  summary: "停电", location: {lat: $lat, lng: $lng}, contactPhone: "13800138000"}){ ticket { id number } } }"""
OPTIMIZE = """mutation{ optimizeDispatch(input: {timeLimitSeconds: 1, commit: true}){ plan {
  id score { total byGoal { goal cost } latenessByPriority { priority value } }
  kpis { travelShare meanUtilisation onTimeRateByPriority { priority value } crews { crew { name } utilisation
         overtimeMinutes } overtimeFairness { crewsWithOvertime maxMinutes } } } errors { message } } }"""
EXPLAIN = """query($t: ID!, $c: ID){ dispatchPlan { explain(ticketId: $t, crewId: $c) {
  reason crew { name } otherCrew { name } whyNotOtherCrew } } }"""


def test_a_committed_plan_shows_its_score_by_goal_kpis_and_answers_why_not_that_crew(api: Api) -> None:
    west = api(CREW, {"name": "West crew", "lat": 30.60, "lng": 114.26})["data"]["createCrew"]["crew"]
    east = api(CREW, {"name": "East crew", "lat": 30.60, "lng": 114.40})["data"]["createCrew"]["crew"]
    near_west = api(TICKET, {"lat": 30.605, "lng": 114.262})["data"]["createTicket"]["ticket"]

    plan = api(OPTIMIZE)["data"]["optimizeDispatch"]["plan"]

    goals = {g["goal"]: g["cost"] for g in plan["score"]["byGoal"]}
    assert {"lateness", "customer_minutes", "travel", "overtime", "fairness"} <= set(goals)
    assert abs(sum(goals.values()) - plan["score"]["total"]) < 1e-6
    assert goals["travel"] > 0 and goals["unassigned"] == 0
    kpis = plan["kpis"]
    assert 0 < kpis["travelShare"] < 1
    by_crew = {c["crew"]["name"]: c["utilisation"] for c in kpis["crews"]}
    assert by_crew["West crew"] > 0 and by_crew["East crew"] == 0
    assert kpis["overtimeFairness"]["crewsWithOvertime"] == 0

    why = api(EXPLAIN, {"t": near_west["id"], "c": east["id"]})["data"]["dispatchPlan"]["explain"]
    assert why["crew"]["name"] == "West crew" and why["reason"]
    assert why["otherCrew"]["name"] == "East crew" and "East" not in (why["reason"] or "")
    assert why["whyNotOtherCrew"]
    assert west["id"] != east["id"]
