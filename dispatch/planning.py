"""Dispatch plans in the database: the optimizer's input read from tables, plans stored, committed, assigned.

The optimizer itself (dispatch/optimizer) sees only plain data; this module is the bridge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, text
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError, ErrorCode
from crews.models import Crew, GeneratorStatus, MobileGenerator
from crews.roster import on_shift, require_crew
from dispatch.enums import FIELD_KINDS, PlanStatus, TicketStatus
from dispatch.models import Assignment, DispatchPlan, Ticket
from dispatch.optimizer import (
    AssignmentOut,
    CrewIn,
    GeneratorIn,
    OptimizerSettings,
    Plan,
    TicketIn,
    evaluate,
    insert_ticket,
    solve,
)
from dispatch.rules import load_rules
from dispatch.tickets import change_status, record_event, require_ticket
from geo.travel import minutes_between

log = logging.getLogger(__name__)

PLANNABLE_STATUSES = (TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.EN_ROUTE, TicketStatus.ON_SITE)
DEFAULT_SHIFT_HOURS = 12  # a crew without a shift is planned as on call for this long


@dataclass
class PlanningInput:
    """What the optimizer is asked, plus what the bridge needs to map its answer back."""

    start: datetime
    crews: list[CrewIn]
    tickets: list[TicketIn]
    generators: list[GeneratorIn]
    unlocated: list[int] = field(default_factory=list)


def _minutes(at: datetime | None, start: datetime, default: int) -> int:
    return default if at is None else int((at - start).total_seconds() // 60)


def read_planning_input(session: Session, region: str = "default", now: datetime | None = None,
                        only_routed_and: int | None = None) -> PlanningInput:
    """Open field tickets, crews on or coming on shift and available generators of `region`, as plain data.

    `only_routed_and=ticket_id` reads just the tickets on crews' active routes plus that one: all an
    insertion needs, so an emergency does not load the whole pool.
    """
    now = now or utcnow()
    rules = load_rules()
    crews = [
        CrewIn(id=str(c.id), lat=c.lat if c.lat is not None else c.home_lat,
               lng=c.lng if c.lng is not None else c.home_lng, home_lat=c.home_lat, home_lng=c.home_lng,
               skills=frozenset(c.skills), shift_start=_minutes(c.shift_start, now, 0),
               shift_end=_minutes(c.shift_end, now, DEFAULT_SHIFT_HOURS * 60),
               can_tow_generator=c.can_tow_generator, region=c.region)
        for c in session.exec(select(Crew).where(Crew.region == region, col(Crew.unavailable).is_(False)))
        if c.shift_end is None or c.shift_end > now
    ]
    if only_routed_and is not None and not crews:
        return PlanningInput(start=now, crews=[], tickets=[], generators=[])
    query = select(Ticket).where(
        Ticket.region == region, col(Ticket.kind).in_([k.value for k in FIELD_KINDS]),
        col(Ticket.status).in_([s.value for s in PLANNABLE_STATUSES]), col(Ticket.duplicate_of_id).is_(None))
    if only_routed_and is not None:
        routed = select(Assignment.ticket_id).where(col(Assignment.active).is_(True))
        query = query.where(or_(col(Ticket.id).in_(routed), col(Ticket.id) == only_routed_and))
    rows = list(session.exec(query))
    active = {a.ticket_id: a for a in session.exec(select(Assignment).where(
        col(Assignment.active).is_(True), col(Assignment.ticket_id).in_([t.id for t in rows])))}
    tickets, unlocated = [], []
    for t in rows:
        if t.lat is None or t.lng is None:
            unlocated.append(t.id or 0)
            continue
        current = active.get(t.id or 0)
        service = rules.service_minutes(t.kind)
        if t.status == TicketStatus.ON_SITE and t.responded_at is not None:
            service = max(5, service - _minutes(now, t.responded_at, 0))
        tickets.append(TicketIn(
            id=str(t.id), lat=t.lat, lng=t.lng, priority=t.priority, kind=t.kind,
            required_skills=frozenset(t.required_skills), service_minutes=service,
            respond_by=None if t.respond_by is None or t.responded_at else _minutes(t.respond_by, now, 0),
            customers_affected=max(1, t.customers_affected), needs_generator=t.needs_generator,
            critical_load_kw=t.critical_load_kw, area_type=t.area_type, status=t.status,
            assigned_crew_id=str(current.crew_id) if current else None,
            pinned=bool(current and current.pinned), region=t.region,
        ))
    generators = [GeneratorIn(id=str(g.id), lat=g.lat, lng=g.lng, capacity_kw=g.capacity_kw)
                  for g in session.exec(select(MobileGenerator).where(
                      MobileGenerator.region == region,
                      col(MobileGenerator.status).in_([GeneratorStatus.AVAILABLE.value,
                                                       GeneratorStatus.ASSIGNED.value])))]
    return PlanningInput(start=now, crews=crews, tickets=tickets, generators=generators, unlocated=unlocated)


def committed_plan(session: Session, region: str = "default") -> DispatchPlan | None:
    return session.exec(select(DispatchPlan).where(DispatchPlan.region == region,
                                                   DispatchPlan.status == PlanStatus.COMMITTED)
                        .order_by(col(DispatchPlan.id).desc())).first()


def current_routes(session: Session, data: PlanningInput) -> Plan:
    """The crews' active routes as an optimizer plan: the warm start of a re-plan."""
    known = {t.id for t in data.tickets}
    crews = {c.id for c in data.crews}
    assignments = [
        AssignmentOut(ticket_id=str(a.ticket_id), crew_id=str(a.crew_id), sequence=a.sequence,
                      planned_arrival=_minutes(a.planned_arrival, data.start, 0),
                      planned_finish=_minutes(a.planned_finish, data.start, 0),
                      generator_id=str(a.generator_id) if a.generator_id else None, pinned=a.pinned,
                      late_minutes=0, reason=a.reason or "")
        for a in session.exec(select(Assignment).where(col(Assignment.active).is_(True))
                              .order_by(col(Assignment.crew_id), col(Assignment.sequence)))
        if str(a.ticket_id) in known and str(a.crew_id) in crews
    ]
    return Plan(assignments=assignments, unassigned=[], solve_seconds=0.0, late_tickets=0,
                total_travel_minutes=0.0, objective=0.0, customer_minutes=0.0, stats={})


def store_plan(session: Session, data: PlanningInput, plan: Plan, region: str, trigger: str) -> DispatchPlan:
    unassigned = [{"ticket_id": int(u.ticket_id), "reason": u.reason} for u in plan.unassigned]
    unassigned += [{"ticket_id": t, "reason": "location unknown: geocode the address or set a location"}
                   for t in data.unlocated]
    row = DispatchPlan(region=region, status=PlanStatus.PROPOSED.value, start_at=data.start,
                       solve_seconds=plan.solve_seconds, late_tickets=plan.late_tickets,
                       total_travel_minutes=plan.total_travel_minutes, objective=plan.objective,
                       trigger=trigger, stats=_json_safe(plan.stats), unassigned=unassigned)
    session.add(row)
    session.flush()
    for a in plan.assignments:
        session.add(Assignment(
            plan_id=row.id, ticket_id=int(a.ticket_id), crew_id=int(a.crew_id),
            generator_id=int(a.generator_id) if a.generator_id else None, sequence=a.sequence,
            planned_arrival=data.start + timedelta(minutes=a.planned_arrival),
            planned_finish=data.start + timedelta(minutes=a.planned_finish),
            pinned=a.pinned, reason=a.reason, active=False))
    return row


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def commit_plan(session: Session, plan: DispatchPlan, source: str) -> None:
    """Make `plan` the one crews work to: its assignments active, ETAs set, tickets ASSIGNED, events written.

    Runs in the caller's transaction, so the switch is all or nothing.
    """
    if plan.status != PlanStatus.PROPOSED:
        raise DomainError.one("planId", f"plan {plan.id} is {plan.status}; only a proposed plan can be committed",
                              ErrorCode.CONFLICT)
    if session.get_bind().dialect.name == "postgresql":
        # Commits of one region queue behind each other (several server processes may re-plan at once), so
        # exactly one plan is COMMITTED afterwards. Released with the transaction. The key includes the schema,
        # so deployments (and test runs) sharing one database never wait on each other.
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || :key))"),
                        {"key": f":gridcrew-plan:{plan.region}"})
    for old in session.exec(select(DispatchPlan).where(DispatchPlan.region == plan.region,
                                                       DispatchPlan.status == PlanStatus.COMMITTED)):
        old.status = PlanStatus.SUPERSEDED.value
        session.add(old)
    new = list(session.exec(select(Assignment).where(Assignment.plan_id == plan.id)))
    planned_ids = {a.ticket_id for a in new}
    unassigned_ids = {u["ticket_id"] for u in plan.unassigned}
    previous = {a.ticket_id: a for a in session.exec(select(Assignment).where(
        col(Assignment.active).is_(True), col(Assignment.ticket_id).in_(planned_ids | unassigned_ids)))}
    for old_assignment in previous.values():
        old_assignment.active = False
        session.add(old_assignment)
    tickets = {t.id: t for t in session.exec(select(Ticket).where(col(Ticket.id).in_(planned_ids | unassigned_ids)))}
    crews = {c.id: c for c in session.exec(select(Crew))}
    for a in new:
        a.active = True
        session.add(a)
        ticket = tickets[a.ticket_id]
        ticket.eta = a.planned_arrival
        before = previous.get(a.ticket_id)
        crew_name = crews[a.crew_id].name if a.crew_id in crews else f"crew {a.crew_id}"
        note = f"{crew_name}, ETA {a.planned_arrival:%H:%M} UTC"
        if ticket.status == TicketStatus.NEW:
            change_status(session, ticket, TicketStatus.ASSIGNED, source, note=f"assigned to {note}")
        elif before is not None and before.crew_id != a.crew_id and ticket.status == TicketStatus.ASSIGNED:
            change_status(session, ticket, TicketStatus.ASSIGNED, source, note=f"reassigned to {note}")
        session.add(ticket)
        if a.generator_id:
            generator = session.get(MobileGenerator, a.generator_id)
            if generator is not None:
                generator.status = GeneratorStatus.ASSIGNED.value
                generator.assigned_ticket_id = a.ticket_id
                session.add(generator)
    for ticket_id in unassigned_ids - planned_ids:
        ticket = tickets.get(ticket_id)
        if ticket is not None and ticket.status == TicketStatus.ASSIGNED:
            ticket.eta = None
            change_status(session, ticket, TicketStatus.NEW, source, note="back in the pool: no crew in this plan")
    plan.status = PlanStatus.COMMITTED.value
    session.add(plan)
    from customers.updates import tickets_changed  # ETAs moved by the plan reach customers (issue 7)

    tickets_changed(session, [tickets[i] for i in planned_ids if i in tickets])


def optimize_and_store(
    session: Session, time_limit_s: float | None = None, commit: bool = False, region: str = "default",
    source: str = "dispatcher", trigger: str = "manual", settings: OptimizerSettings | None = None,
    now: datetime | None = None,
) -> DispatchPlan:
    """Solve the region's board from its current routes (warm start); store the plan, commit it if asked."""
    if time_limit_s is not None and not 0 < time_limit_s <= 600:
        raise DomainError.one("timeLimitSeconds", "timeLimitSeconds must be more than 0 and at most 600")
    data = read_planning_input(session, region, now)
    initial = current_routes(session, data)
    plan = solve(data.crews, data.tickets, data.generators, settings or OptimizerSettings(),
                 initial_plan=initial if initial.assignments else None, time_limit_s=time_limit_s or 5.0)
    row = store_plan(session, data, plan, region, trigger)
    if commit:
        commit_plan(session, row, source)
    session.commit()
    log.info("plan %s: %d assignments, %d unassigned, %.2fs", row.id, len(plan.assignments),
             len(row.unassigned), plan.solve_seconds)
    return row


def get_plan(session: Session, plan_id: int | None = None, region: str = "default") -> DispatchPlan | None:
    if plan_id is not None:
        return session.get(DispatchPlan, plan_id)
    return session.exec(select(DispatchPlan).where(DispatchPlan.region == region)
                        .order_by(col(DispatchPlan.id).desc())).first()


def plan_assignments(session: Session, plan_id: int) -> list[Assignment]:
    return list(session.exec(select(Assignment).where(Assignment.plan_id == plan_id)
                             .order_by(col(Assignment.crew_id), col(Assignment.sequence))))


# ------------------------------------------------------------------ the dispatcher's manual assignment


@dataclass
class AssignRequest:
    ticket_id: int
    crew_id: int
    generator_id: int | None = None
    pin: bool = False


@dataclass
class AssignResult:
    assignment: Assignment
    warnings: list[str]


def assign_ticket(session: Session, request: AssignRequest, source: str, now: datetime | None = None) -> AssignResult:
    """Put a ticket at the end of a crew's route, checked like the optimizer would, and pin it if asked."""
    now = now or utcnow()
    ticket = require_ticket(session, request.ticket_id)
    crew = require_crew(session, request.crew_id)
    warnings: list[str] = []
    if ticket.status not in {TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.ON_HOLD}:
        raise DomainError.one("ticketId", f"ticket {ticket.number} is {ticket.status}; only NEW, ASSIGNED or "
                              "ON_HOLD tickets can be (re)assigned", ErrorCode.CONFLICT)
    missing = sorted(set(ticket.required_skills) - set(crew.skills))
    if missing:
        raise DomainError.one("crewId", f"{crew.name} lacks the skills {', '.join(missing)} that ticket "
                              f"{ticket.number} needs", ErrorCode.INFEASIBLE)
    if crew.unavailable:
        raise DomainError.one("crewId", f"{crew.name} is marked unavailable", ErrorCode.INFEASIBLE)
    if not on_shift(crew, now):
        warnings.append(f"{crew.name} is off shift now (shift {crew.shift_start} – {crew.shift_end})")
    generator = _check_generator(session, request.generator_id, ticket, crew)
    route = list(session.exec(select(Assignment).where(col(Assignment.active).is_(True),
                                                       Assignment.crew_id == crew.id,
                                                       Assignment.ticket_id != ticket.id)
                              .order_by(col(Assignment.sequence))))
    start_point = (crew.lat if crew.lat is not None else crew.home_lat,
                   crew.lng if crew.lng is not None else crew.home_lng)
    ready = now
    if route:
        last = route[-1]
        last_ticket = session.get(Ticket, last.ticket_id)
        ready = max(now, last.planned_finish)
        if last_ticket is not None and last_ticket.lat is not None and last_ticket.lng is not None:
            start_point = (last_ticket.lat, last_ticket.lng)
    travel = 0 if ticket.lat is None or ticket.lng is None else \
        minutes_between(start_point, (ticket.lat, ticket.lng), ticket.area_type)
    arrival = ready + timedelta(minutes=travel)
    if ticket.respond_by and arrival > ticket.respond_by:
        late = int((arrival - ticket.respond_by).total_seconds() // 60)
        warnings.append(f"planned arrival is {late} min after the respond-by deadline")
    for old in session.exec(select(Assignment).where(col(Assignment.active).is_(True),
                                                     Assignment.ticket_id == ticket.id)):
        old.active = False
        session.add(old)
    assignment = Assignment(
        ticket_id=ticket.id or 0, crew_id=crew.id or 0, generator_id=generator.id if generator else None,
        sequence=(route[-1].sequence + 1) if route else 0, planned_arrival=arrival,
        planned_finish=arrival + timedelta(minutes=load_rules().service_minutes(ticket.kind)),
        pinned=request.pin, active=True,
        reason=f"dispatcher's choice{' (pinned)' if request.pin else ''}; {travel} min drive",
    )
    session.add(assignment)
    ticket.eta = arrival
    note = f"assigned by hand to {crew.name}, ETA {arrival:%H:%M} UTC" + (" (pinned)" if request.pin else "")
    if ticket.status == TicketStatus.ASSIGNED:
        record_event(session, ticket, source, note=note, kind="ASSIGNMENT")
    else:
        change_status(session, ticket, TicketStatus.ASSIGNED, source, note=note)
    if generator is not None:
        generator.status = GeneratorStatus.ASSIGNED.value
        generator.assigned_ticket_id = ticket.id
        session.add(generator)
    session.add(ticket)
    session.commit()
    return AssignResult(assignment, warnings)


def _check_generator(session: Session, generator_id: int | None, ticket: Ticket, crew: Crew) -> MobileGenerator | None:
    if generator_id is None:
        return None
    generator = session.get(MobileGenerator, generator_id)
    if generator is None:
        raise DomainError.one("generatorId", f"generator {generator_id} does not exist", ErrorCode.NOT_FOUND)
    if not crew.can_tow_generator:
        raise DomainError.one("crewId", f"{crew.name} cannot tow a generator", ErrorCode.INFEASIBLE)
    if ticket.critical_load_kw and generator.capacity_kw < ticket.critical_load_kw:
        raise DomainError.one("generatorId", f"{generator.name} gives {generator.capacity_kw:g} kW; the site "
                              f"needs {ticket.critical_load_kw:g} kW", ErrorCode.INFEASIBLE)
    if generator.status == GeneratorStatus.MAINTENANCE:
        raise DomainError.one("generatorId", f"{generator.name} is in maintenance", ErrorCode.INFEASIBLE)
    if generator.assigned_ticket_id not in (None, ticket.id):
        raise DomainError.one("generatorId", f"{generator.name} already serves ticket {generator.assigned_ticket_id}",
                              ErrorCode.CONFLICT)
    return generator


# ------------------------------------------------------------------ emergencies: insert at once


def fast_insert(session: Session, ticket: Ticket, source: str = "system",
                settings: OptimizerSettings | None = None, now: datetime | None = None) -> Assignment | None:
    """Give a new EMERGENCY/CRITICAL ticket a crew within milliseconds: cheapest feasible insertion into the
    committed routes, nothing in progress moved. The background re-plan may improve on it later."""
    if ticket.lat is None or ticket.status != TicketStatus.NEW:
        return None
    data = read_planning_input(session, ticket.region, now, only_routed_and=ticket.id)
    new = next((t for t in data.tickets if t.id == str(ticket.id)), None)
    if new is None or not data.crews:
        return None
    others = [t for t in data.tickets if t.id != new.id]
    plan = insert_ticket(current_routes(session, data), data.crews, others, data.generators, new,
                         settings or OptimizerSettings())
    placed = next((a for a in plan.assignments if a.ticket_id == new.id), None)
    if placed is None:
        return None
    # Only the receiving crew's route changes: rewrite its planned times and sequence.
    same_crew = {a.ticket_id: a for a in plan.assignments if a.crew_id == placed.crew_id}
    for row in session.exec(select(Assignment).where(col(Assignment.active).is_(True),
                                                     Assignment.crew_id == int(placed.crew_id))):
        out = same_crew.get(str(row.ticket_id))
        if out is not None:
            row.sequence = out.sequence
            row.planned_arrival = data.start + timedelta(minutes=out.planned_arrival)
            row.planned_finish = data.start + timedelta(minutes=out.planned_finish)
            session.add(row)
    plan_row = committed_plan(session, ticket.region)
    assignment = Assignment(
        plan_id=plan_row.id if plan_row else None, ticket_id=ticket.id or 0, crew_id=int(placed.crew_id),
        generator_id=int(placed.generator_id) if placed.generator_id else None, sequence=placed.sequence,
        planned_arrival=data.start + timedelta(minutes=placed.planned_arrival),
        planned_finish=data.start + timedelta(minutes=placed.planned_finish),
        pinned=False, reason=f"inserted at once: {placed.reason}", active=True)
    session.add(assignment)
    crew = session.get(Crew, assignment.crew_id)
    ticket.eta = assignment.planned_arrival
    change_status(session, ticket, TicketStatus.ASSIGNED, source,
                  note=f"{ticket.priority}: assigned at once to {crew.name if crew else assignment.crew_id}, "
                       f"ETA {assignment.planned_arrival:%H:%M} UTC")
    session.commit()
    return assignment



URGENT_PRIORITIES = frozenset({"EMERGENCY", "CRITICAL"})


def dispatch_urgent(session: Session, ticket: Ticket, source: str = "system") -> Assignment | None:
    """A new EMERGENCY/CRITICAL field ticket gets a crew at once (fast insertion); others wait for a plan."""
    if ticket.priority not in URGENT_PRIORITIES or ticket.kind not in {k.value for k in FIELD_KINDS}:
        return None
    return fast_insert(session, ticket, source)


def reoptimize_if_better(session: Session, region: str = "default", time_limit_s: float = 5.0,
                         settings: OptimizerSettings | None = None, now: datetime | None = None) -> DispatchPlan | None:
    """Re-solve the board from the crews' current routes; commit only a plan with a lower objective."""
    settings = settings or OptimizerSettings()
    data = read_planning_input(session, region, now)
    initial = current_routes(session, data)
    current = evaluate(initial, data.crews, data.tickets, settings, generators=data.generators)["objective"]
    plan = solve(data.crews, data.tickets, data.generators, settings,
                 initial_plan=initial if initial.assignments else None, time_limit_s=time_limit_s)
    if plan.objective >= current - 1e-6:
        log.info("re-optimisation of %s found nothing better (%.0f vs %.0f)", region, plan.objective, current)
        return None
    row = store_plan(session, data, plan, region, trigger="reoptimize")
    commit_plan(session, row, "system")
    session.commit()
    log.info("re-optimisation of %s committed plan %s (%.0f -> %.0f)", region, row.id, current, plan.objective)
    return row
