"""The crew-device sync protocol, called directly: pull by cursor, exactly-once push, the conflict rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError, ErrorCode
from crews.models import Crew
from dispatch.models import Assignment, Ticket, TicketEvent
from dispatch.rules import load_rules
from dispatch.tickets import cancel_ticket
from mobile_sync.changes import TOPIC_BOARD, TOPIC_CUSTOMER
from mobile_sync.models import ClientMutation, CrewBreadcrumb, Device, SyncChange
from mobile_sync.protocol import MutationIn, PushSettings, pull, push, register_device

EAST = (30.60, 114.36)
World = Any  # the `world` fixture of tests/mobile_sync/conftest.py


def push_one(session: Session, device: Device, *mutations: MutationIn, crew_id: int | None = None) -> list:
    return push(session, device.crew_id if crew_id is None else crew_id, device.id, list(mutations)).results


def events(session: Session, ticket: Ticket, kind: str | None = None) -> list[TicketEvent]:
    query = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
    if kind:
        query = query.where(TicketEvent.kind == kind)
    return list(session.exec(query.order_by(col(TicketEvent.at), col(TicketEvent.id))))


# ------------------------------------------------------------------ pull


def test_a_first_pull_is_the_crews_jobs_and_later_pulls_only_what_changed(session: Session, world: World) -> None:
    west, _ = world.crew("West")
    east, _ = world.crew("East", EAST)
    mine, theirs = world.ticket(west), world.ticket(east)

    first = pull(session, west.id or 0)
    assert [t.id for t in first.tickets] == [mine.id] and not first.has_more
    assert [a.crew_id for a in first.assignments] == [west.id]
    assert theirs.id not in [t.id for t in first.tickets]

    assert pull(session, west.id or 0, first.cursor).tickets == []  # nothing changed since
    second = world.ticket(west)
    world.ticket(east)
    changed = pull(session, west.id or 0, first.cursor)
    assert [t.id for t in changed.tickets] == [second.id] and changed.removed_ticket_ids == []


def test_pull_pages_with_has_more_and_the_cursor_neither_repeats_nor_skips(session: Session, world: World) -> None:
    west, _ = world.crew("West")
    start = pull(session, west.id or 0).cursor
    created = [world.ticket(west).id for _ in range(5)]
    seen: list[int] = []
    cursor, pages = start, 0
    while True:
        page = pull(session, west.id or 0, cursor, limit=2)
        seen += [t.id or 0 for t in page.tickets]
        cursor, pages = page.cursor, pages + 1
        if not page.has_more:
            break
    assert sorted(set(seen)) == sorted(created) and pages >= 3
    assert pull(session, west.id or 0, cursor).tickets == []


def test_a_reassigned_or_cancelled_job_arrives_as_a_removal(session: Session, world: World) -> None:
    west, _ = world.crew("West")
    east, _ = world.crew("East", EAST)
    moved, cancelled = world.ticket(west), world.ticket(west)
    cursor = pull(session, west.id or 0).cursor

    world.assign(moved, east)
    cancel_ticket(session, cancelled.id or 0, "customer fixed it", "dispatcher")
    session.commit()

    west_view = pull(session, west.id or 0, cursor)
    assert sorted(west_view.removed_ticket_ids) == sorted([moved.id, cancelled.id]) and west_view.tickets == []
    east_view = pull(session, east.id or 0)
    assert [t.id for t in east_view.tickets] == [moved.id]


def test_a_malformed_cursor_or_one_from_another_database_is_refused(session: Session, world: World) -> None:
    west, _ = world.crew("West")
    with pytest.raises(DomainError) as malformed:
        pull(session, west.id or 0, "not-a-cursor")
    assert malformed.value.problems[0].field == ["since"]
    from mobile_sync.protocol import encode_cursor

    with pytest.raises(DomainError) as ahead:
        pull(session, west.id or 0, encode_cursor(10**9))
    assert ahead.value.problems[0].code == ErrorCode.CONFLICT


# ------------------------------------------------------------------ exactly once


def test_a_replay_is_applied_once_and_answered_duplicate_with_the_original_result(
        session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    batch = [world.status(ticket, "EN_ROUTE", cmid="a1"), world.status(ticket, "ON_SITE", cmid="a2"),
             world.status(99999, "ON_SITE", cmid="a3")]

    first = push_one(session, phone, *batch)
    replay = push_one(session, phone, *batch)

    assert [(r.applied, r.duplicate) for r in first] == [(True, False), (True, False), (False, False)]
    assert [(r.applied, r.duplicate) for r in replay] == [(True, True), (True, True), (False, True)]
    assert replay[2].error is not None and replay[2].error.code == ErrorCode.NOT_FOUND
    assert [e.status for e in events(session, ticket) if e.source == "crew device"] == ["EN_ROUTE", "ON_SITE"]
    assert session.exec(select(ClientMutation)).all().__len__() == 3


def test_the_same_id_twice_in_one_batch_is_applied_once(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    m = world.status(ticket, "EN_ROUTE", cmid="x")
    results = push_one(session, phone, m, m)
    assert [(r.applied, r.duplicate) for r in results] == [(True, False), (True, True)]
    assert len([e for e in events(session, ticket) if e.status == "EN_ROUTE"]) == 1


def test_a_reused_id_with_other_content_is_a_conflict_and_changes_nothing(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    push_one(session, phone, world.status(ticket, "EN_ROUTE", cmid="same"))
    [result] = push_one(session, phone, world.status(ticket, "ON_SITE", cmid="same"))
    assert not result.applied and not result.duplicate
    assert result.error is not None and result.error.code == ErrorCode.CONFLICT
    session.refresh(ticket)
    assert ticket.status == "EN_ROUTE"


# ------------------------------------------------------------------ bad input


def test_bad_mutations_are_answered_one_by_one_and_the_good_ones_apply(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    east, _ = world.crew("East", EAST)
    ticket, not_ours = world.ticket(west), world.ticket(east)
    now = utcnow()
    batch = [
        world.status(424242, "EN_ROUTE"),  # unknown ticket
        world.status(ticket, "CLOSED"),  # not a field status
        world.status(not_ours, "EN_ROUTE"),  # never this crew's job
        MutationIn("no-location", "LOCATION", now),
        world.location(123.0, 500.0),  # impossible coordinates
        MutationIn("", "NOTE", now, ticket_id=ticket.id, note="x"),  # blank id
        MutationIn("no-status", "STATUS_CHANGE", now, ticket_id=ticket.id),
        world.status("garbage-id", "EN_ROUTE"),
        world.status(ticket, "EN_ROUTE"),  # the good one
    ]
    results = push_one(session, phone, *batch)
    codes = [r.error.code if r.error else None for r in results]
    assert codes == [ErrorCode.NOT_FOUND, ErrorCode.INVALID, ErrorCode.FORBIDDEN, ErrorCode.REQUIRED,
                     ErrorCode.INVALID, ErrorCode.INVALID, ErrorCode.REQUIRED, ErrorCode.NOT_FOUND, None]
    assert results[-1].applied and not any(r.applied for r in results[:-1])
    session.refresh(ticket)
    assert ticket.status == "EN_ROUTE"
    # every refusal is on record, so a replay gets the same answer
    assert len(session.exec(select(ClientMutation)).all()) == len(batch) - 1


def test_an_unknown_device_a_device_of_another_crew_and_an_oversized_batch_refuse_the_batch(
        session: Session, world: World) -> None:
    west, phone = world.crew("West")
    east, _ = world.crew("East", EAST)
    ticket = world.ticket(west)
    m = world.status(ticket, "EN_ROUTE")
    with pytest.raises(DomainError) as unknown:
        push(session, west.id, "no-such-phone", [m])
    assert unknown.value.problems[0].code == ErrorCode.NOT_FOUND
    with pytest.raises(DomainError) as other_crew:
        push(session, east.id, phone.id, [m])
    assert other_crew.value.problems[0].code == ErrorCode.FORBIDDEN
    with pytest.raises(DomainError) as other_device:
        push(session, west.id, phone.id, [m], token_device="someone-elses-phone")
    assert other_device.value.problems[0].code == ErrorCode.FORBIDDEN
    with pytest.raises(DomainError) as oversized:
        push(session, west.id, phone.id, [m, m, m], settings=PushSettings(max_batch=2))
    assert "at most 2" in oversized.value.problems[0].message
    session.refresh(ticket)
    assert ticket.status == "ASSIGNED" and session.exec(select(ClientMutation)).all() == []


def test_a_device_is_registered_to_one_crew(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    east, _ = world.crew("East", EAST)
    assert register_device(session, west.id or 0, phone.id).crew_id == west.id  # again: no-op
    with pytest.raises(DomainError) as taken:
        register_device(session, east.id or 0, phone.id)
    assert taken.value.problems[0].code == ErrorCode.CONFLICT
    with pytest.raises(DomainError):
        register_device(session, west.id or 0, "bad id with spaces")


# ------------------------------------------------------------------ conflict rules


def test_a_batch_is_applied_in_occurred_at_order_not_arrival_order(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    t0 = utcnow() - timedelta(minutes=30)
    results = push_one(session, phone, world.status(ticket, "RESOLVED", t0 + timedelta(minutes=20)),
                       world.status(ticket, "ON_SITE", t0 + timedelta(minutes=10)),
                       world.status(ticket, "EN_ROUTE", t0))
    assert all(r.applied and r.outcome == "APPLIED" for r in results)
    assert [e.status for e in events(session, ticket) if e.source == "crew device"] == \
        ["EN_ROUTE", "ON_SITE", "RESOLVED"]
    session.refresh(ticket)
    assert ticket.responded_at == t0 + timedelta(minutes=10) and ticket.resolved_at == t0 + timedelta(minutes=20)


def test_the_state_machine_refuses_going_back_and_anything_after_resolved(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    push_one(session, phone, world.status(ticket, "ON_SITE"))
    [back] = push_one(session, phone, world.status(ticket, "EN_ROUTE"))
    assert back.error is not None and back.error.code == ErrorCode.CONFLICT
    [hold] = push_one(session, phone, world.status(ticket, "ON_HOLD"))
    [resume] = push_one(session, phone, world.status(ticket, "ON_SITE"))
    [again] = push_one(session, phone, world.status(ticket, "ON_SITE"))
    assert hold.applied and resume.applied and (again.applied, again.outcome) == (True, "NO_CHANGE")
    push_one(session, phone, world.status(ticket, "RESOLVED"))
    [after] = push_one(session, phone, world.status(ticket, "ON_HOLD"))
    assert after.error is not None and after.error.code == ErrorCode.CONFLICT
    session.refresh(ticket)
    assert ticket.status == "RESOLVED"


def test_a_late_report_is_merged_into_history_without_moving_the_status(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    t0 = utcnow() - timedelta(minutes=30)
    push_one(session, phone, world.status(ticket, "RESOLVED", t0 + timedelta(minutes=20)))
    [late] = push_one(session, phone, world.status(ticket, "ON_SITE", t0 + timedelta(minutes=5)))
    assert (late.applied, late.outcome) == (True, "HISTORY")
    session.refresh(ticket)
    assert ticket.status == "RESOLVED" and ticket.responded_at == t0 + timedelta(minutes=5)
    timeline = [(e.status, e.at) for e in events(session, ticket) if e.source == "crew device"]
    assert timeline == [("ON_SITE", t0 + timedelta(minutes=5)), ("RESOLVED", t0 + timedelta(minutes=20))]


def test_a_status_for_a_job_reassigned_away_is_a_conflict_kept_in_history(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    east, _ = world.crew("East", EAST)
    ticket = world.ticket(west)
    world.assign(ticket, east)  # while West's phone was offline
    board_before = session.exec(select(SyncChange).where(SyncChange.topic == TOPIC_BOARD)).all()

    [result] = push_one(session, phone, world.status(ticket, "EN_ROUTE"))

    assert not result.applied and result.error is not None and result.error.code == ErrorCode.CONFLICT
    assert f"crew {east.id}" in result.error.message
    session.refresh(ticket)
    assert ticket.status == "ASSIGNED"
    [conflict] = events(session, ticket, "CONFLICT")
    assert "EN_ROUTE from device phone-west refused" in (conflict.note or "")
    board_after = session.exec(select(SyncChange).where(SyncChange.topic == TOPIC_BOARD)).all()
    assert len(board_after) == len(board_before) + 1 and board_after[-1].ticket_id == ticket.id


def test_resolved_from_the_field_beats_a_later_reassignment_the_crew_never_saw(
        session: Session, world: World) -> None:
    west, phone = world.crew("West")
    east, _ = world.crew("East", EAST)
    ticket = world.ticket(west)
    fixed_at = utcnow() - timedelta(minutes=10)
    world.assign(ticket, east)
    east_cursor = pull(session, east.id or 0).cursor

    [result] = push_one(session, phone, world.status(ticket, "RESOLVED", fixed_at))

    assert (result.applied, result.outcome) == (True, "RESOLVED_WINS")
    session.refresh(ticket)
    assert ticket.status == "RESOLVED" and ticket.power_restored_at is not None
    active = session.exec(select(Assignment).where(Assignment.ticket_id == ticket.id,
                                                   col(Assignment.active).is_(True))).all()
    assert active == []
    assert pull(session, east.id or 0, east_cursor).removed_ticket_ids == [ticket.id]


def test_a_device_clock_ahead_is_clamped_to_the_server_and_the_skew_recorded(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    before = utcnow()
    push_one(session, phone, world.status(ticket, "ON_SITE", utcnow() + timedelta(hours=2), cmid="ahead"))
    row = session.exec(select(ClientMutation).where(ClientMutation.client_mutation_id == "ahead")).one()
    assert row.effective_at <= utcnow() and row.effective_at >= before
    assert row.skew_seconds > 7000
    session.refresh(ticket)
    session.refresh(phone)
    assert ticket.responded_at == row.effective_at and (phone.last_skew_seconds or 0) > 7000


def test_a_device_clock_days_behind_is_clamped_to_the_offline_limit(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    now = utcnow()
    push(session, west.id, phone.id, [world.status(ticket, "EN_ROUTE", now - timedelta(days=10), cmid="behind")],
         settings=PushSettings(max_offline=timedelta(days=3)), now=now)
    row = session.exec(select(ClientMutation).where(ClientMutation.client_mutation_id == "behind")).one()
    assert row.effective_at == now - timedelta(days=3) and row.skew_seconds == -7 * 86400
    session.refresh(ticket)
    assert ticket.status == "EN_ROUTE" and ticket.updated_at >= ticket.created_at  # never before the report


def test_location_is_a_breadcrumb_that_moves_the_crew_and_the_eta_of_its_next_job(
        session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west, at=(30.70, 114.26))  # about 11 km north
    eta_before = ticket.eta
    now = utcnow()
    push_one(session, phone, world.location(30.69, 114.26, now))
    push_one(session, phone, world.location(30.50, 114.26, now - timedelta(minutes=5)))  # older fix: history
    crumbs = session.exec(select(CrewBreadcrumb).order_by(col(CrewBreadcrumb.at))).all()
    assert [(c.lat, c.lng) for c in crumbs] == [(30.50, 114.26), (30.69, 114.26)]
    crew = session.get(Crew, west.id)
    session.refresh(crew)
    assert crew is not None and (crew.lat, crew.lng) == (30.69, 114.26) and crew.last_seen_at == now
    session.refresh(ticket)
    assert ticket.eta is not None and eta_before is not None and ticket.eta < eta_before
    assert ticket.eta - now < timedelta(minutes=10)


def test_on_site_and_resolved_set_times_etr_and_write_customer_outbox_rows(session: Session, world: World) -> None:
    west, phone = world.crew("West")
    ticket = world.ticket(west)
    arrived = utcnow() - timedelta(minutes=40)
    push_one(session, phone, world.status(ticket, "ON_SITE", arrived))
    session.refresh(ticket)
    restore = load_rules().raw["restore_minutes_after_arrival"][ticket.area_type]  # no repair history yet
    assert ticket.responded_at == arrived and ticket.etr == arrived + timedelta(minutes=restore)
    push_one(session, phone, world.status(ticket, "RESOLVED", arrived + timedelta(minutes=30)))
    session.refresh(ticket)
    assert ticket.resolved_at == ticket.power_restored_at == arrived + timedelta(minutes=30)
    outbox = session.exec(select(SyncChange).where(SyncChange.topic == TOPIC_CUSTOMER,
                                                   SyncChange.ticket_id == ticket.id)
                          .order_by(col(SyncChange.seq))).all()
    statuses = list(dict.fromkeys(row.payload["status"] for row in outbox if row.payload))
    assert statuses[-2:] == ["ON_SITE", "RESOLVED"]
    assert any("power_restored_at" in (row.payload or {})["changed"] for row in outbox)
    assert all("phone" not in str(row.payload) for row in outbox)


def test_the_change_log_is_written_with_the_commit_and_nothing_rolled_back_reaches_it(
        session: Session, world: World) -> None:
    west, _ = world.crew("West")
    ticket = world.ticket(west)
    before = len(session.exec(select(SyncChange)).all())
    ticket.status = "EN_ROUTE"
    session.add(ticket)
    session.flush()
    session.rollback()
    assert len(session.exec(select(SyncChange)).all()) == before
    assert session.get(Ticket, ticket.id).status == "ASSIGNED"  # type: ignore[union-attr]
    ticket.status = "EN_ROUTE"
    session.add(ticket)
    session.commit()
    assert len(session.exec(select(SyncChange)).all()) > before


def test_a_savepoint_rolled_back_inside_a_committed_transaction_leaves_no_change_rows(
        session: Session, world: World) -> None:
    west, _ = world.crew("West")
    kept, dropped = world.ticket(west), world.ticket(west)
    before = session.exec(select(SyncChange.seq)).all()
    with session.begin_nested():
        kept.status = "EN_ROUTE"
        session.add(kept)
    savepoint = session.begin_nested()
    dropped.status = "ON_HOLD"
    session.add(dropped)
    session.flush()
    savepoint.rollback()
    session.commit()
    new_rows = session.exec(select(SyncChange).where(col(SyncChange.seq).not_in(before))).all()
    assert {row.ticket_id for row in new_rows} == {kept.id}


def test_ticket_ids_are_plain_numbers_or_global_ids_and_anything_else_is_no_id() -> None:
    from base64 import b64encode

    from mobile_sync.protocol import parse_ticket_id

    assert parse_ticket_id("12") == 12 and parse_ticket_id(b64encode(b"Ticket:7").decode()) == 7
    # Unicode digits pass str.isdigit() but not int(): they name no ticket rather than crash the batch.
    assert parse_ticket_id("²") is None and parse_ticket_id(b64encode("Ticket:²".encode()).decode()) is None
    assert parse_ticket_id(b64encode(b"Crew:7").decode()) is None and parse_ticket_id("") is None
