"""Re-planning on real-time events, on plain data: emergencies with pre-emption, overruns, crews leaving or
joining, customers not at home. Each keeps started work, starts from the current plan and reports the diff.

Stability: every not-yet-started job keeps its current crew as ``TicketIn.assigned_crew_id``; the objective
charges ``OptimizerSettings.reassign_cost`` for moving it, so a re-plan moves only what is worth moving.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from dispatch.optimizer.insertion import insert_ticket
from dispatch.optimizer.model import CrewIn, GeneratorIn, OptimizerSettings, Plan, TicketIn
from dispatch.optimizer.solve import solve
from geo.travel import TravelMatrixProvider

PREEMPTIBLE = frozenset({"LOW", "NORMAL"})


@dataclass(frozen=True)
class Change:
    """One ticket's fate in a re-plan: ``kind`` is moved, kept, new, dropped or retimed (same crew, ETA
    moved by at least ``RETIME_MINUTES``)."""

    ticket_id: str
    kind: str
    crew_before: str | None
    crew_after: str | None
    eta_before: int | None
    eta_after: int | None
    reason: str


RETIME_MINUTES = 5


@dataclass
class Replan:
    """A re-plan's result: the new plan and what changed against the plan before."""

    plan: Plan
    changes: list[Change] = field(default_factory=list)
    event: str = ""

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def moved(self) -> list[Change]:
        """Jobs that had a crew and now have another one, or none (jobs moved by the re-plan)."""
        return [c for c in self.changes if c.kind in ("moved", "dropped")]

    def change(self, ticket_id: str) -> Change | None:
        return next((c for c in self.changes if c.ticket_id == ticket_id), None)


def diff(before: Plan | None, after: Plan, started: Collection[str] = ()) -> list[Change]:
    """Per ticket in either plan: moved (other crew), kept (same crew, ETA within a few minutes), retimed,
    new (had no crew) or dropped (had a crew, has none); the reason is the new plan's reason for it."""
    old = {a.ticket_id: a for a in (before.assignments if before else [])}
    new = {a.ticket_id: a for a in after.assignments}
    why_not = {u.ticket_id: u.reason for u in after.unassigned}
    out: list[Change] = []
    for tid in sorted(set(old) | set(new)):
        a, b = old.get(tid), new.get(tid)
        if a is None and b is not None:
            kind = "new"
        elif b is None and a is not None:
            kind = "dropped"
        elif a is not None and b is not None and a.crew_id != b.crew_id:
            kind = "moved"
        elif a is not None and b is not None and abs(a.planned_arrival - b.planned_arrival) >= RETIME_MINUTES:
            kind = "retimed"
        else:
            kind = "kept"
        if tid in started and kind == "retimed":
            kind = "kept"
        out.append(Change(
            ticket_id=tid, kind=kind, crew_before=a.crew_id if a else None, crew_after=b.crew_id if b else None,
            eta_before=a.planned_arrival if a else None, eta_after=b.planned_arrival if b else None,
            reason=b.reason if b else why_not.get(tid, ""),
        ))
    return out


def with_owners(tickets: Sequence[TicketIn], plan: Plan | None) -> list[TicketIn]:
    """Tickets with their current crew from ``plan`` (for not-yet-started work), so moving them costs."""
    if plan is None:
        return list(tickets)
    crew_of = {a.ticket_id: a.crew_id for a in plan.assignments}
    out = []
    for t in tickets:
        if not t.fixed and t.assigned_crew_id is None and t.id in crew_of:
            t = dataclasses.replace(t, assigned_crew_id=crew_of[t.id])
        out.append(t)
    return out


def replan(
    before: Plan | None,
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn],
    settings: OptimizerSettings,
    *,
    event: str = "re-plan",
    time_limit_s: float | None = None,
    matrix_provider: TravelMatrixProvider | None = None,
) -> Replan:
    """Re-solve from ``before`` (warm start; never worse than it re-read against the new data), keeping
    started and pinned work first on its crew and charging the stability cost for moving other jobs."""
    owned = with_owners(tickets, before)
    plan = solve(crews, owned, generators, settings, matrix_provider=matrix_provider, initial_plan=before,
                 time_limit_s=time_limit_s)
    started = {t.id for t in tickets if t.in_progress}
    return Replan(plan, diff(before, plan, started), event)


def preempt(tickets: Sequence[TicketIn], consent: Collection[str] = ()) -> list[TicketIn]:
    """Make the work an emergency may take over divertible: LOW/NORMAL jobs a crew is driving to (not yet
    started) lose their fixed place; ON_SITE work only with the dispatcher's consent (ids in ``consent``).
    The crew stays their owner, so they cost the stability penalty if they go to someone else."""
    out = []
    for t in tickets:
        if t.in_progress and not t.pinned and (
            (t.status == "EN_ROUTE" and t.priority in PREEMPTIBLE) or t.id in consent
        ):
            t = dataclasses.replace(t, status="ASSIGNED")
        out.append(t)
    return out


def emergency(
    before: Plan,
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn],
    new_ticket: TicketIn,
    settings: OptimizerSettings,
    *,
    consent: Collection[str] = (),
    time_limit_s: float | None = 2.0,
    matrix_provider: TravelMatrixProvider | None = None,
) -> Replan:
    """An EMERGENCY/CRITICAL ticket arrives: cheapest insertion at once (it may go ahead of, and divert a crew
    from, a LOW/NORMAL job not yet started; started work only with consent), then a short re-plan from there
    when ``time_limit_s`` is given. The ``Replan`` holds the final plan; ``stats['inserted_plan']`` the
    immediate answer's crew for the new ticket."""
    others = preempt(with_owners([t for t in tickets if t.id != new_ticket.id], before), consent)
    inserted = insert_ticket(before, crews, others, generators, new_ticket, settings, matrix_provider)
    first_crew = inserted.crew_of(new_ticket.id)
    plan = inserted
    if time_limit_s:
        plan = solve(crews, [*others, new_ticket], generators, settings, matrix_provider=matrix_provider,
                     initial_plan=inserted, time_limit_s=time_limit_s)
    plan.stats["inserted_crew"] = first_crew
    started = {t.id for t in others if t.in_progress}
    return Replan(plan, diff(before, plan, started), f"emergency {new_ticket.id}")


def overrun(
    before: Plan,
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn],
    ticket_id: str,
    remaining_minutes: int,
    settings: OptimizerSettings,
    **kw: object,
) -> Replan:
    """An ON_SITE job takes longer: its remaining service becomes ``remaining_minutes``; later jobs of that
    crew move in time, and those that would now be late go to other crews when that is better overall."""
    changed = [dataclasses.replace(t, service_minutes=max(1, remaining_minutes)) if t.id == ticket_id else t
               for t in tickets]
    return replan(before, crews, changed, generators, settings, event=f"overrun {ticket_id}", **kw)  # type: ignore[arg-type]


def crew_unavailable(
    before: Plan,
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn],
    crew_id: str,
    settings: OptimizerSettings,
    **kw: object,
) -> Replan:
    """A crew drops out (ill, vehicle broken): it leaves the plan; its jobs, even one under way, go back to
    the pool (unowned) and are re-planned to the other crews."""
    left = [c for c in crews if c.id != crew_id]
    freed = [
        dataclasses.replace(t, status="NEW", assigned_crew_id=None, pinned=False)
        if t.assigned_crew_id == crew_id or before.crew_of(t.id) == crew_id else t
        for t in tickets
    ]
    start = dataclasses.replace(before, assignments=[a for a in before.assignments if a.crew_id != crew_id],
                                stats={**before.stats, "routes": {
                                    c: k for c, k in before.stats.get("routes", {}).items() if c != crew_id}})
    result = replan(start, left, freed, generators, settings, event=f"crew {crew_id} unavailable", **kw)  # type: ignore[arg-type]
    result.changes = diff(before, result.plan, {t.id for t in freed if t.in_progress})
    return result


def customer_not_home(
    before: Plan,
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn],
    ticket_id: str,
    retry_from: int,
    settings: OptimizerSettings,
    window_minutes: int = 120,
    **kw: object,
) -> Replan:
    """No-show: the job leaves its crew and comes back to the pool with a later window
    (``retry_from`` .. ``retry_from + window_minutes``); the crew's other jobs move up."""
    retried = [
        dataclasses.replace(t, status="NEW", assigned_crew_id=None, pinned=False, earliest_start=retry_from,
                            respond_by=retry_from + window_minutes)
        if t.id == ticket_id else t
        for t in tickets
    ]
    start = dataclasses.replace(before, assignments=[a for a in before.assignments if a.ticket_id != ticket_id],
                                stats={**before.stats, "routes": {
                                    c: [k for k in keys if k != f"T:{ticket_id}"]
                                    for c, keys in before.stats.get("routes", {}).items()}})
    result = replan(start, crews, retried, generators, settings, event=f"no-show {ticket_id}", **kw)  # type: ignore[arg-type]
    result.changes = diff(before, result.plan)
    return result


def crew_joins(
    before: Plan,
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn],
    new_crews: Sequence[CrewIn],
    settings: OptimizerSettings,
    **kw: object,
) -> Replan:
    """New crews on shift or mutual-aid crews arrive: they join the plan and take the pool's waiting work
    (and, where clearly better, jobs from overloaded crews)."""
    known = {c.id for c in crews}
    all_crews = [*crews, *[c for c in new_crews if c.id not in known]]
    names = ", ".join(c.id for c in new_crews)
    return replan(before, all_crews, tickets, generators, settings, event=f"crews joined: {names}", **kw)  # type: ignore[arg-type]
