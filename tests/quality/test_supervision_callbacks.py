"""Supervision (督办) warnings, overdue and escalate-once; callbacks and reopening; first-responsibility handover."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.clock import utcnow
from core.errors import DomainError
from dispatch.enums import TicketStatus
from dispatch.models import Ticket, TicketEvent
from dispatch.tickets import TicketFilter, change_status, list_tickets
from geo.areas import RegionConfig
from quality.callbacks import create_callback_tasks, record_callback
from quality.handover import handover_ticket, owner_of
from quality.models import CallbackTask, QualityTask
from quality.rules import QualitySettings, RiskRules
from quality.supervision import find_breaches, run_once, supervise


def events(session: Session, ticket: Ticket, kind: str) -> list[TicketEvent]:
    return list(session.exec(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == kind)))


def test_a_step_close_to_its_deadline_warns_and_a_passed_one_is_overdue(
        session: Session, make_ticket: object, region: RegionConfig, quality_settings: QualitySettings,
        now: datetime) -> None:
    lead = quality_settings.warning_for("FAULT_REPAIR")
    soon = make_ticket(respond_by=now + timedelta(minutes=lead - 5), resolve_by=now + timedelta(hours=4))  # type: ignore
    late = make_ticket(respond_by=now - timedelta(minutes=5), resolve_by=now + timedelta(hours=3))  # type: ignore
    calm = make_ticket(respond_by=now + timedelta(minutes=lead + 30), resolve_by=now + timedelta(hours=5))  # type: ignore
    make_ticket(respond_by=now - timedelta(hours=1), status="CANCELLED")  # type: ignore[operator]
    found = {(b.ticket.id, b.step, b.level) for b in find_breaches(session, region, quality_settings, now)}
    assert found == {(soon.id, "RESPOND", "WARNING"), (late.id, "RESPOND", "OVERDUE")}
    assert calm.id not in {t for t, _, _ in found}


def test_escalation_goes_to_the_unit_and_its_manager_once_per_step_and_level(
        session: Session, make_ticket: object, region: RegionConfig, quality_settings: QualitySettings,
        now: datetime) -> None:
    late = make_ticket(respond_by=now - timedelta(minutes=5), branch="DONGHU")  # type: ignore[operator]
    first = supervise(session, region, quality_settings, now)
    session.commit()
    again = supervise(session, region, quality_settings, now + timedelta(minutes=1))
    session.commit()
    assert [b.ticket.id for b in first.overdue] == [late.id] and [b.ticket.id for b in again.overdue] == [late.id]
    assert [(t.recipient_role, t.recipient) for t in first.tasks] == [
        ("UNIT", "DONGHU"), ("MANAGER", region.branch("DONGHU").manager)]  # type: ignore[union-attr]
    assert again.tasks == []
    notes = events(session, late, "SUPERVISION")
    assert len(notes) == 1 and "督办 OVERDUE" in (notes[0].note or "")
    overdue = list_tickets(session, TicketFilter(overdue=True), now=now).tickets
    assert [t.id for t in overdue] == [late.id]


def test_a_warning_then_the_breach_are_two_escalations(
        session: Session, make_ticket: object, region: RegionConfig, quality_settings: QualitySettings,
        now: datetime) -> None:
    ticket = make_ticket(respond_by=now + timedelta(minutes=5))  # type: ignore[operator]
    supervise(session, region, quality_settings, now)
    supervise(session, region, quality_settings, now + timedelta(minutes=10))
    session.commit()
    levels = session.exec(select(QualityTask.level).where(QualityTask.ticket_id == ticket.id,
                                                          QualityTask.recipient_role == "UNIT")).all()
    assert sorted(levels) == ["OVERDUE", "WARNING"]


def test_a_ticket_without_location_is_escalated_to_the_default_unit_and_flagged(
        session: Session, make_ticket: object, region: RegionConfig, quality_settings: QualitySettings,
        now: datetime) -> None:
    make_ticket(branch=None, lat=None, lng=None, respond_by=now - timedelta(minutes=1))  # type: ignore[operator]
    report = supervise(session, region, quality_settings, now)
    unit = quality_settings.default_unit
    assert {(t.recipient_role, t.recipient) for t in report.tasks} == {("UNIT", unit.code), ("MANAGER", unit.manager)}
    assert "no location: default unit" in report.tasks[0].message


def test_resolved_complaints_and_a_sample_of_repairs_get_callbacks_once(
        session: Session, make_ticket: object, quality_settings: QualitySettings, now: datetime) -> None:
    resolved = {"status": "RESOLVED", "resolved_at": now - timedelta(hours=3)}
    complaint = make_ticket(kind="COMPLAINT", **resolved)  # type: ignore[operator]
    repairs = [make_ticket(**resolved) for _ in range(20)]  # type: ignore[operator]
    make_ticket(kind="COMPLAINT", status="NEW")  # type: ignore[operator]
    make_ticket(kind="COMPLAINT", status="RESOLVED", resolved_at=now - timedelta(days=30))  # type: ignore
    tasks = create_callback_tasks(session, quality_settings, now)
    session.commit()
    assert create_callback_tasks(session, quality_settings, now) == []
    by_reason = {r: [t.ticket_id for t in tasks if t.reason == r] for r in ("COMPLAINT", "SAMPLE")}
    assert by_reason["COMPLAINT"] == [complaint.id]
    expected = [t.id for t in repairs if (t.id or 0) * 7919 % 100 < quality_settings.repair_sample_percent]
    assert by_reason["SAMPLE"] == expected and 0 < len(expected) < len(repairs)
    complaint_task = next(t for t in tasks if t.reason == "COMPLAINT")
    assert complaint_task.due_at == complaint.resolved_at + timedelta(hours=quality_settings.callback_complaint_hours)


def test_a_callback_saying_not_resolved_reopens_the_ticket(
        session: Session, make_ticket: object, quality_settings: QualitySettings, now: datetime) -> None:
    ticket = make_ticket(kind="COMPLAINT", status="RESOLVED", resolved_at=now - timedelta(hours=2))  # type: ignore
    [task] = create_callback_tasks(session, quality_settings, now)
    record_callback(session, task.id or 0, reached=True, score=2, resolved=False, note="还是电压低", now=now)
    session.commit()
    session.refresh(ticket)
    assert (ticket.status, ticket.resolved_at) == ("NEW", None)
    assert [e.note for e in events(session, ticket, "CALLBACK")] == ["callback: score 2, NOT resolved (还是电压低)"]
    with pytest.raises(DomainError, match="already recorded"):
        record_callback(session, task.id or 0, reached=False, now=now)
    # resolved again: a new callback for the new resolution
    change_status(session, ticket, TicketStatus.RESOLVED, "test",
                  at=now + timedelta(hours=1))
    session.commit()
    assert len(create_callback_tasks(session, quality_settings, now + timedelta(hours=2))) == 1


def test_a_satisfied_callback_keeps_the_ticket_resolved_and_bad_results_are_refused(
        session: Session, make_ticket: object, quality_settings: QualitySettings, now: datetime) -> None:
    ticket = make_ticket(kind="COMPLAINT", status="RESOLVED", resolved_at=now - timedelta(hours=2))  # type: ignore
    [task] = create_callback_tasks(session, quality_settings, now)
    with pytest.raises(DomainError) as error:
        record_callback(session, task.id or 0, reached=True, score=9, resolved=None, now=now)
    assert {tuple(p.field or []) for p in error.value.problems} == {("score",), ("resolved",)}
    with pytest.raises(DomainError, match="no score without reaching"):
        record_callback(session, task.id or 0, reached=False, score=3, now=now)
    with pytest.raises(DomainError, match="does not exist"):
        record_callback(session, 999999, reached=False, now=now)
    record_callback(session, task.id or 0, reached=True, score=5, resolved=True, now=now)
    session.commit()
    session.refresh(ticket)
    assert ticket.status == "RESOLVED" and session.get(CallbackTask, task.id).score == 5  # type: ignore[union-attr]


def test_first_responsibility_until_an_explicit_handover(
        session: Session, make_ticket: object, region: RegionConfig, quality_settings: QualitySettings,
        now: datetime) -> None:
    ticket = make_ticket(branch="CITY")  # type: ignore[operator]
    assert owner_of(session, ticket, quality_settings).unit == "CITY"
    handover_ticket(session, ticket.id or 0, "NORTH", "line belongs to the north feeder", "dispatcher", region,
                    quality_settings, at=now)
    session.commit()
    assert owner_of(session, ticket, quality_settings).unit == "NORTH"
    [event] = events(session, ticket, "HANDOVER")
    assert event.note == "handed over from CITY to NORTH: line belongs to the north feeder"
    with pytest.raises(DomainError, match="already owned by NORTH"):
        handover_ticket(session, ticket.id or 0, "NORTH", "again", "dispatcher", region, quality_settings)
    with pytest.raises(DomainError, match="unknown branch 'MOON'"):
        handover_ticket(session, ticket.id or 0, "MOON", "why not", "dispatcher", region, quality_settings)
    with pytest.raises(DomainError, match="say why"):
        handover_ticket(session, ticket.id or 0, "CITY", " ", "dispatcher", region, quality_settings)


def test_one_scheduler_pass_does_supervision_risk_callbacks_and_keywords(
        db: Engine, session: Session, make_ticket: object, region: RegionConfig, risk_rules: RiskRules,
        quality_settings: QualitySettings, now: datetime) -> None:
    for _ in range(3):
        make_ticket(contact_phone="13911112222", respond_by=now - timedelta(minutes=1))  # type: ignore[operator]
    counts = run_once(db, region, risk_rules, quality_settings, now)
    assert counts == {"warnings": 0, "overdue": 3, "escalations": 6, "risk_tasks": 1, "callbacks": 0,
                      "keywords_indexed": 3}
    assert run_once(db, region, risk_rules, quality_settings, now)["escalations"] == 0


def test_the_scheduler_loop_runs_passes_on_its_thread_until_stopped(
        db: Engine, session: Session, make_ticket: object, region: RegionConfig, risk_rules: RiskRules,
        quality_settings: QualitySettings) -> None:
    import threading

    from quality.supervision import Supervisor

    make_ticket(created_at=utcnow() - timedelta(hours=2), respond_by=utcnow() - timedelta(hours=1))  # type: ignore
    supervisor = Supervisor(db, region, risk_rules, quality_settings, interval=0.01).start()
    try:
        for _ in range(500):  # until the first pass is done (bounded, not timed)
            if supervisor.passes:
                break
            threading.Event().wait(0.01)
    finally:
        supervisor.stop()
    assert supervisor.passes >= 1 and supervisor._thread is None
    assert len(session.exec(select(QualityTask)).all()) == 2
