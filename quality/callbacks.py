"""Callbacks (回访): a task for every resolved complaint and a sample of resolved repairs; the recorded result
feeds satisfaction, and a customer saying it is not resolved reopens the ticket."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError, ErrorCode, Problems
from dispatch.enums import FIELD_KINDS, TicketKind, TicketStatus
from dispatch.models import Ticket
from dispatch.tickets import change_status, record_event
from quality.models import CallbackTask
from quality.rules import QualitySettings

SAMPLE_MULTIPLIER = 7919  # spreads ticket ids over 0..99 for the deterministic repair sample


def create_callback_tasks(session: Session, settings: QualitySettings,
                          now: datetime | None = None) -> list[CallbackTask]:
    """Callback tasks for tickets resolved within the look-back that have none for that resolution yet:
    every complaint, and `repair_sample_percent` of field repairs (chosen by ticket id, so reproducible)."""
    now = now or utcnow()
    since = now - timedelta(days=settings.callback_lookback_days)
    field = [k.value for k in FIELD_KINDS]
    has_task = select(CallbackTask.id).where(col(CallbackTask.ticket_id) == col(Ticket.id),
                                             col(CallbackTask.resolved_at) == col(Ticket.resolved_at)).exists()
    sampled = (col(Ticket.id) * SAMPLE_MULTIPLIER) % 100 < settings.repair_sample_percent
    rows = session.exec(select(Ticket).where(
        col(Ticket.resolved_at).is_not(None), col(Ticket.resolved_at) >= since, col(Ticket.resolved_at) <= now,
        col(Ticket.status).in_([TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value]),
        or_(col(Ticket.kind) == TicketKind.COMPLAINT.value, and_(col(Ticket.kind).in_(field), sampled)),
        ~has_task).order_by(col(Ticket.id))).all()
    tasks: list[CallbackTask] = []
    for ticket in rows:
        complaint = ticket.kind == TicketKind.COMPLAINT.value
        hours = settings.callback_complaint_hours if complaint else settings.callback_repair_hours
        resolved_at = ticket.resolved_at or now
        task = CallbackTask(ticket_id=ticket.id or 0, resolved_at=resolved_at,
                            reason="COMPLAINT" if complaint else "SAMPLE",
                            due_at=resolved_at + timedelta(hours=hours), created_at=now)
        session.add(task)
        tasks.append(task)
    session.flush()
    return tasks


def record_callback(session: Session, callback_id: int, reached: bool | None, score: int | None = None,
                    resolved: bool | None = None, note: str | None = None, source: str = "service centre",
                    now: datetime | None = None) -> CallbackTask:
    """Record a callback's result. Reached: a score 1–5 and whether the problem is resolved are required; not
    resolved reopens the ticket (status NEW). Not reached: neither may be given."""
    now = now or utcnow()
    problems = Problems()
    if reached is None:
        problems.add("reached", "say whether the customer was reached", ErrorCode.REQUIRED)
    elif reached:
        if score is None:
            problems.add("score", "a reached customer's score (1–5) is required", ErrorCode.REQUIRED)
        elif not 1 <= score <= 5:
            problems.add("score", f"score must be 1 to 5, got {score}")
        if resolved is None:
            problems.add("resolved", "say whether the customer considers it resolved", ErrorCode.REQUIRED)
    else:
        if score is not None:
            problems.add("score", "no score without reaching the customer")
        if resolved is not None:
            problems.add("resolved", "no resolution verdict without reaching the customer")
    if note is not None and len(note) > 2000:
        problems.add("note", "note may be at most 2000 characters")
    problems.raise_if_any()
    task = session.get(CallbackTask, callback_id)
    if task is None:
        raise DomainError.one("callbackId", f"callback {callback_id} does not exist", ErrorCode.NOT_FOUND)
    if task.status != "PENDING":
        raise DomainError.one("callbackId", f"callback {callback_id} was already recorded", ErrorCode.CONFLICT)
    ticket = session.get(Ticket, task.ticket_id)
    assert ticket is not None  # foreign key
    reopen = bool(reached) and resolved is False
    if reopen and ticket.status != TicketStatus.RESOLVED.value:
        raise DomainError.one("resolved", f"ticket {ticket.number} is {ticket.status} and cannot be reopened; "
                                          "create a new ticket", ErrorCode.CONFLICT)
    task.reached, task.score, task.resolved, task.note = reached, score, resolved, note
    task.status, task.done_at = "DONE", now
    session.add(task)
    result = ("not reached" if not reached
              else f"score {score}, {'resolved' if resolved else 'NOT resolved'}")
    record_event(session, ticket, source, note=f"callback: {result}" + (f" ({note})" if note else ""),
                 kind="CALLBACK", at=now)
    if reopen:
        change_status(session, ticket, TicketStatus.NEW, source, note="reopened: the customer says the problem "
                                                                      "is not resolved (callback)", at=now)
    session.flush()
    return task


def list_callback_tasks(session: Session, pending: bool | None = None, limit: int = 100) -> list[CallbackTask]:
    """Callback tasks, the soonest due first; `pending` True/False filters on PENDING."""
    query = select(CallbackTask).order_by(col(CallbackTask.due_at), col(CallbackTask.id))
    if pending is not None:
        query = query.where((col(CallbackTask.status) == "PENDING") == pending)
    return list(session.exec(query.limit(limit)))
