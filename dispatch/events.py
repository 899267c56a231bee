"""Real-time dispatch events in the database: each re-plans its region at once, keeping started work.

Every event reads the region's board, re-plans it on plain data (dispatch/optimizer/replan.py: warm start
from the crews' current routes, a stability cost for moving jobs that have not started), writes the status
changes the event implies, then stores and commits the new plan in one transaction. Committing sets ETAs and
records ticket events, which publish revised ETAs to customers (customers/updates.py outbox).

The outcome lists per ticket what moved, what stayed and why (the new plan's reason).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError, ErrorCode
from crews.roster import require_crew
from dispatch.enums import FIELD_KINDS, TicketStatus
from dispatch.models import Assignment, AssignmentRole, DispatchPlan, Ticket
from dispatch.optimizer import OptimizerSettings, Plan
from dispatch.optimizer import replan as rp
from dispatch.planning import (
    PlanningInput,
    commit_plan,
    current_routes,
    read_planning_input,
    store_plan,
)
from dispatch.tickets import change_status, record_event, require_ticket

EVENT_TIME_LIMIT_S = 2.0
URGENT = frozenset({"EMERGENCY", "CRITICAL"})


@dataclass
class EventOutcome:
    """The committed plan after an event and the per-ticket changes against the plan before."""

    event: str
    plan: DispatchPlan
    changes: list[rp.Change] = field(default_factory=list)

    @property
    def moved(self) -> list[rp.Change]:
        return [c for c in self.changes if c.kind in ("moved", "dropped")]

    def change(self, ticket_id: int) -> rp.Change | None:
        return next((c for c in self.changes if c.ticket_id == str(ticket_id)), None)


ReplanFn = Callable[[Plan, PlanningInput], rp.Replan]


def _run(session: Session, region: str, trigger: str, source: str, now: datetime | None,
         replanner: ReplanFn, before_commit: Callable[[rp.Replan], None] | None = None) -> EventOutcome:
    data = read_planning_input(session, region, now)
    before = current_routes(session, data)
    result = replanner(before, data)
    if before_commit is not None:
        before_commit(result)
    row = store_plan(session, data, result.plan, region, trigger)
    row.stats = {**row.stats, "event": result.event,
                 "changes": [c.__dict__ for c in result.changes if c.kind != "kept"]}
    commit_plan(session, row, source)
    session.commit()
    return EventOutcome(result.event, row, result.changes)


def _settings(settings: OptimizerSettings | None) -> OptimizerSettings:
    return settings or OptimizerSettings(time_limit_s=EVENT_TIME_LIMIT_S)


def emergency_arrived(session: Session, ticket_id: int, source: str = "system", *,
                      consent: Collection[int] = (), now: datetime | None = None,
                      settings: OptimizerSettings | None = None,
                      time_limit_s: float = EVENT_TIME_LIMIT_S) -> EventOutcome:
    """A new EMERGENCY/CRITICAL field ticket: inserted at once, then a short re-plan. A crew driving to a
    LOW/NORMAL job may be diverted (that job returns to ASSIGNED behind the emergency); work on site is only
    interrupted for the tickets in ``consent`` (the dispatcher's explicit agreement; it goes on hold and back
    to the pool)."""
    ticket = require_ticket(session, ticket_id)
    if ticket.priority not in URGENT or ticket.kind not in {k.value for k in FIELD_KINDS}:
        raise DomainError.one("ticketId", f"ticket {ticket.number} is not an EMERGENCY/CRITICAL field ticket")
    if ticket.status != TicketStatus.NEW:
        raise DomainError.one("ticketId", f"ticket {ticket.number} is {ticket.status}, not NEW", ErrorCode.CONFLICT)
    s = _settings(settings)
    agreed = {str(i) for i in consent}

    def run(before: Plan, data: PlanningInput) -> rp.Replan:
        new = next((t for t in data.tickets if t.id == str(ticket.id)), None)
        if new is None:
            raise DomainError.one("ticketId", f"ticket {ticket.number} has no location to plan", ErrorCode.INFEASIBLE)
        others = [t for t in data.tickets if t.id != new.id]
        return rp.emergency(before, data.crews, others, data.generators, new, s, consent=agreed,
                            time_limit_s=time_limit_s)

    def release(result: rp.Replan) -> None:
        first = {cid: ids[0] for cid in {a.crew_id for a in result.plan.assignments}
                 if (ids := result.plan.route(cid))}
        planned = [int(a.ticket_id) for a in result.plan.assignments] + [int(u.ticket_id) for u in
                                                                         result.plan.unassigned]
        for row in session.exec(select(Ticket).where(col(Ticket.id).in_(planned), col(Ticket.status).in_(
                [TicketStatus.EN_ROUTE.value, TicketStatus.ON_SITE.value]))):
            crew_now = result.plan.crew_of(str(row.id))
            still_first = crew_now is not None and first.get(crew_now) == str(row.id)
            if still_first:
                continue
            if row.status == TicketStatus.EN_ROUTE:
                change_status(session, row, TicketStatus.ASSIGNED, source,
                              note=f"crew diverted to {ticket.priority} ticket {ticket.number} first")
            elif str(row.id) in agreed:
                change_status(session, row, TicketStatus.ON_HOLD, source,
                              note=f"work interrupted with the dispatcher's consent for {ticket.number}")
                change_status(session, row, TicketStatus.NEW, source, note="back in the pool to be finished")

    return _run(session, ticket.region, "emergency", source, now, run, release)


def job_overran(session: Session, ticket_id: int, expected_finish: datetime, source: str = "device", *,
                now: datetime | None = None, settings: OptimizerSettings | None = None,
                time_limit_s: float = EVENT_TIME_LIMIT_S) -> EventOutcome:
    """An ON_SITE job takes longer (reported by the crew's device or found by time passing): the crew's later
    jobs move in time, and those that would now miss their deadline go to other crews if that is better."""
    now = now or utcnow()
    ticket = require_ticket(session, ticket_id)
    if ticket.status != TicketStatus.ON_SITE:
        raise DomainError.one("ticketId", f"ticket {ticket.number} is {ticket.status}; only work on site overruns",
                              ErrorCode.CONFLICT)
    if expected_finish <= now:
        raise DomainError.one("expectedFinish", "the expected finish must be in the future")
    ticket.expected_finish = expected_finish
    session.add(ticket)
    record_event(session, ticket, source, note=f"overrun: now expected to finish at {expected_finish:%H:%M} UTC",
                 kind="NOTE")
    session.flush()
    s = _settings(settings)
    return _run(session, ticket.region, "overrun", source, now,
                lambda before, data: rp.replan(before, data.crews, data.tickets, data.generators, s,
                                               event=f"overrun {ticket_id}", time_limit_s=time_limit_s))


def overruns_by_time(session: Session, region: str = "default", source: str = "system", *,
                     grace_minutes: int = 15, now: datetime | None = None, settings: OptimizerSettings | None = None,
                     time_limit_s: float = EVENT_TIME_LIMIT_S) -> EventOutcome | None:
    """Overruns found by time passing (no report from the device): jobs still ON_SITE ``grace_minutes`` after
    their planned finish are assumed to need at least ``grace_minutes`` more, and the region is re-planned
    once for all of them. Nothing overrunning: None. Meant to be called periodically."""
    now = now or utcnow()
    late = list(session.exec(select(Ticket).join(Assignment, col(Assignment.ticket_id) == col(Ticket.id)).where(
        col(Assignment.active).is_(True), Assignment.role == AssignmentRole.LEAD.value, Ticket.region == region,
        Ticket.status == TicketStatus.ON_SITE.value,
        col(Assignment.planned_finish) < now - timedelta(minutes=grace_minutes))))
    late = [t for t in late if t.expected_finish is None or t.expected_finish < now]
    if not late:
        return None
    for t in late:
        t.expected_finish = now + timedelta(minutes=grace_minutes)
        session.add(t)
        record_event(session, t, source, kind="NOTE",
                     note=f"overrunning its planned finish; assumed to need until {t.expected_finish:%H:%M} UTC")
    session.flush()
    s = _settings(settings)
    return _run(session, region, "overrun", source, now,
                lambda before, data: rp.replan(before, data.crews, data.tickets, data.generators, s,
                                               event=f"overruns {[t.id for t in late]}", time_limit_s=time_limit_s))


def crew_unavailable(session: Session, crew_id: int, reason: str, source: str = "dispatcher", *,
                     now: datetime | None = None, settings: OptimizerSettings | None = None,
                     time_limit_s: float = EVENT_TIME_LIMIT_S) -> EventOutcome:
    """A crew drops out (ill, vehicle broken; from the dispatcher or its device): it is marked unavailable,
    all its jobs — even one under way — go back to the pool and are re-planned to the other crews; the
    customers concerned get revised ETAs."""
    crew = require_crew(session, crew_id)
    if not (reason or "").strip():
        raise DomainError.one("reason", "say why the crew is unavailable", ErrorCode.REQUIRED)
    s = _settings(settings)

    def run(before: Plan, data: PlanningInput) -> rp.Replan:
        return rp.crew_unavailable(before, data.crews, data.tickets, data.generators, str(crew_id), s,
                                   time_limit_s=time_limit_s)

    def release(result: rp.Replan) -> None:
        crew.unavailable = True
        session.add(crew)
        rows = session.exec(select(Assignment).where(Assignment.crew_id == crew_id, col(Assignment.active).is_(True)))
        for a in list(rows):
            t = session.get(Ticket, a.ticket_id)
            if t is None:
                continue
            note = f"{crew.name} unavailable ({reason.strip()[:200]})"
            if a.role != AssignmentRole.LEAD:  # the ticket follows its lead crew, which carries on
                record_event(session, t, source, kind="NOTE", note=f"{note}: no longer assisting")
                continue
            if t.status == TicketStatus.EN_ROUTE:
                change_status(session, t, TicketStatus.ASSIGNED, source, note=f"{note}: to be re-planned")
            elif t.status == TicketStatus.ON_SITE:
                change_status(session, t, TicketStatus.ON_HOLD, source, note=f"{note}: work unfinished")
                change_status(session, t, TicketStatus.NEW, source, note="back in the pool to be finished")

    return _run(session, crew.region, "crew_unavailable", source, now, run, release)


def customer_not_home(session: Session, ticket_id: int, reason: str, source: str = "device", *,
                      retry_after_minutes: int = 120, window_minutes: int = 120, now: datetime | None = None,
                      settings: OptimizerSettings | None = None,
                      time_limit_s: float = EVENT_TIME_LIMIT_S) -> EventOutcome:
    """No-show: the job goes ON_HOLD with the reason and back to the pool with a later window (from
    ``retry_after_minutes`` from now, ``window_minutes`` long); the crew's other jobs move up."""
    now = now or utcnow()
    ticket = require_ticket(session, ticket_id)
    if ticket.status not in (TicketStatus.ASSIGNED, TicketStatus.EN_ROUTE, TicketStatus.ON_SITE):
        raise DomainError.one("ticketId", f"ticket {ticket.number} is {ticket.status}; no crew was on its way",
                              ErrorCode.CONFLICT)
    if not (reason or "").strip():
        raise DomainError.one("reason", "say what happened on site", ErrorCode.REQUIRED)
    if not 0 <= retry_after_minutes <= 7 * 24 * 60 or not 30 <= window_minutes <= 24 * 60:
        raise DomainError.one("retryAfterMinutes", "retry within a week, in a window of 30 min to 24 h")
    s = _settings(settings)

    def run(before: Plan, data: PlanningInput) -> rp.Replan:
        return rp.customer_not_home(before, data.crews, data.tickets, data.generators, str(ticket_id),
                                    retry_after_minutes, s, window_minutes, time_limit_s=time_limit_s)

    def hold(_result: rp.Replan) -> None:
        ticket.window_start = now + timedelta(minutes=retry_after_minutes)
        ticket.window_end = ticket.window_start + timedelta(minutes=window_minutes)
        change_status(session, ticket, TicketStatus.ON_HOLD, source,
                      note=f"customer not at home: {reason.strip()[:300]}; next window "
                           f"{ticket.window_start:%H:%M}–{ticket.window_end:%H:%M} UTC")
        session.add(ticket)

    return _run(session, ticket.region, "no_show", source, now, run, hold)


def crews_joined(session: Session, crew_ids: Collection[int], source: str = "dispatcher", *,
                 region: str | None = None, now: datetime | None = None,
                 settings: OptimizerSettings | None = None,
                 time_limit_s: float = EVENT_TIME_LIMIT_S) -> EventOutcome:
    """New crews on shift or mutual-aid crews arrived (already on the region's roster, e.g. by
    ``crews.roster.lend_crew``): they join the plan and take waiting work; crews from another home region
    carry the lending cost, visible in their assignments' reasons."""
    crews = [require_crew(session, i) for i in crew_ids]
    if not crews:
        raise DomainError.one("crewIds", "name at least one crew", ErrorCode.REQUIRED)
    target = region or crews[0].region
    wrong = [c.name for c in crews if c.region != target or c.unavailable]
    if wrong:
        raise DomainError.one("crewIds", f"not available on region {target}'s board: {', '.join(wrong)}",
                              ErrorCode.CONFLICT)
    s = _settings(settings)
    names = ", ".join(c.name for c in crews)
    return _run(session, target, "crews_joined", source, now,
                lambda before, data: rp.replan(before, data.crews, data.tickets, data.generators, s,
                                               event=f"crews joined: {names}", time_limit_s=time_limit_s))


def crew_available(session: Session, crew_id: int, source: str = "dispatcher", *, note: str = "",
                   now: datetime | None = None, settings: OptimizerSettings | None = None,
                   time_limit_s: float = EVENT_TIME_LIMIT_S) -> EventOutcome:
    """A crew is back after ``crew_unavailable`` (vehicle fixed, crew member back; from the dispatcher or its
    device): it is available again, rejoins its region's plan like a new crew on shift and takes waiting work
    (and, where clearly better, jobs from other crews: the stability cost keeps that to what is worth it)."""
    crew = require_crew(session, crew_id)
    if not crew.unavailable:
        raise DomainError.one("crewId", f"{crew.name} is not unavailable", ErrorCode.CONFLICT)
    crew.unavailable = False
    session.add(crew)
    session.flush()  # the board read below must see the crew again
    s = _settings(settings)
    why = f" ({note.strip()[:200]})" if (note or "").strip() else ""
    return _run(session, crew.region, "crew_available", source, now,
                lambda before, data: rp.replan(before, data.crews, data.tickets, data.generators, s,
                                               event=f"crew available again: {crew.name}{why}",
                                               time_limit_s=time_limit_s))


def meal_break_taken(session: Session, crew_id: int, source: str = "dispatcher", *, at: datetime | None = None,
                     now: datetime | None = None, settings: OptimizerSettings | None = None,
                     time_limit_s: float = EVENT_TIME_LIMIT_S) -> EventOutcome:
    """The crew took its meal break (reported by the dispatcher or its device; ``at`` defaults to now): recorded
    on the crew (``Crew.break_taken_at``), so no re-plan of this shift plans another, and the region is
    re-planned at once: the time kept for the break goes back to the crew's jobs."""
    now = now or utcnow()
    crew = require_crew(session, crew_id)
    at = at or now
    if at > now + timedelta(minutes=5):
        raise DomainError.one("at", "a meal break is recorded once taken, not ahead")
    if crew.shift_start is not None and at < crew.shift_start:
        raise DomainError.one("at", f"{crew.name}'s shift started at {crew.shift_start:%H:%M} UTC, after that",
                              ErrorCode.CONFLICT)
    crew.break_taken_at = at
    session.add(crew)
    session.flush()
    s = _settings(settings)
    return _run(session, crew.region, "meal_break", source, now,
                lambda before, data: rp.replan(before, data.crews, data.tickets, data.generators, s,
                                               event=f"meal break taken: {crew.name}", time_limit_s=time_limit_s))


def active_route(session: Session, crew_id: int) -> list[int]:
    """Ticket ids on a crew's active route, in order (for dispatchers' views and tests)."""
    return [a.ticket_id for a in session.exec(select(Assignment).where(
        Assignment.crew_id == crew_id, col(Assignment.active).is_(True)).order_by(col(Assignment.sequence)))]


__all__ = [
    "EventOutcome",
    "active_route",
    "crew_available",
    "crew_unavailable",
    "crews_joined",
    "customer_not_home",
    "emergency_arrived",
    "job_overran",
    "meal_break_taken",
    "overruns_by_time",
]
