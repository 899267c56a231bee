"""Repeat-caller risk warnings (高频诉求风险预警): RED/ORANGE/YELLOW/BLUE per caller by quality/rules.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, literal, or_
from sqlmodel import Session, col, select

from core.clock import utcnow
from dispatch.enums import TicketKind
from dispatch.models import Ticket
from geo.areas import RegionConfig
from quality.common import Window, days_window
from quality.handover import owners_of
from quality.models import CallerRisk, QualityTask
from quality.rules import QualitySettings, RiskLevelRule, RiskRules

COMPLAINT = TicketKind.COMPLAINT.value


def mask_phone(value: str | None) -> str:
    """138****5678: the first three and last four characters stay, the rest is starred."""
    text = (value or "").strip()
    if len(text) >= 8:
        return text[:3] + "*" * (len(text) - 7) + text[-4:]
    if len(text) > 4:
        return "*" * (len(text) - 4) + text[-4:]
    return "*" * len(text) if text else "****"


@dataclass(frozen=True)
class CallerCounts:
    caller_key: str
    tickets: int
    complaints: int
    most_on_one_issue: int
    regulator: bool


@dataclass
class RepeatCallerRisk:
    caller_key: str
    phone_masked: str
    ticket_count: int
    complaint_count: int
    risk_level: str
    trigger: str
    department: str
    required_action: str
    deadline: datetime | None
    unit: str
    tickets: list[Ticket] = field(default_factory=list)


def classify(counts: CallerCounts, rules: RiskRules) -> tuple[RiskLevelRule, str] | None:
    """The most severe level whose trigger the caller meets, with the trigger in words; None below every level."""
    days = rules.window_days
    for rule in rules.levels:
        if rule.regulator_complaint and counts.regulator:
            return rule, "a complaint was escalated to the regulator (12398)"
        if rule.min_complaints is not None and counts.complaints >= rule.min_complaints:
            return rule, f"{counts.complaints} complaints in {days} days"
        if rule.covers(counts.tickets) and (not rule.same_issue or counts.most_on_one_issue >= rule.min_tickets):
            what = "tickets on the same issue" if rule.same_issue else "tickets"
            return rule, f"{counts.tickets} {what} in {days} days"
    return None


def caller_counts(session: Session, window: Window, rules: RiskRules) -> list[CallerCounts]:
    """Per caller (phone, else account) in the window: tickets, complaints, most of one kind, regulator complaint.

    One aggregation in the database; only callers that could reach a level come back.
    """
    key = func.coalesce(col(Ticket.contact_phone), col(Ticket.account_number))
    regulator_text = or_(*[col(c).ilike(f"%{word}%") for word in rules.regulator_keywords
                           for c in (Ticket.summary, Ticket.description)]) if rules.regulator_keywords \
        else literal(False)
    per_kind = (
        select(key.label("caller"), col(Ticket.kind).label("kind"), func.count().label("n"),
               func.max(case((and_(col(Ticket.kind) == COMPLAINT, regulator_text), 1), else_=0)).label("reg"))
        .where(col(Ticket.created_at) >= window.start, col(Ticket.created_at) < window.end, key.is_not(None))
        .group_by(key, col(Ticket.kind))
        .subquery()
    )
    total = func.sum(per_kind.c.n)
    complaints = func.sum(case((per_kind.c.kind == COMPLAINT, per_kind.c.n), else_=0))
    min_complaints = min((r.min_complaints for r in rules.levels if r.min_complaints), default=None)
    having = [total >= rules.min_tickets, func.max(per_kind.c.reg) == 1]
    if min_complaints is not None:
        having.append(complaints >= min_complaints)
    query = (select(per_kind.c.caller, total, complaints, func.max(per_kind.c.n), func.max(per_kind.c.reg))
             .group_by(per_kind.c.caller).having(or_(*having)))
    return [CallerCounts(caller_key=row[0], tickets=int(row[1]), complaints=int(row[2] or 0),
                         most_on_one_issue=int(row[3]), regulator=bool(row[4]))
            for row in session.exec(query)]


def repeat_callers(session: Session, rules: RiskRules, settings: QualitySettings, days: int | None = None,
                   now: datetime | None = None) -> list[RepeatCallerRisk]:
    """Callers at a risk level over the last `days` days (default: the rules' window), most severe first."""
    now = now or utcnow()
    window = days_window(days, now, default_days=rules.window_days)
    found: list[tuple[CallerCounts, RiskLevelRule, str]] = []
    for counts in caller_counts(session, window, rules):
        level = classify(counts, rules)
        if level is not None:
            found.append((counts, *level))
    if not found:
        return []
    key = func.coalesce(col(Ticket.contact_phone), col(Ticket.account_number))
    keys = [c.caller_key for c, _, _ in found]
    tickets: dict[str, list[Ticket]] = {k: [] for k in keys}
    rows = session.exec(select(Ticket, key).where(col(Ticket.created_at) >= window.start,
                                                  col(Ticket.created_at) < window.end, key.in_(keys))
                        .order_by(col(Ticket.created_at), col(Ticket.id)))
    for ticket, caller in rows:
        tickets[caller].append(ticket)
    latest = {k: v[-1] for k, v in tickets.items() if v}
    owners = owners_of(session, list(latest.values()), settings)
    result: list[RepeatCallerRisk] = []
    for counts, rule, trigger in found:
        own = tickets[counts.caller_key]
        last = own[-1]
        deadline = last.created_at + timedelta(hours=rule.deadline_hours) if rule.deadline_hours else None
        result.append(RepeatCallerRisk(
            caller_key=counts.caller_key, phone_masked=mask_phone(counts.caller_key), ticket_count=counts.tickets,
            complaint_count=counts.complaints, risk_level=rule.level, trigger=trigger, department=rule.department,
            required_action=rule.action, deadline=deadline, unit=owners[last.id or 0].unit, tickets=own))
    order = [r.level for r in rules.levels]
    result.sort(key=lambda r: (order.index(r.risk_level), -r.ticket_count, -(r.tickets[-1].id or 0)))
    return result


def sync_risk_levels(session: Session, rules: RiskRules, settings: QualitySettings, region: RegionConfig,
                     now: datetime | None = None) -> list[QualityTask]:
    """Remember each caller's level; a new or changed level creates one task for the responsible department.

    Callers who dropped below every level are forgotten (a later rise creates a task again).
    """
    now = now or utcnow()
    current = {r.caller_key: r for r in repeat_callers(session, rules, settings, now=now)}
    known = {c.caller_key: c for c in session.exec(select(CallerRisk))}
    tasks: list[QualityTask] = []
    for caller, risk in current.items():
        seen = known.get(caller)
        if seen is not None and seen.level == risk.risk_level:
            continue
        if seen is None:
            seen = CallerRisk(caller_key=caller)
        seen.level, seen.changed_at = risk.risk_level, now
        session.add(seen)
        manager = region.branch(risk.unit).manager if region.branch(risk.unit) else settings.default_unit.manager
        task = QualityTask(
            key=f"RISK:{caller}:{risk.risk_level}:{now.isoformat()}", kind="RISK_LEVEL", caller_key=caller,
            ticket_id=risk.tickets[-1].id, recipient_role="DEPARTMENT", recipient=f"{risk.department} ({risk.unit})",
            unit=risk.unit, level=risk.risk_level, due_at=risk.deadline, created_at=now,
            message=(f"{risk.risk_level}: caller {risk.phone_masked}, {risk.trigger}; required: "
                     f"{risk.required_action} (unit {risk.unit}, manager {manager})"))
        session.add(task)
        tasks.append(task)
    for caller, seen in known.items():
        if caller not in current:
            session.delete(seen)
    session.flush()
    return tasks
