"""Plain-data inputs, outputs and settings of the dispatch optimizer (no database, no API)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from geo.travel import TravelSettings

PRIORITIES: tuple[str, ...] = ("EMERGENCY", "CRITICAL", "HIGH", "NORMAL", "LOW")
PRIORITY_RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}
IN_PROGRESS: frozenset[str] = frozenset({"EN_ROUTE", "ON_SITE"})
LOSS_OF_SUPPLY_KINDS: frozenset[str] = frozenset({"FAULT_REPAIR", "EMERGENCY"})
LOSS_OF_SUPPLY_PRIORITIES: frozenset[str] = frozenset({"EMERGENCY", "CRITICAL", "HIGH", "NORMAL"})


@dataclass(frozen=True)
class CrewIn:
    """A field crew. ``lat/lng`` is where it is now (or home); times are minutes from plan start."""

    id: str
    lat: float
    lng: float
    home_lat: float
    home_lng: float
    skills: frozenset[str]
    shift_start: int
    shift_end: int
    can_tow_generator: bool = False
    end_at_home: bool = True
    region: str | None = None
    home_region: str | None = None  # set and different from a ticket's region: lent (mutual aid), costs extra
    # Meal break: ``break_minutes`` starting between ``break_start`` and ``break_end`` (0 minutes = none)
    break_start: int = 0
    break_end: int = 0
    break_minutes: int = 0

    @property
    def available_from(self) -> int:
        return max(0, self.shift_start)


@dataclass(frozen=True)
class TicketIn:
    """A job to visit. ``status`` EN_ROUTE/ON_SITE with ``assigned_crew_id`` means already in progress.

    For ON_SITE tickets ``service_minutes`` is the *remaining* service time.
    """

    id: str
    lat: float
    lng: float
    priority: str
    kind: str
    required_skills: frozenset[str] = frozenset()
    service_minutes: int = 60
    respond_by: int | None = None
    customers_affected: int = 1
    needs_generator: bool = False
    critical_load_kw: float | None = None
    area_type: str = "URBAN"
    status: str = "NEW"
    assigned_crew_id: str | None = None
    pinned: bool = False
    region: str | None = None
    earliest_start: int | None = None  # booked window / customer not home before: a crew arriving earlier waits
    crews_needed: int = 1  # > 1: that many crews must start together (synchronised start) or none comes
    # Precedence: this job starts at least ``depends_gap_minutes`` after ticket ``depends_on`` is finished
    # (isolation switching before the repair, tree trimming before line work), and is served only if that one
    # is; a ``depends_on`` not in the problem counts as done.
    depends_on: str | None = None
    depends_gap_minutes: int = 0

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS and self.assigned_crew_id is not None

    @property
    def fixed(self) -> bool:
        """In progress or pinned to a crew: a hard part of that crew's route start."""
        return self.assigned_crew_id is not None and (self.pinned or self.status in IN_PROGRESS)

    @property
    def loss_of_supply(self) -> bool:
        return self.kind.upper() in LOSS_OF_SUPPLY_KINDS and self.priority in LOSS_OF_SUPPLY_PRIORITIES


@dataclass(frozen=True)
class GeneratorIn:
    """A mobile generator parked at ``lat/lng``."""

    id: str
    lat: float
    lng: float
    capacity_kw: float
    available: bool = True


def _default_late() -> dict[str, float]:
    return {"EMERGENCY": 100000.0, "CRITICAL": 300.0, "HIGH": 50.0, "NORMAL": 10.0, "LOW": 1.0}


def _default_drop() -> dict[str, float]:
    return {"EMERGENCY": 1e8, "CRITICAL": 1e7, "HIGH": 1e4, "NORMAL": 1e3, "LOW": 300.0}


def _default_service() -> dict[str, int]:
    return {"FAULT_REPAIR": 60, "EMERGENCY": 90, "COMPLAINT": 30, "INQUIRY": 20, "REPORT": 30, "METER": 30}


@dataclass(frozen=True)
class OptimizerSettings:
    """Weights and limits of the dispatch objective (all costs are per minute unless stated).

    Objective (minimised, same formula in the OR-Tools model, :func:`evaluate` and the benches):

    * lateness: ``late_cost[priority] × customers_factor(customers)`` per minute of arrival after
      ``respond_by`` (a deadline already passed counts from now: the past cannot be optimised);
      ``customers_factor(c) = 1 + log10(max(c, 1))`` capped at ``customers_factor_cap``;
    * customers without supply: ``customer_minute_weight × customers × arrival`` for tickets with loss of
      supply (kinds FAULT_REPAIR/EMERGENCY with priority EMERGENCY..NORMAL); a dropped ticket costs
      ``customers × horizon`` instead (inside its drop penalty);
    * generator: a delivered generator is worth ``generator_value`` (its absence is penalised) and its
      hook-up costs ``generator_minute_cost × customers_factor`` per minute from plan start;
    * a dropped ticket costs ``drop_penalty[priority]`` plus what serving it at the horizon would cost
      (lateness and customer-minutes up to ``horizon``), so dropping is never cheaper than serving late;
      EMERGENCY (1e8) and CRITICAL (1e7) are effectively never dropped while a crew can reach them;
    * overtime: a crew may run ``overtime_minutes`` past ``shift_end`` at ``overtime_cost`` per minute. With
      ``overtime_only_for_emergencies`` (the default) that is a hard rule: only jobs whose priority is in
      ``overtime_priorities`` (EMERGENCY: domain.md, "an emergency may extend a shift") may run into overtime;
      any other job must be finished early enough for the crew to drive back to its depot (and still take a
      meal break it has not taken) by ``shift_end``, so a route ends after ``shift_end`` only when its last
      job is an emergency. Started work is exempt (it is happening anyway). Without the flag every job may
      use overtime, and only the cost keeps it for urgent work;
    * travel: ``travel_weight`` per driving minute (second-order);
    * stability: ``reassign_cost`` for every not-yet-started job planned on another crew than the one it is
      assigned to now (a re-plan moves few jobs; a crew that left the board costs nothing);
    * mutual aid: ``lending_cost`` per job done by a crew outside its home region (``CrewIn.home_region``);
    * fairness of overtime: each minute beyond ``fair_overtime_minutes`` of overtime on one crew costs
      ``fair_overtime_cost`` on top of ``overtime_cost``, so overtime is spread over crews (convex cost).
    """

    late_cost: dict[str, float] = field(default_factory=_default_late)
    drop_penalty: dict[str, float] = field(default_factory=_default_drop)
    customers_factor_cap: float = 5.0
    customer_minute_weight: float = 1.0
    travel_weight: float = 1.0
    overtime_minutes: int = 120
    overtime_cost: float = 200.0
    overtime_only_for_emergencies: bool = True
    overtime_priorities: frozenset[str] = frozenset({"EMERGENCY"})
    generator_value: float = 1e6
    generator_minute_cost: float = 20.0
    generator_hookup_minutes: int = 30
    generator_needs_skill: str | None = None  # e.g. "generator_connect" to also require the skill
    default_service_minutes: dict[str, int] = field(default_factory=_default_service)
    horizon_minutes: int | None = None  # for unserved customer-minutes; None = latest shift end + overtime
    respect_regions: bool = True  # ticket.region and crew.region both set and different => not allowed
    time_limit_s: float = 10.0
    workers: int = 2
    max_tickets_per_model: int = 250  # larger problems are decomposed into geographic clusters ...
    max_polish_tickets: int = 900  # ... then, up to this size, polished by one full-model search
    decomposed_share: float = 0.6  # share of the time limit for the cluster searches when polishing
    travel: TravelSettings = field(default_factory=TravelSettings)
    reassign_cost: float = 3000.0
    lending_cost: float = 240.0
    fair_overtime_minutes: int = 60
    fair_overtime_cost: float = 50.0  # a tie-breaker: customers first (300 cost 6 points of customer-minutes)
    meal_break_minutes: int = 30  # for shifts longer than meal_break_after_minutes (read from the roster) ...
    meal_break_after_minutes: int = 360
    meal_break_window: tuple[int, int] = (180, 300)  # ... starting this many minutes into the shift

    def customers_factor(self, customers: int) -> float:
        return min(self.customers_factor_cap, 1.0 + math.log10(max(int(customers), 1)))

    def may_use_overtime(self, t: TicketIn) -> bool:
        """May this ticket's job (or its generator hook-up) run past the crew's shift end?"""
        return not self.overtime_only_for_emergencies or t.priority in self.overtime_priorities

    def service_minutes(self, t: TicketIn) -> int:
        """The ticket's service time; non-positive values fall back to the default for its kind."""
        if t.service_minutes > 0:
            return int(t.service_minutes)
        return int(self.default_service_minutes.get(t.kind.upper(), 60))


@dataclass(frozen=True)
class AssignmentOut:
    """One ticket on one crew's route, with planned times (minutes from plan start) and a human reason."""

    ticket_id: str
    crew_id: str
    sequence: int
    planned_arrival: int
    planned_finish: int
    generator_id: str | None
    pinned: bool
    late_minutes: int
    reason: str


@dataclass(frozen=True)
class UnassignedOut:
    """A ticket with no crew in this plan and why."""

    ticket_id: str
    reason: str


@dataclass
class Plan:
    """A dispatch plan. ``stats['routes']`` holds each crew's visit keys in order (used for warm starts):
    ``T:<ticket>`` a ticket visit, ``P:<generator>:<ticket>`` generator pick-up, ``D:<generator>:<ticket>``
    generator hook-up at the site."""

    assignments: list[AssignmentOut]
    unassigned: list[UnassignedOut]
    solve_seconds: float
    late_tickets: int
    total_travel_minutes: float
    objective: float
    customer_minutes: float
    stats: dict[str, Any] = field(default_factory=dict)

    def crew_of(self, ticket_id: str) -> str | None:
        for a in self.assignments:
            if a.ticket_id == ticket_id:
                return a.crew_id
        return None

    def route(self, crew_id: str) -> list[str]:
        """Ticket ids of a crew in visiting order."""
        return [
            a.ticket_id for a in sorted(self.assignments, key=lambda a: a.sequence) if a.crew_id == crew_id
        ]
