"""The service-quality fields of the GraphQL API: contract fields answer, extensions, errors with codes, roles."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from core.clock import utcnow
from quality.models import CallbackTask

STATS = """query($from: DateTime, $to: DateTime, $branch: String) {
  serviceStats(from: $from, to: $to, branch: $branch) {
    ticketsByKind { kind count } overdueCount oneTimeResolutionRate meanArrivalMinutes arrivalWithinSlaRate
    satisfactionMean ticketCount byBranch { branch tickets unlocatedCount flagged }
    byAreaType { areaType arrivalCommitmentMinutes }
  }
}"""


def test_repeat_callers_hotspots_and_stats_answer_through_the_api(api: object, make_ticket: object) -> None:
    for i in range(5):
        make_ticket(ago=timedelta(hours=i + 1), created_at=utcnow() - timedelta(hours=i + 1),  # type: ignore
                    contact_phone="13812345678", summary="家里停电了 power outage")
    make_ticket(created_at=utcnow() - timedelta(hours=2), branch=None, lat=None, lng=None)  # type: ignore
    callers = api("{ repeatCallers(days: 30) { phoneMasked ticketCount riskLevel requiredAction deadline "  # type: ignore
                  "department tickets { number } } }")
    assert "errors" not in callers, callers
    [caller] = callers["data"]["repeatCallers"]
    assert (caller["phoneMasked"], caller["riskLevel"], caller["ticketCount"]) == ("138****5678", "RED", 5)
    assert len(caller["tickets"]) == 5 and caller["deadline"]
    paged = api("{ repeatCallers(days: 30, first: 1, offset: 1) { phoneMasked } }")  # type: ignore[operator]
    assert paged["data"]["repeatCallers"] == []  # one caller: the second page is empty
    spots = api('{ hotspots(days: 7, branch: "CITY") { keyword category branch ticketCount weight score trend } }')  # type: ignore
    assert spots["data"]["hotspots"][0] == {"keyword": "停电", "category": "FAULT_REPAIR", "branch": "CITY",
                                            "ticketCount": 5, "weight": 2.0, "score": 10.0, "trend": "NEW"}
    stats = api(STATS)["data"]["serviceStats"]  # type: ignore[operator]
    assert stats["ticketsByKind"] == [{"kind": "FAULT_REPAIR", "count": 6}] and stats["ticketCount"] == 6
    assert {b["branch"]: b["flagged"] for b in stats["byBranch"]} == {"CITY": False, "SERVICE_CENTRE": True}


def test_bad_windows_and_unknown_branches_are_graphql_errors_with_codes(api: object) -> None:
    now = utcnow()
    result = api(STATS, {"from": now.isoformat(), "to": (now - timedelta(days=1)).isoformat()})  # type: ignore
    assert result["errors"][0]["extensions"]["code"] == "INVALID" and "is after" in result["errors"][0]["message"]
    result = api('{ hotspots(branch: "ATLANTIS") { keyword } }')  # type: ignore[operator]
    assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    result = api("{ repeatCallers(days: 0) { phoneMasked } }")  # type: ignore[operator]
    assert result["errors"][0]["extensions"]["code"] == "INVALID"


def test_only_staff_see_service_quality(api: object) -> None:
    result = api("{ serviceStats { overdueCount } }", role=None)  # type: ignore[operator]
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_record_callback_and_handover_mutations(api: object, session: Session, make_ticket: object) -> None:
    ticket = make_ticket(kind="COMPLAINT", status="RESOLVED", resolved_at=utcnow())  # type: ignore[operator]
    task = CallbackTask(ticket_id=ticket.id or 0, resolved_at=ticket.resolved_at, reason="COMPLAINT",
                        due_at=utcnow() + timedelta(hours=24))
    session.add(task)
    session.commit()
    mutation = """mutation($input: RecordCallbackInput!) { recordCallback(input: $input) {
        callback { status score ticket { status } } errors { field message code } } }"""
    bad = api(mutation, {"input": {"callbackId": str(task.id), "reached": True, "score": 7,  # type: ignore
                                   "resolved": False}})
    assert bad["data"]["recordCallback"]["errors"][0]["field"] == ["score"]
    done = api(mutation, {"input": {"callbackId": str(task.id), "reached": True, "score": 2,  # type: ignore
                                    "resolved": False}})["data"]["recordCallback"]
    assert done == {"callback": {"status": "DONE", "score": 2, "ticket": {"status": "NEW"}}, "errors": []}
    handover = """mutation($input: HandoverTicketInput!) { handoverTicket(input: $input) {
        ticket { events { kind note } } errors { field code } } }"""
    moved = api(handover, {"input": {"ticketId": str(ticket.id), "toUnit": "NANHU", "reason": "区域调整"}})  # type: ignore
    payload = moved["data"]["handoverTicket"]
    assert payload["errors"] == [] and {"kind": "HANDOVER", "note": "handed over from CITY to NANHU: 区域调整"} \
        in payload["ticket"]["events"]
    unknown = api(handover, {"input": {"ticketId": str(ticket.id), "toUnit": "X", "reason": "r"}})  # type: ignore
    assert unknown["data"]["handoverTicket"]["errors"] == [{"field": ["toUnit"], "code": "NOT_FOUND"}]
