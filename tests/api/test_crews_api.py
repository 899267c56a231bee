"""Crews and generators over GraphQL: registration, listing, and who may do it."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

CREATE_CREW = """mutation($input: CreateCrewInput!){ createCrew(input: $input){
  crew { id name skills home { lat lng } location { lat lng } canTowGenerator status route { sequence } }
  errors { field message code } } }"""
CREATE_GENERATOR = """mutation($input: CreateMobileGeneratorInput!){ createMobileGenerator(input: $input){
  generator { id name capacityKw location { lat lng } status assignedTicket { id } }
  errors { field message code } } }"""


def crew_input(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"name": "城区抢修一班 City Repair 1", "skills": ["lv_overhead", "transformer"],
                              "home": {"lat": 30.6, "lng": 114.3}, "canTowGenerator": True}
    values.update(overrides)
    return values


def test_a_dispatcher_registers_a_crew_that_starts_at_home_and_available(api: Api) -> None:
    payload = api(CREATE_CREW, {"input": crew_input()})["data"]["createCrew"]
    assert payload["errors"] == []
    crew = payload["crew"]
    assert crew["location"] == crew["home"] == {"lat": 30.6, "lng": 114.3}
    assert crew["status"] == "AVAILABLE" and crew["route"] == [] and crew["canTowGenerator"]
    listed = api("{ crews { name status } }")["data"]["crews"]
    assert listed == [{"name": "城区抢修一班 City Repair 1", "status": "AVAILABLE"}]


def test_crew_input_is_validated(api: Api) -> None:
    payload = api(CREATE_CREW, {"input": crew_input(name="", skills=["Live Line!"], home={"lat": 120, "lng": 0},
                                                    shiftStart="2026-11-23T18:00:00+00:00",
                                                    shiftEnd="2026-11-23T08:00:00+00:00")})["data"]["createCrew"]
    assert {e["field"][0] for e in payload["errors"]} == {"name", "skills", "home", "shiftEnd"}


def test_a_crew_off_shift_is_listed_as_off_shift_and_filtered(api: Api) -> None:
    api(CREATE_CREW, {"input": crew_input(name="night", shiftStart="2030-01-01T18:00:00+00:00",
                                          shiftEnd="2030-01-02T06:00:00+00:00")})
    api(CREATE_CREW, {"input": crew_input(name="day")})
    off = api("{ crews(status: [OFF_SHIFT]) { name } }")["data"]["crews"]
    assert off == [{"name": "night"}]


def test_lists_of_crews_and_generators_page_with_first_and_offset(api: Api) -> None:
    for name in ("one", "two", "three"):
        api(CREATE_CREW, {"input": crew_input(name=name)})
        api(CREATE_GENERATOR, {"input": {"name": f"gen {name}", "capacityKw": 200, "location": {"lat": 30.6,
                                                                                           "lng": 114.3}}})
    assert [c["name"] for c in api("{ crews { name } }")["data"]["crews"]] == ["one", "two", "three"]
    assert api("{ crews(first: 1, offset: 1) { name } }")["data"]["crews"] == [{"name": "two"}]
    assert api("{ mobileGenerators(offset: 2) { name } }")["data"]["mobileGenerators"] == [{"name": "gen three"}]
    too_many = api("{ crews(first: 100000) { name } }")
    assert too_many["data"] is None and "first must be between 0 and" in too_many["errors"][0]["message"]
    negative = api("{ mobileGenerators(offset: -1) { name } }")
    assert negative["errors"][0]["extensions"]["code"] == "INVALID"


def test_generators_are_registered_with_capacity_and_location(api: Api) -> None:
    payload = api(CREATE_GENERATOR, {"input": {"name": "移动发电车 1号 500 kW", "capacityKw": 500,
                                               "location": {"lat": 30.62, "lng": 114.28}}})
    generator = payload["data"]["createMobileGenerator"]["generator"]
    assert generator["status"] == "AVAILABLE" and generator["capacityKw"] == 500
    bad = api(CREATE_GENERATOR, {"input": {"name": "g", "capacityKw": -5, "location": {"lat": 0, "lng": 190}}})
    assert {e["field"][0] for e in bad["data"]["createMobileGenerator"]["errors"]} == {"capacityKw", "location"}
    assert api("{ mobileGenerators { name } }")["data"]["mobileGenerators"] == [{"name": "移动发电车 1号 500 kW"}]


def test_a_crew_token_cannot_create_crews_but_can_see_them(api: Api) -> None:
    denied = api(CREATE_CREW, {"input": crew_input()}, role="crew", crew_id=1)["data"]["createCrew"]
    assert denied["crew"] is None and denied["errors"][0]["code"] == "FORBIDDEN"
    assert api("{ crews { name } }", role="crew", crew_id=1)["data"]["crews"] == []
    assert api("{ tickets { totalCount } }", role="crew", crew_id=1)["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_crew_lent_to_another_region_leaves_this_regions_board(api: Api) -> None:
    crew = api(CREATE_CREW, {"input": crew_input()})["data"]["createCrew"]["crew"]
    lend = """mutation($input: LendCrewInput!){ lendCrew(input: $input){ crew { region } errors { field code } } }"""
    moved = api(lend, {"input": {"crewId": crew["id"], "region": "east-storm"}})["data"]["lendCrew"]
    assert moved == {"crew": {"region": "east-storm"}, "errors": []}
    bad = api(lend, {"input": {"crewId": crew["id"], "region": "no spaces please"}})["data"]["lendCrew"]
    assert bad["errors"] == [{"field": ["region"], "code": "INVALID"}]
