"""ETA and ETR reach customers: crew assigned with ETA, on site, ETR moved by more than the margin, restored;
once per change, in the customer's language, on their channels, held by quiet hours unless urgent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from core.clock import utcnow
from crews.roster import NewCrew, create_crew
from customers import updates
from customers.config import CustomerSettings
from customers.models import Customer, Notification
from customers.notify import (
    Change,
    Recipient,
    TemplateError,
    enqueue,
    quiet_until,
    recipient_of_customer,
    render,
)
from customers.updates import clear_estimate_cache, estimate_etr, repair_minutes, ticket_changed
from dispatch.enums import TicketStatus
from dispatch.intake import IntakeContext, NewTicket, create_ticket
from dispatch.models import Incident, Ticket
from dispatch.planning import optimize_and_store
from dispatch.tickets import change_status
from tests.customers.customer_world import SPOTS, build_world, call


def notes(session: Session, **where: object) -> list[Notification]:
    query = select(Notification).order_by(col(Notification.id))
    for name, value in where.items():
        query = query.where(getattr(Notification, name) == value)
    return list(session.exec(query))


def crews_on_shift(session: Session, count: int) -> None:
    """`count` line crews at one yard, on shift from an hour ago for eight hours."""
    now = utcnow()
    for n in range(1, count + 1):
        create_crew(session, NewCrew(name=f"Crew {n}", skills=["lv_overhead"], home_lat=30.69, home_lng=114.20,
                                     shift_start=now - timedelta(hours=1), shift_end=now + timedelta(hours=8)))


def callers_along_a_street(session: Session, intake_context: IntakeContext, count: int, metres_apart: float,
                           first_phone: int) -> list[Ticket]:
    """`count` fault reports northwards from (30.70, 114.20), each by its own caller (SMS), committed."""
    reports = [create_ticket(session, intake_context, NewTicket(
        kind="FAULT_REPAIR", channel="HOTLINE", summary="停电", lat=30.700 + i * metres_apart / 111_200, lng=114.200,
        contact_phone=str(first_phone + i), preferred_channels=["SMS"]), "dispatcher").ticket for i in range(count)]
    session.commit()
    return reports


def crew_near(session: Session) -> None:
    now = utcnow()
    create_crew(session, NewCrew(name="Crew 1", skills=["lv_overhead"], home_lat=SPOTS["T1"][0] - 0.01,
                                 home_lng=SPOTS["T1"][1], shift_start=now - timedelta(hours=1),
                                 shift_end=now + timedelta(hours=8)))


def test_templates_render_in_both_languages_and_a_missing_variable_is_an_error() -> None:
    zh = render("CREW_ASSIGNED", "zh", {"number": "GC1", "eta": "10:30", "etr": "13:30"})
    en = render("CREW_ASSIGNED", "en", {"number": "GC1", "eta": "10:30", "etr": "13:30"})
    assert "10:30" in zh and "抢修" in zh and "expected at 10:30" in en
    assert render("RESTORED", "fr", {"restored": "12:00"}).startswith("【供电服务】")  # unknown language: Chinese
    with pytest.raises(TemplateError, match="etr"):
        render("CREW_ASSIGNED", "en", {"number": "GC1", "eta": "10:30"})
    with pytest.raises(TemplateError):
        render("NO_SUCH_KIND", "en", {})


def test_quiet_hours_hold_non_urgent_messages_until_morning_local_time() -> None:
    settings = CustomerSettings(quiet_hours="22:00-07:00", local_utc_offset_hours=8)
    late = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)  # 23:30 in Beijing
    assert quiet_until(late, None, settings) == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 07:00 local
    assert quiet_until(late, "", settings) is None  # this customer asked for updates at any hour
    assert quiet_until(datetime(2026, 11, 23, 4, 0, tzinfo=UTC), None, settings) is None  # noon


def test_enqueue_is_once_per_change_recipient_and_channel(session: Session) -> None:
    people = [Recipient("c1", "zh", {"SMS": "139", "WECHAT": "account:1"}, quiet_hours=""),
              Recipient("c2", "en", {"SMS": "138"}, quiet_hours="")]
    change = Change("ETR_CHANGED", "i9", "202611231330", {"etr": "13:30"}, incident_id=None)
    enqueue(session, change, people)
    enqueue(session, change, people)  # the same change again: nothing new
    enqueue(session, Change("ETR_CHANGED", "i9", "202611231400", {"etr": "14:00"}), people)
    session.commit()
    rows = notes(session)
    assert len(rows) == 6 and len({r.dedup_key for r in rows}) == 6
    assert {(r.channel, r.language) for r in rows if r.recipient == "138"} == {("SMS", "en")}
    assert "13:30" in rows[0].body and "14:00" in rows[-1].body


def test_a_change_whose_template_lacks_a_variable_is_kept_as_failed_not_sent_blank(session: Session) -> None:
    enqueue(session, Change("CREW_ASSIGNED", "t1", "x", {"number": "GC1"}),
            [Recipient("c1", "zh", {"SMS": "139"}, quiet_hours="")])
    session.commit()
    [row] = notes(session)
    assert row.status == "FAILED" and "eta" in (row.last_error or "") and row.body == ""


def test_only_preferred_channels_with_an_address(session: Session) -> None:
    customer = Customer(id=5, account_number="A5", phone="13900000000", email=None, language="en",
                        preferred_channels=["WECHAT", "EMAIL"])
    recipient = recipient_of_customer(customer)
    assert set(recipient.addresses) == {"WECHAT"}  # no e-mail address: that channel can't be used


def test_the_repair_estimate_comes_from_history_once_there_is_enough_else_the_commitment(
        session: Session, intake_context: IntakeContext) -> None:
    clear_estimate_cache()
    settings = CustomerSettings(repair_history_min=3)
    assert repair_minutes(session, "FAULT_REPAIR", "URBAN", settings) == 180  # the urban commitment
    assert repair_minutes(session, "FAULT_REPAIR", "RURAL", settings) == 240
    arrived = utcnow() - timedelta(hours=5)
    for i, minutes in enumerate((40, 60, 80)):
        ticket = call(session, intake_context, "T4", i, lat=30.9 + i * 0.01)
        change_status(session, ticket, TicketStatus.ON_SITE, "crew", at=arrived)
        change_status(session, ticket, TicketStatus.RESOLVED, "crew", at=arrived + timedelta(minutes=minutes))
        session.commit()
    clear_estimate_cache()
    assert repair_minutes(session, "FAULT_REPAIR", "URBAN", settings) == 60


def test_assignment_on_site_and_restoration_reach_the_caller_once_each(
        session: Session, intake_context: IntakeContext) -> None:
    clear_estimate_cache()
    build_world(session)
    crew_near(session)
    ticket = call(session, intake_context, "T4", 3)
    optimize_and_store(session, time_limit_s=1, commit=True)
    session.refresh(ticket)
    assert ticket.status == "ASSIGNED" and ticket.eta is not None
    assert ticket.etr == estimate_etr(session, ticket)  # ETA + the urban commitment (no history yet)
    [assigned] = notes(session, kind="CREW_ASSIGNED")
    assert assigned.recipient == "13900000403" and assigned.language == "en" and assigned.channel == "SMS"
    optimize_and_store(session, time_limit_s=1, commit=True)  # the same plan again: nothing new to tell
    assert len(notes(session)) == 1
    arrived = ticket.eta + timedelta(minutes=3)
    change_status(session, ticket, TicketStatus.ON_SITE, "crew", at=arrived)
    session.commit()
    assert ticket.etr == arrived + timedelta(minutes=180)
    change_status(session, ticket, TicketStatus.RESOLVED, "crew", at=arrived + timedelta(minutes=50))
    session.commit()
    assert ticket.power_restored_at == arrived + timedelta(minutes=50)
    assert [n.kind for n in notes(session)] == ["CREW_ASSIGNED", "ON_SITE", "RESTORED"]


def test_an_etr_is_republished_only_when_it_moves_by_more_than_the_margin(
        session: Session, intake_context: IntakeContext) -> None:
    clear_estimate_cache()
    build_world(session)
    ticket = call(session, intake_context, "T4", 1)
    start = utcnow()
    ticket.eta = start + timedelta(minutes=30)
    change_status(session, ticket, TicketStatus.ASSIGNED, "dispatcher")
    published = ticket.etr
    assert published is not None
    ticket.eta = start + timedelta(minutes=40)  # 10 min later: within the 15 min margin
    ticket_changed(session, ticket)
    assert ticket.etr == published and [n.kind for n in notes(session)] == ["CREW_ASSIGNED"]
    ticket.eta = start + timedelta(minutes=70)  # 40 min later: published again
    ticket_changed(session, ticket)
    session.commit()
    assert ticket.etr == published + timedelta(minutes=40)
    assert [n.kind for n in notes(session)] == ["CREW_ASSIGNED", "ETA_CHANGED", "ETR_CHANGED"]


def test_a_restored_incident_tells_every_affected_customer_once(
        session: Session, intake_context: IntakeContext) -> None:
    clear_estimate_cache()
    build_world(session)
    lead = call(session, intake_context, "T1", 1)
    call(session, intake_context, "T2", 3)
    call(session, intake_context, "T3", 5)
    session.refresh(lead)
    incident = session.get(Incident, lead.incident_id)
    assert incident is not None and incident.status == "CONFIRMED"
    lead.eta = utcnow() + timedelta(minutes=20)
    change_status(session, lead, TicketStatus.ASSIGNED, "dispatcher")
    session.commit()
    session.refresh(incident)
    assert incident.etr is not None and incident.etr == lead.etr
    etr_rows = notes(session, kind="ETR")
    assert len(etr_rows) == 30  # the outage scope and ETR, to every customer of the fuse
    change_status(session, lead, TicketStatus.ON_SITE, "crew")
    session.commit()
    session.refresh(incident)
    assert incident.status == "RESTORING"
    change_status(session, lead, TicketStatus.RESOLVED, "crew")
    session.commit()
    session.refresh(incident)
    assert incident.status == "RESTORED"
    restored = notes(session, kind="RESTORED")
    assert len(restored) == 30 and len({r.recipient for r in restored}) == 30
    joined = session.exec(select(Notification).where(Notification.ticket_id.is_not(None))).all()  # type: ignore[union-attr]
    assert all(n.kind in {"CREW_ASSIGNED", "ON_SITE"} for n in joined)
    # The reports that joined the lead are resolved with it.
    members = session.exec(select(Ticket).where(Ticket.incident_id == incident.id)).all()
    assert {t.status for t in members} == {"RESOLVED"} and all(t.power_restored_at for t in members)


def test_a_plan_moving_many_tickets_of_one_incident_refreshes_the_incident_once(
        session: Session, intake_context: IntakeContext, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_estimate_cache()
    crews_on_shift(session, 2)
    # Eight callers along one street (no network known): one incident, every report dispatched.
    reports = callers_along_a_street(session, intake_context, 8, metres_apart=67, first_phone=13900100000)
    for report in reports:
        session.refresh(report)
    [incident_id] = {r.incident_id for r in reports}
    assert incident_id is not None
    refreshed: list[int] = []
    refresh = updates.refresh_incident

    def counting(session: Session, incident: Incident, *args: object, **kwargs: object) -> None:
        refreshed.append(incident.id or 0)
        refresh(session, incident, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(updates, "refresh_incident", counting)
    optimize_and_store(session, time_limit_s=1, commit=True)
    for report in reports:
        session.refresh(report)
    assert sum(1 for r in reports if r.status == "ASSIGNED") >= 4  # the plan changed many of its tickets
    assert refreshed == [incident_id]  # ... and the incident was brought up to date once
    incident = session.get(Incident, incident_id)
    assert incident is not None
    session.refresh(incident)
    assert incident.status == "CONFIRMED" and incident.etr is not None
    assert all(r.etr == incident.etr for r in reports)  # every report shows the incident's ETR
    etr = notes(session, kind="ETR")
    assert sorted(n.recipient for n in etr) == sorted(r.contact_phone or "" for r in reports)  # once per caller


def test_a_plan_tells_every_caller_once_reading_their_recipients_together(
        session: Session, intake_context: IntakeContext, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_estimate_cache()
    crews_on_shift(session, 3)
    # Six callers kilometres apart: six tickets, no incident between them.
    reports = callers_along_a_street(session, intake_context, 6, metres_apart=4450, first_phone=13900200000)
    lookups: list[list[int]] = []
    lookup = updates.recipients_of_tickets

    def counting(session: Session, ticket_ids: list[int]) -> dict[int, list[object]]:
        lookups.append(sorted(ticket_ids))
        return lookup(session, ticket_ids)  # type: ignore[return-value]

    monkeypatch.setattr(updates, "recipients_of_tickets", counting)
    optimize_and_store(session, time_limit_s=1, commit=True)
    assigned = [r for r in reports if (session.refresh(r), r.status)[1] == "ASSIGNED"]
    assert len(assigned) >= 3
    assert lookups == [sorted(r.id or 0 for r in assigned)]  # one read for the whole plan
    told = notes(session, kind="CREW_ASSIGNED")
    assert sorted(n.recipient for n in told) == sorted(r.contact_phone or "" for r in assigned)  # once each
    assert all(n.ticket_id in {r.id for r in assigned} for n in told)


def test_recipients_of_a_ticket_include_the_callers_whose_reports_joined_it(
        session: Session, intake_context: IntakeContext) -> None:
    first = create_ticket(session, intake_context, NewTicket(
        kind="FAULT_REPAIR", channel="HOTLINE", summary="No power", lat=30.70, lng=114.20,
        contact_phone="13900300001", preferred_channels=["SMS"]), "dispatcher").ticket
    other = create_ticket(session, intake_context, NewTicket(
        kind="FAULT_REPAIR", channel="HOTLINE", summary="No power", lat=30.90, lng=114.40,
        contact_phone="13900300002", preferred_channels=["SMS"]), "dispatcher").ticket
    other.duplicate_of_id = first.id
    session.add(other)
    session.commit()
    found = updates.recipients_of_tickets(session, [first.id or 0])
    assert sorted(r.addresses["SMS"] for r in found[first.id or 0]) == ["13900300001", "13900300002"]
    assert updates.ticket_recipients(session, first) == found[first.id or 0]
