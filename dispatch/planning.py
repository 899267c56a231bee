"""Dispatch plans in the database: the optimizer's input read from tables, plans stored, committed, assigned.

The optimizer itself (dispatch/optimizer) sees only plain data; this module is the bridge. A multi-crew job is
one LEAD assignment (the crew the ticket's status and ETA follow) plus an ASSIST assignment per other crew, all
with the same planned times; they are written, activated and released together.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError, ErrorCode
from crews.models import Crew, GeneratorStatus, MobileGenerator
from crews.roster import on_shift, require_crew
from dispatch.enums import FIELD_KINDS, OPEN_STATUSES, PlanStatus, TicketStatus
from dispatch.locks import crews_when_locked, lock_region_plans, lock_rows, lock_ticket
from dispatch.models import Assignment, AssignmentRole, DispatchPlan, Ticket
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
from dispatch.optimizer.core import assist_keys, ticket_key, visit_ticket
from dispatch.optimizer.replan import preempt
from dispatch.rules import load_rules
from dispatch.tickets import change_status, record_event, release_assignments, require_ticket
from geo.travel import minutes_between

log = logging.getLogger(__name__)
SLOW_PLAN_SECONDS = 30.0  # a plan taking longer is logged as a warning, with where its time went
# Called with (region, trigger, solve seconds) after every optimizer solve; api/metrics.py adds its histogram here.
SOLVE_OBSERVERS: list[Callable[[str, str, float], None]] = []


def _observe_solve(region: str, trigger: str, seconds: float) -> None:
    for observe in SOLVE_OBSERVERS:
        observe(region, trigger, seconds)

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
    blocked: dict[int, str] = field(default_factory=dict)  # ticket id -> why it cannot be planned now


def _minutes(at: datetime | None, start: datetime, default: int) -> int:
    return default if at is None else int((at - start).total_seconds() // 60)


def with_meal_break(crew: CrewIn, settings: OptimizerSettings, shift_known: bool, taken: bool = False) -> CrewIn:
    """A crew on a long shift gets its meal break window (minutes into the shift, from the settings), unless it
    has ``taken`` it in this shift already (recorded by ``dispatch.events.meal_break_taken``)."""
    if taken or not shift_known or settings.meal_break_minutes <= 0 or \
            crew.shift_end - crew.shift_start <= settings.meal_break_after_minutes:
        return crew
    lo, hi = settings.meal_break_window
    return dataclasses.replace(crew, break_start=crew.shift_start + lo, break_end=crew.shift_start + hi,
                               break_minutes=settings.meal_break_minutes)


def read_planning_input(session: Session, region: str = "default", now: datetime | None = None,
                        only_routed_and: int | None = None, settings: OptimizerSettings | None = None,
                        ) -> PlanningInput:
    """Open field tickets, crews on or coming on shift and available generators of `region`, as plain data.

    `only_routed_and=ticket_id` reads just the tickets on crews' active routes plus that one: all an
    insertion needs, so an emergency does not load the whole pool. Crews whose shift (start and end both
    known) is longer than `settings.meal_break_after_minutes` get a meal break window, unless they took their
    break in this shift already (`Crew.break_taken_at`).
    """
    now = now or utcnow()
    rules = load_rules()
    s = settings or OptimizerSettings()
    crews = [
        with_meal_break(CrewIn(id=str(c.id), lat=c.lat if c.lat is not None else c.home_lat,
               lng=c.lng if c.lng is not None else c.home_lng, home_lat=c.home_lat, home_lng=c.home_lng,
               skills=frozenset(c.skills), shift_start=_minutes(c.shift_start, now, 0),
               shift_end=_minutes(c.shift_end, now, DEFAULT_SHIFT_HOURS * 60),
               can_tow_generator=c.can_tow_generator, region=c.region, home_region=c.home_region),
                    s, c.shift_start is not None and c.shift_end is not None,
                    taken=c.break_taken_at is not None and c.shift_start is not None
                    and c.break_taken_at >= c.shift_start)
        for c in session.exec(select(Crew).where(Crew.region == region, col(Crew.unavailable).is_(False)))
        if c.shift_end is None or c.shift_end > now
    ]
    if only_routed_and is not None and not crews:
        return PlanningInput(start=now, crews=[], tickets=[], generators=[])
    query = select(Ticket).where(
        Ticket.region == region, col(Ticket.kind).in_([k.value for k in FIELD_KINDS]),
        or_(col(Ticket.status).in_([s.value for s in PLANNABLE_STATUSES]),
            # on hold with a later window (customer not at home, booked slot): back in the pool for then
            (col(Ticket.status) == TicketStatus.ON_HOLD.value) & col(Ticket.window_start).is_not(None)),
        col(Ticket.duplicate_of_id).is_(None))
    if only_routed_and is not None:
        routed = select(Assignment.ticket_id).where(col(Assignment.active).is_(True))
        query = query.where(or_(col(Ticket.id).in_(routed), col(Ticket.id) == only_routed_and))
    rows = list(session.exec(query))
    active = {a.ticket_id: a for a in session.exec(select(Assignment).where(
        col(Assignment.active).is_(True), Assignment.role == AssignmentRole.LEAD.value,
        col(Assignment.ticket_id).in_([t.id for t in rows])))}
    tickets, unlocated = [], []
    for t in rows:
        if t.lat is None or t.lng is None:
            unlocated.append(t.id or 0)
            continue
        current = active.get(t.id or 0)
        service = rules.service_minutes(t.kind)
        if t.status == TicketStatus.ON_SITE and t.responded_at is not None:
            service = max(5, service - _minutes(now, t.responded_at, 0))
            if t.expected_finish is not None and t.expected_finish > now:  # an overrun the crew reported
                service = max(service, _minutes(t.expected_finish, now, 0))
        respond_by = None if t.respond_by is None or t.responded_at else _minutes(t.respond_by, now, 0)
        if t.window_end is not None and not t.responded_at:
            respond_by = _minutes(t.window_end, now, 0)
        tickets.append(TicketIn(
            id=str(t.id), lat=t.lat, lng=t.lng, priority=t.priority, kind=t.kind,
            required_skills=frozenset(t.required_skills), service_minutes=service,
            respond_by=respond_by,
            earliest_start=_minutes(t.window_start, now, 0) if t.window_start and t.window_start > now else None,
            customers_affected=max(1, t.customers_affected), needs_generator=t.needs_generator,
            crews_needed=max(1, t.crews_needed),
            depends_on=str(t.depends_on_id) if t.depends_on_id is not None else None,
            depends_gap_minutes=max(0, t.depends_gap_minutes),
            critical_load_kw=t.critical_load_kw, area_type=t.area_type, status=t.status,
            assigned_crew_id=str(current.crew_id) if current else None,
            pinned=bool(current and current.pinned), region=t.region,
        ))
    generators = [GeneratorIn(id=str(g.id), lat=g.lat, lng=g.lng, capacity_kw=g.capacity_kw)
                  for g in session.exec(select(MobileGenerator).where(
                      MobileGenerator.region == region,
                      col(MobileGenerator.status).in_([GeneratorStatus.AVAILABLE.value,
                                                       GeneratorStatus.ASSIGNED.value])))]
    crews = _busy_assisting(session, rows, crews, now)
    blocked = _blocked_by_predecessor(session, rows, tickets) if only_routed_and is None else {}
    tickets = [t for t in tickets if int(t.id) not in blocked]
    return PlanningInput(start=now, crews=crews, tickets=tickets, generators=generators, unlocated=unlocated,
                         blocked=blocked)


def _busy_assisting(session: Session, rows: list[Ticket], crews: list[CrewIn], now: datetime) -> list[CrewIn]:
    """A crew assisting on a started job (EN_ROUTE/ON_SITE) stays with it: the optimizer plans no assisting
    visit for started work, so the crew is made free only from the job's finish, at the job's place."""
    started = {t.id: t for t in rows if t.status in (TicketStatus.EN_ROUTE, TicketStatus.ON_SITE)
               and t.crews_needed > 1 and t.lat is not None and t.lng is not None}
    if not started:
        return crews
    busy: dict[str, tuple[int, float, float]] = {}
    for a in session.exec(select(Assignment).where(
            col(Assignment.active).is_(True), Assignment.role == AssignmentRole.ASSIST.value,
            col(Assignment.ticket_id).in_(list(started)))):
        t = started[a.ticket_id]
        finish = max(a.planned_finish, t.expected_finish or a.planned_finish, now)
        until = _minutes(finish, now, 0)
        if until >= busy.get(str(a.crew_id), (-1, 0.0, 0.0))[0]:
            busy[str(a.crew_id)] = (until, t.lat or 0.0, t.lng or 0.0)
    return [dataclasses.replace(c, shift_start=max(c.shift_start, busy[c.id][0]), lat=busy[c.id][1],
                                lng=busy[c.id][2]) if c.id in busy else c for c in crews]


def _blocked_by_predecessor(session: Session, rows: list[Ticket], tickets: list[TicketIn]) -> dict[int, str]:
    """Tickets waiting for a job that is still open but not on this board (unlocated, on hold, elsewhere), down
    chains: they cannot be planned now. A predecessor that is closed counts as done."""
    planned = {int(t.id) for t in tickets}
    blocked: dict[int, str] = {}
    changed = True
    while changed:
        changed = False
        for t in rows:
            dep = t.depends_on_id
            if t.id is None or dep is None or t.id in blocked or t.id not in planned:
                continue
            if dep in blocked:
                blocked[t.id] = f"waits for ticket {dep}, which cannot be planned now"
                changed = True
            elif dep not in planned:
                first = session.get(Ticket, dep)
                if first is not None and TicketStatus(first.status) in OPEN_STATUSES:
                    blocked[t.id] = f"waits for {first.number} ({first.status}), which is not on the board now"
                    changed = True
    return blocked


def committed_plan(session: Session, region: str = "default") -> DispatchPlan | None:
    return session.exec(select(DispatchPlan).where(DispatchPlan.region == region,
                                                   DispatchPlan.status == PlanStatus.COMMITTED)
                        .order_by(col(DispatchPlan.id).desc())).first()


def current_routes(session: Session, data: PlanningInput) -> Plan:
    """The crews' active routes as an optimizer plan: the warm start of a re-plan.

    The assignments are the leads'; ``stats['routes']`` also holds the assisting crews' visits of multi-crew
    jobs ("A:k:<ticket>"), so the job is whole in the warm start and in the evaluation of the current routes.
    """
    known = {t.id: t for t in data.tickets}
    crews = {c.id for c in data.crews}
    assignments: list[AssignmentOut] = []
    routes: dict[str, list[str]] = {}
    assists: dict[str, list[str]] = {}  # ticket -> its unused assisting visit keys
    for a in session.exec(select(Assignment).where(col(Assignment.active).is_(True))
                          .order_by(col(Assignment.crew_id), col(Assignment.sequence), col(Assignment.id))):
        tid, cid = str(a.ticket_id), str(a.crew_id)
        if tid not in known or cid not in crews:
            continue
        if a.role == AssignmentRole.ASSIST:
            keys = assists.setdefault(tid, assist_keys(tid, known[tid].crews_needed))
            if keys:  # more assisting rows than the job needs now (crewsNeeded lowered): the rest are left out
                routes.setdefault(cid, []).append(keys.pop(0))
            continue
        routes.setdefault(cid, []).append(ticket_key(tid))
        assignments.append(AssignmentOut(
            ticket_id=tid, crew_id=cid, sequence=a.sequence,
            planned_arrival=_minutes(a.planned_arrival, data.start, 0),
            planned_finish=_minutes(a.planned_finish, data.start, 0),
            generator_id=str(a.generator_id) if a.generator_id else None, pinned=a.pinned,
            late_minutes=0, reason=a.reason or ""))
    return Plan(assignments=assignments, unassigned=[], solve_seconds=0.0, late_tickets=0,
                total_travel_minutes=0.0, objective=0.0, customer_minutes=0.0, stats={"routes": routes})


def _route_positions(plan: Plan) -> dict[tuple[str, str], int]:
    """(crew, ticket) -> the job's place on that crew's route, counting led and assisted jobs alike (the
    optimizer's own sequence counts only the jobs a crew leads)."""
    positions: dict[tuple[str, str], int] = {}
    for cid, keys in ((plan.stats or {}).get("routes") or {}).items():
        jobs = [visit_ticket(k) for k in keys if k[0] in "TA"]
        positions.update({(cid, tid): i for i, tid in enumerate(jobs) if tid is not None})
    return positions


def _assisting_rows(plan: Plan, lead: AssignmentOut, start: datetime, positions: dict[tuple[str, str], int],
                    **fields: object) -> list[Assignment]:
    """The ASSIST rows of a multi-crew job the plan leads with ``lead``: same planned times as the lead's
    (the crews start together)."""
    crews_there = ((plan.stats or {}).get("multi_crew") or {}).get(lead.ticket_id, {}).get("crews") or []
    if crews_there[:1] != [lead.crew_id]:
        return []
    return [Assignment(
        ticket_id=int(lead.ticket_id), crew_id=int(cid), role=AssignmentRole.ASSIST.value,
        sequence=positions.get((cid, lead.ticket_id), 0),
        planned_arrival=start + timedelta(minutes=lead.planned_arrival),
        planned_finish=start + timedelta(minutes=lead.planned_finish), pinned=False,
        reason=f"assists crew {lead.crew_id}: {len(crews_there)} crews needed, starting together",
        **fields) for cid in crews_there[1:]]


def store_plan(session: Session, data: PlanningInput, plan: Plan, region: str, trigger: str) -> DispatchPlan:
    unassigned = [{"ticket_id": int(u.ticket_id), "reason": u.reason} for u in plan.unassigned]
    unassigned += [{"ticket_id": t, "reason": "location unknown: geocode the address or set a location"}
                   for t in data.unlocated]
    unassigned += [{"ticket_id": t, "reason": reason} for t, reason in data.blocked.items()]
    row = DispatchPlan(region=region, status=PlanStatus.PROPOSED.value, start_at=data.start,
                       solve_seconds=plan.solve_seconds, late_tickets=plan.late_tickets,
                       total_travel_minutes=plan.total_travel_minutes, objective=plan.objective,
                       trigger=trigger, stats=_json_safe(plan.stats), unassigned=unassigned)
    session.add(row)
    session.flush()
    # only a dispatcher's pin is stored as one (the optimizer also marks work in progress as fixed)
    pins = {t.id for t in data.tickets if t.pinned}
    positions = _route_positions(plan)
    for a in plan.assignments:
        session.add(Assignment(
            plan_id=row.id, ticket_id=int(a.ticket_id), crew_id=int(a.crew_id),
            generator_id=int(a.generator_id) if a.generator_id else None,
            sequence=positions.get((a.crew_id, a.ticket_id), a.sequence),
            planned_arrival=data.start + timedelta(minutes=a.planned_arrival),
            planned_finish=data.start + timedelta(minutes=a.planned_finish),
            pinned=a.ticket_id in pins, reason=a.reason, active=False))
        for assist in _assisting_rows(plan, a, data.start, positions, plan_id=row.id, active=False):
            session.add(assist)
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

    A multi-crew job's assisting crews (ASSIST rows) become active with its lead; the ticket's earlier rows, lead
    and assisting, are released, except the assisting crews of work under way that the plan keeps on its lead
    (see `_assist_stays`). Runs in the caller's transaction, so the switch is all or nothing.
    """
    if plan.status != PlanStatus.PROPOSED:
        raise DomainError.one("planId", f"plan {plan.id} is {plan.status}; only a proposed plan can be committed",
                              ErrorCode.CONFLICT)
    # The lock order of dispatch writes (dispatch/locks.py): commits of one region queue on its plan lock, then
    # take every row they write (incidents, tickets, assignments, generators, by id) before writing any, politely:
    # a commit after a long solve never loses a deadlock to intake or a device.
    lock_region_plans(session, plan.region)
    touched = session.exec(select(Assignment.ticket_id, Assignment.generator_id).where(
        Assignment.plan_id == plan.id)).all()
    lock_rows(session, [t for t, _g in touched] + [u["ticket_id"] for u in plan.unassigned],
              [g for _t, g in touched if g is not None])
    for old in session.exec(select(DispatchPlan).where(DispatchPlan.region == plan.region,
                                                       DispatchPlan.status == PlanStatus.COMMITTED)):
        old.status = PlanStatus.SUPERSEDED.value
        session.add(old)
    rows = list(session.exec(select(Assignment).where(Assignment.plan_id == plan.id)))
    new = [a for a in rows if a.role == AssignmentRole.LEAD]
    assisting: dict[int, list[Assignment]] = {}
    for a in rows:
        if a.role == AssignmentRole.ASSIST:
            assisting.setdefault(a.ticket_id, []).append(a)
    planned_ids = {a.ticket_id for a in new}
    unassigned_ids = {u["ticket_id"] for u in plan.unassigned}
    old_rows = list(session.exec(select(Assignment).where(
        col(Assignment.active).is_(True), col(Assignment.ticket_id).in_(planned_ids | unassigned_ids))))
    previous = {a.ticket_id: a for a in old_rows if a.role == AssignmentRole.LEAD}
    tickets = {t.id: t for t in session.exec(select(Ticket).where(col(Ticket.id).in_(planned_ids | unassigned_ids)))}
    crews = {c.id: c for c in session.exec(select(Crew))}
    lead_of = {a.ticket_id: a for a in new}
    newly_assisted = set(assisting)
    for old_assignment in old_rows:
        if old_assignment.role == AssignmentRole.ASSIST and _assist_stays(
                old_assignment, tickets.get(old_assignment.ticket_id), previous.get(old_assignment.ticket_id),
                lead_of.get(old_assignment.ticket_id), newly_assisted, crews):
            assisting.setdefault(old_assignment.ticket_id, []).append(old_assignment)
            continue
        old_assignment.active = False
        session.add(old_assignment)
    from customers.updates import publishing_together, ticket_changed

    # Customers hear of the plan's changes once per ticket, from its final state, in one batch (issues 7, 9).
    with publishing_together(session):
        for a in new:
            a.active = True
            session.add(a)
            for assist in assisting.get(a.ticket_id, []):
                assist.active = True
                session.add(assist)
            ticket = tickets[a.ticket_id]
            ticket.eta = a.planned_arrival
            before = previous.get(a.ticket_id)
            crew_name = _crew_name(crews, a.crew_id)
            helpers = sorted(_crew_name(crews, h.crew_id) for h in assisting.get(a.ticket_id, []))
            helped_before = sorted(_crew_name(crews, h.crew_id) for h in old_rows
                                   if h.ticket_id == a.ticket_id and h.role == AssignmentRole.ASSIST)
            note = f"{crew_name}, ETA {a.planned_arrival:%H:%M} UTC" + \
                (f", with {', '.join(helpers)} assisting" if helpers else "")
            if ticket.status == TicketStatus.NEW:
                change_status(session, ticket, TicketStatus.ASSIGNED, source, note=f"assigned to {note}")
            elif ticket.status == TicketStatus.ON_HOLD:  # waiting for its later window: planned, still on hold
                record_event(session, ticket, source, note=f"planned for {note}", kind="ASSIGNMENT")
            elif before is not None and before.crew_id != a.crew_id and ticket.status == TicketStatus.ASSIGNED:
                change_status(session, ticket, TicketStatus.ASSIGNED, source, note=f"reassigned to {note}")
            elif helpers != helped_before:
                record_event(session, ticket, source, kind="ASSIGNMENT",
                             note=f"assisting crews now: {', '.join(helpers)}" if helpers else "no crew assisting now")
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
        for ticket_id in sorted(planned_ids & tickets.keys()):  # an ETA moved without a new status is news too
            ticket_changed(session, tickets[ticket_id])
    plan.status = PlanStatus.COMMITTED.value
    session.add(plan)


def _crew_name(crews: dict[int | None, Crew], crew_id: int) -> str:
    return crews[crew_id].name if crew_id in crews else f"crew {crew_id}"


def _assist_stays(old: Assignment, ticket: Ticket | None, lead_before: Assignment | None,
                  lead_now: Assignment | None, newly_assisted: set[int],
                  crews: dict[int | None, Crew]) -> bool:
    """Work under way keeps its assisting crews: the optimizer fixes a started (or pinned) job to its lead and
    plans no assisting visits for it, so a plan that keeps the lead and names no assisting crews leaves them
    on the job, unless the crew has become unavailable."""
    crew = crews.get(old.crew_id)
    return (ticket is not None and ticket.crews_needed > 1 and lead_now is not None and lead_before is not None
            and lead_now.crew_id == lead_before.crew_id != old.crew_id
            and (ticket.status in (TicketStatus.EN_ROUTE, TicketStatus.ON_SITE) or lead_now.pinned)
            and old.ticket_id not in newly_assisted and crew is not None and not crew.unavailable)


def optimize_and_store(
    session: Session, time_limit_s: float | None = None, commit: bool = False, region: str = "default",
    source: str = "dispatcher", trigger: str = "manual", settings: OptimizerSettings | None = None,
    now: datetime | None = None,
) -> DispatchPlan:
    """Solve the region's board from its current routes (warm start); store the plan, commit it if asked."""
    if time_limit_s is not None and not 0 < time_limit_s <= 600:
        raise DomainError.one("timeLimitSeconds", "timeLimitSeconds must be more than 0 and at most 600")
    marks = [time.perf_counter()]
    data = read_planning_input(session, region, now, settings=settings)
    initial = current_routes(session, data)
    marks.append(time.perf_counter())
    plan = solve(data.crews, data.tickets, data.generators, settings or OptimizerSettings(),
                 initial_plan=initial if initial.assignments else None, time_limit_s=time_limit_s or 5.0)
    _observe_solve(region, trigger, plan.solve_seconds)
    marks.append(time.perf_counter())
    row = store_plan(session, data, plan, region, trigger)
    marks.append(time.perf_counter())
    if commit:
        commit_plan(session, row, source)
    session.commit()
    marks.append(time.perf_counter())
    # Where a slow plan's time went (a dispatcher waits for it): a warning past SLOW_PLAN_SECONDS.
    phases = ", ".join(f"{name} {b - a:.1f}s" for name, a, b in zip(
        ("read", "solve", "store", "commit"), marks, marks[1:], strict=False))
    log.log(logging.WARNING if marks[-1] - marks[0] > SLOW_PLAN_SECONDS else logging.INFO,
            "plan %s (%s, %s): %d assignments, %d unassigned; %s", row.id, region, trigger, len(plan.assignments),
            len(row.unassigned), phases)
    return row


def get_plan(session: Session, plan_id: int | None = None, region: str = "default") -> DispatchPlan | None:
    if plan_id is not None:
        return session.get(DispatchPlan, plan_id)
    return session.exec(select(DispatchPlan).where(DispatchPlan.region == region)
                        .order_by(col(DispatchPlan.id).desc())).first()


def plan_assignments(session: Session, plan_id: int) -> list[Assignment]:
    return list(session.exec(select(Assignment).where(Assignment.plan_id == plan_id)
                             .order_by(col(Assignment.crew_id), col(Assignment.sequence))))


def commit_proposed(session: Session, plan_id: int, source: str) -> DispatchPlan:
    """Commit a plan proposed earlier (`optimizeDispatch` with `commit: false`) exactly as the dispatcher saw it.

    Refused (CONFLICT) when the board has moved on since the proposal: a later plan was committed, a crew got
    a job outside the plan (a manual assignment, an urgent insertion), or one of its tickets can no longer be
    planned. The dispatcher then optimises again.
    """
    plan = session.get(DispatchPlan, plan_id)
    if plan is None:
        raise DomainError.one("planId", f"plan {plan_id} does not exist", ErrorCode.NOT_FOUND)
    if plan.status != PlanStatus.PROPOSED:
        raise DomainError.one("planId", f"plan {plan.id} is {plan.status}; only a proposed plan can be committed",
                              ErrorCode.CONFLICT)
    later = session.exec(select(DispatchPlan.id).where(
        DispatchPlan.region == plan.region, DispatchPlan.status == PlanStatus.COMMITTED,
        col(DispatchPlan.id) > plan.id)).first()
    if later is not None:
        raise DomainError.one("planId", f"plan {later} was committed after plan {plan.id} was proposed: "
                              "optimise again", ErrorCode.CONFLICT)
    moved = session.exec(select(Assignment.ticket_id).join(Ticket, col(Ticket.id) == col(Assignment.ticket_id)).where(
        col(Assignment.active).is_(True), Ticket.region == plan.region,
        col(Assignment.created_at) > plan.created_at)).first()
    if moved is not None:
        raise DomainError.one("planId", f"a ticket was assigned after plan {plan.id} was proposed: optimise again",
                              ErrorCode.CONFLICT)
    ticket_ids = {a.ticket_id for a in plan_assignments(session, plan_id)}
    done = session.exec(select(Ticket).where(
        col(Ticket.id).in_(ticket_ids),
        col(Ticket.status).not_in([s.value for s in PLANNABLE_STATUSES]))).first()
    if done is not None:
        raise DomainError.one("planId", f"ticket {done.number} is {done.status} since plan {plan.id} was proposed: "
                              "optimise again", ErrorCode.CONFLICT)
    commit_plan(session, plan, source)
    session.commit()
    return plan


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
    """Put a ticket at the end of a crew's route, checked like the optimizer would, and pin it if asked.

    Two dispatchers (or server processes) assigning one ticket at once queue on the ticket's row lock; the one
    that finds the ticket changed by the other while it waited gets CONFLICT instead of overwriting it.
    """
    now = now or utcnow()
    seen = _assignment_state(session, request.ticket_id)
    require_ticket(session, request.ticket_id)
    ticket = lock_ticket(session, request.ticket_id)  # in the lock order of dispatch writes (dispatch/locks.py)
    assert ticket is not None  # (require_ticket found it; tickets are never deleted)
    if _assignment_state(session, request.ticket_id) != seen:
        raise DomainError.one("ticketId", f"ticket {ticket.number} was just changed by someone else (now "
                              f"{ticket.status}): reload it and decide again", ErrorCode.CONFLICT)
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
    if ticket.crews_needed > 1:
        warnings.append(f"ticket {ticket.number} needs {ticket.crews_needed} crews at the same time; only "
                        f"{crew.name} is assigned by hand (assisting crews it had are released)")
    release_assignments(session, [ticket.id or 0])  # the lead and any assisting crews
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


def _assignment_state(session: Session, ticket_id: int) -> tuple[object, ...]:
    """The ticket's status and active assignments as the database has them now (not the session's copies)."""
    status = session.exec(select(Ticket.status).where(Ticket.id == ticket_id)).first()
    active = session.exec(select(Assignment.id).where(Assignment.ticket_id == ticket_id,
                                                      col(Assignment.active).is_(True))
                          .order_by(col(Assignment.id))).all()
    return (status, *active)


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
    committed routes. Work on site is never moved; a crew driving to a LOW/NORMAL job may be diverted (that
    job goes back to ASSIGNED, after the emergency on the same route). The background re-plan may improve on
    it later."""
    if ticket.lat is None:
        return None
    now = now or utcnow()
    if not _anyone_on_shift(session, ticket.region, now):
        _let_go(session)  # nobody to send: the re-plan takes it once crews come on shift; nothing was locked
        return None
    # The lock order of dispatch writes (dispatch/locks.py): the region's plan lock, then the ticket's row (with
    # its incident's). A dispatcher may have assigned it since it was read: look again (as assign_ticket).
    lock_region_plans(session, ticket.region)
    locked = lock_ticket(session, ticket.id or 0)
    assert locked is not None  # (tickets are never deleted)
    ticket = locked
    crews = crews_when_locked(session, [ticket.id or 0])
    assigned = bool(crews[ticket.id or 0]) if crews is not None else session.exec(select(Assignment.id).where(
        Assignment.ticket_id == ticket.id, col(Assignment.active).is_(True))).first() is not None
    if ticket.status != TicketStatus.NEW or assigned:
        session.rollback()
        return None
    data = read_planning_input(session, ticket.region, now, only_routed_and=ticket.id)
    new = next((t for t in data.tickets if t.id == str(ticket.id)), None)
    if new is None or not data.crews:
        _let_go(session)
        return None
    others = preempt([t for t in data.tickets if t.id != new.id])
    plan = insert_ticket(current_routes(session, data), data.crews, others, data.generators, new,
                         settings or OptimizerSettings())
    placed = next((a for a in plan.assignments if a.ticket_id == new.id), None)
    if placed is None:
        _let_go(session)
        return None
    # Only the routes of the receiving crew (and of its assisting crews, for a multi-crew job) change: rewrite
    # their planned times and sequence. An assisting crew's row takes the times of the job's lead.
    positions = _route_positions(plan)
    by_ticket = {a.ticket_id: a for a in plan.assignments}
    plan_row = committed_plan(session, ticket.region)
    helpers = _assisting_rows(plan, placed, data.start, positions,
                              plan_id=plan_row.id if plan_row else None, active=True)
    new_at = {cid: positions.get((cid, new.id), placed.sequence)
              for cid in [placed.crew_id, *(str(h.crew_id) for h in helpers)]}
    for row in session.exec(select(Assignment).where(col(Assignment.active).is_(True),
                                                     col(Assignment.crew_id).in_([int(c) for c in new_at]))):
        cid, out = str(row.crew_id), by_ticket.get(str(row.ticket_id))
        if out is None or (row.role == AssignmentRole.LEAD and out.crew_id != cid):
            continue
        seq = positions.get((cid, out.ticket_id), out.sequence)
        if seq > new_at[cid] and row.role == AssignmentRole.LEAD:
            diverted = session.get(Ticket, row.ticket_id)
            if diverted is not None and diverted.status == TicketStatus.EN_ROUTE:
                diverted.eta = data.start + timedelta(minutes=out.planned_arrival)  # customers hear of it
                change_status(session, diverted, TicketStatus.ASSIGNED, source,
                              note=f"crew diverted to {ticket.priority} ticket {ticket.number} first")
        row.sequence = seq
        row.planned_arrival = data.start + timedelta(minutes=out.planned_arrival)
        row.planned_finish = data.start + timedelta(minutes=out.planned_finish)
        session.add(row)
    assignment = Assignment(
        plan_id=plan_row.id if plan_row else None, ticket_id=ticket.id or 0, crew_id=int(placed.crew_id),
        generator_id=int(placed.generator_id) if placed.generator_id else None,
        sequence=positions.get((placed.crew_id, new.id), placed.sequence),
        planned_arrival=data.start + timedelta(minutes=placed.planned_arrival),
        planned_finish=data.start + timedelta(minutes=placed.planned_finish),
        pinned=False, reason=f"inserted at once: {placed.reason}", active=True)
    session.add(assignment)
    for helper in helpers:
        session.add(helper)
    crew = session.get(Crew, assignment.crew_id)
    ticket.eta = assignment.planned_arrival
    change_status(session, ticket, TicketStatus.ASSIGNED, source,
                  note=f"{ticket.priority}: assigned at once to {crew.name if crew else assignment.crew_id}, "
                       f"ETA {assignment.planned_arrival:%H:%M} UTC")
    session.commit()
    return assignment


def _anyone_on_shift(session: Session, region: str, now: datetime) -> bool:
    """Whether a crew of `region` is on or coming on shift (the crews `read_planning_input` plans with): asked
    before a fast insertion locks anything, so that with nobody to send it waits for no one's rows."""
    return any(end is None or end > now for end in session.exec(select(Crew.shift_end).where(
        Crew.region == region, col(Crew.unavailable).is_(False))))


def _let_go(session: Session) -> None:
    """End a fast insertion that placed nothing: it wrote nothing, but may hold the region's plan lock and the
    ticket's row, which plan commits, other emergencies and intake wait for; the request's session would end its
    transaction only after the answer is sent. The session is closed, which rolls the transaction back (a commit
    would wait for the disk: taking row locks writes them) and keeps its objects as read, for the answer (a
    rollback would expire them)."""
    session.close()


URGENT_PRIORITIES = frozenset({"EMERGENCY", "CRITICAL"})


def is_urgent(ticket: Ticket) -> bool:
    """An EMERGENCY/CRITICAL field ticket: it is given a crew at once, not at the next plan."""
    return ticket.priority in URGENT_PRIORITIES and ticket.kind in {k.value for k in FIELD_KINDS}


def dispatch_urgent(session: Session, ticket: Ticket, source: str = "system") -> Assignment | None:
    """A new EMERGENCY/CRITICAL field ticket gets a crew at once (fast insertion); others wait for a plan."""
    if not is_urgent(ticket):
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
    _observe_solve(region, "reoptimize", plan.solve_seconds)
    if plan.objective >= current - 1e-6:
        log.info("re-optimisation of %s found nothing better (%.0f vs %.0f)", region, plan.objective, current)
        return None
    row = store_plan(session, data, plan, region, trigger="reoptimize")
    commit_plan(session, row, "system")
    session.commit()
    log.info("re-optimisation of %s committed plan %s (%.0f -> %.0f)", region, row.id, current, plan.objective)
    return row
