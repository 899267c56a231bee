"""Customers track a ticket by number and the last four phone digits, and rate it once resolved."""

from __future__ import annotations

from tests.conftest import Api

TRACK = """query($n: String!, $p: String!){ trackTicket(number: $n, phoneLast4: $p){
  number status eta etr timeline { at message } } }"""
FEEDBACK = """mutation($input: SubmitFeedbackInput!){
  submitFeedback(input: $input){ errors { field message code } } }"""


def report(api: Api) -> dict[str, str]:
    body = api("""mutation{ createTicket(input: {kind: FAULT_REPAIR, channel: APP, summary: "停电",
                 location: {lat: 30.61, lng: 114.27}, contactName: "王女士", contactPhone: "13800131234"}){
                 ticket { id number } } }""")
    return body["data"]["createTicket"]["ticket"]


def test_a_customer_tracks_with_number_and_digits_and_sees_no_personal_data(api: Api) -> None:
    ticket = report(api)
    seen = api(TRACK, {"n": ticket["number"], "p": "1234"}, role=None)["data"]["trackTicket"]
    assert seen["number"] == ticket["number"] and seen["status"] == "NEW"
    assert [line["message"] for line in seen["timeline"]] == ["Report received"]
    assert "王" not in str(seen) and "13800131234" not in str(seen)


def test_wrong_digits_look_the_same_as_an_unknown_number(api: Api) -> None:
    ticket = report(api)
    wrong = api(TRACK, {"n": ticket["number"], "p": "9999"}, role=None)
    unknown = api(TRACK, {"n": "GC000000-99999", "p": "1234"}, role=None)
    assert wrong == unknown == {"data": {"trackTicket": None}}


def test_feedback_opens_after_resolution_and_is_given_once(api: Api) -> None:
    ticket = report(api)
    early = api(FEEDBACK, {"input": {"ticketNumber": ticket["number"], "phoneLast4": "1234", "score": 5}}, role=None)
    assert early["data"]["submitFeedback"]["errors"][0]["code"] == "CONFLICT"
    api("""mutation($id: ID!){ cancelTicket(input: {ticketId: $id, reason: "test"}){ errors { code } } }""",
        {"id": ticket["id"]})
    still_closed = api(FEEDBACK, {"input": {"ticketNumber": ticket["number"], "phoneLast4": "1234", "score": 9}},
                       role=None)
    assert {e["field"][0] for e in still_closed["data"]["submitFeedback"]["errors"]} == {"score"}
