"""Problem preparation, route simulation, the shared cost function, plan building, evaluation, checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dispatch.optimizer.model import (
    PRIORITIES,
    PRIORITY_RANK,
    CrewIn,
    GeneratorIn,
    OptimizerSettings,
    TicketIn,
)
from geo.travel import GeodesicProvider, TravelMatrixProvider, check_points, haversine_km_matrix

GENERATOR_PICKUP_MINUTES = 10
# What :meth:`Problem.eval_route` reports as a route's end when a job that may not run into overtime would end
# too late (see ``OptimizerSettings.overtime_only_for_emergencies``): beyond every hard end, so every
# ``end <= hard_end`` feasibility test of the heuristics refuses the route without knowing the rule.
OVER_SHIFT = 1 << 40

Visit = str  # "T:<ticket>", "A:<k>:<ticket>" (k-th assisting crew), "P:<generator>:<ticket>", "D:<generator>:<ticket>"


def ticket_key(tid: str) -> Visit:
    return f"T:{tid}"


def assist_keys(tid: str, crews_needed: int) -> list[Visit]:
    """The visits of the 2nd..n-th crew of a multi-crew job; the first crew's visit is ``ticket_key(tid)``."""
    return [f"A:{k}:{tid}" for k in range(1, crews_needed)]


def visit_ticket(key: Visit) -> str | None:
    """The ticket a ticket visit ("T:") or assisting visit ("A:") belongs to; None for generator visits."""
    if key[0] == "T":
        return key[2:]
    if key[0] == "A":
        return key.split(":", 2)[2]
    return None


def _check_inputs(
    crews: Sequence[CrewIn], tickets: Sequence[TicketIn], generators: Sequence[GeneratorIn]
) -> None:
    for kind, items in (("crew", crews), ("ticket", tickets), ("generator", generators)):
        seen: set[str] = set()
        for it in items:
            if it.id in seen:
                raise ValueError(f"duplicate {kind} id {it.id!r}")
            seen.add(it.id)
            coords = [it.lat, it.lng] + ([it.home_lat, it.home_lng] if isinstance(it, CrewIn) else [])
            for v in coords:
                if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ValueError(
                        f"{kind} {it.id!r} has no valid location (lat/lng must be finite numbers)"
                    )
    for t in tickets:
        if t.priority not in PRIORITY_RANK:
            raise ValueError(
                f"ticket {t.id!r}: unknown priority {t.priority!r}; expected one of {PRIORITIES}"
            )


@dataclass
class Problem:
    """Everything the solvers need, indexed: points are crew starts, crew homes, tickets, generators."""

    crews: list[CrewIn]
    tickets: list[TicketIn]
    generators: list[GeneratorIn]
    settings: OptimizerSettings
    minutes: np.ndarray  # travel minutes between points
    km: np.ndarray  # road-distance estimate between points (great circle × detour), for reasons
    crew_index: dict[str, int] = field(init=False)
    ticket_index: dict[str, int] = field(init=False)
    gen_index: dict[str, int] = field(init=False)
    qualified: list[list[int]] = field(init=False)  # per ticket: crew indices allowed to serve it
    fixed: list[list[str]] = field(init=False)  # per crew: ticket ids fixed at the start of its route
    hard_end: list[int] = field(init=False)
    gen_options: dict[str, list[str]] = field(init=False)  # ticket id -> generator ids that fit
    tow_crews: list[int] = field(init=False)
    horizon: int = field(init=False)
    unserviceable: dict[str, str] = field(init=False)  # ticket id -> reason (before any search)
    free_after_fixed: list[tuple[int, int]] = field(init=False)  # per crew: (time, point) after fixed work
    owner: dict[Visit, int] = field(init=False)  # not-yet-started ticket visit -> crew it is assigned to now
    lent: list[bool] = field(init=False)  # per crew: working outside its home region (mutual aid)
    has_windows: bool = field(init=False)  # some ticket has an earliest start (crews may have to wait)
    breaks: list[tuple[int, int, int] | None] = field(init=False)  # per crew: (earliest, latest start, minutes)
    multi: dict[str, int] = field(init=False)  # multi-crew ticket id -> crews needed (not fixed, serviceable)
    after: dict[str, tuple[str, int]] = field(init=False)  # ticket id -> (ticket it waits for, gap minutes)
    _rows: dict[int, list[int]] = field(init=False, repr=False)  # travel-matrix rows as lists (fast lookups)
    _vinfo: dict[Visit, tuple[int, int, int, int, int]] = field(init=False, repr=False)
    _overrun_ok: dict[Visit, bool] = field(init=False, repr=False)

    # ----- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        crews: Sequence[CrewIn],
        tickets: Sequence[TicketIn],
        generators: Sequence[GeneratorIn],
        settings: OptimizerSettings,
        provider: TravelMatrixProvider | None = None,
    ) -> Problem:
        _check_inputs(crews, tickets, generators)
        pts = (
            [(c.lat, c.lng) for c in crews]
            + [(c.home_lat, c.home_lng) for c in crews]
            + [(t.lat, t.lng) for t in tickets]
            + [(g.lat, g.lng) for g in generators]
        )
        areas = ["URBAN"] * (2 * len(crews)) + [t.area_type for t in tickets] + ["URBAN"] * len(generators)
        # crews and depots take the area type of the nearest ticket would be nicer; the slower-endpoint
        # rule already makes legs into/out of cities slow, and crew/generator yards are assumed urban.
        prov = provider or GeodesicProvider(settings.travel)
        if not pts:
            km, minutes = np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64)
        else:
            km = haversine_km_matrix(check_points(pts)) * settings.travel.detour_factor
            if isinstance(prov, GeodesicProvider) and prov.settings.detour_factor == settings.travel.detour_factor:
                minutes = prov.minutes_for(km, areas)  # from the same distances: an n×n matrix once, not twice
            else:
                minutes = prov.matrix(pts, areas)
        return cls(list(crews), list(tickets), list(generators), settings, np.asarray(minutes, np.int64), km)

    def __post_init__(self) -> None:
        s = self.settings
        self._rows = {}
        self._vinfo = {}
        self._overrun_ok = {}
        self.crew_index = {c.id: i for i, c in enumerate(self.crews)}
        self.ticket_index = {t.id: i for i, t in enumerate(self.tickets)}
        self.gen_index = {g.id: i for i, g in enumerate(self.generators)}
        self.has_windows = any(t.earliest_start is not None and t.earliest_start > 0 for t in self.tickets)
        # A meal break is modelled only while its whole window is still ahead: for a crew whose window opened
        # before the plan start we cannot be sure the break is still to take (a break taken is recorded only when
        # someone reports it, and such a crew comes without a window: dispatch.events.meal_break_taken), so it
        # is never forced onto the start of the route; the crew takes it in a gap as it sees fit.
        self.breaks = [
            (max(c.break_start, self.crew_ready(i)), c.break_end, c.break_minutes)
            if c.break_minutes > 0 and c.break_start >= 0 and c.break_end >= self.crew_ready(i) else None
            for i, c in enumerate(self.crews)
        ]
        self.has_windows = self.has_windows or any(b is not None for b in self.breaks)
        self.lent = [
            c.home_region is not None and c.region is not None and c.region != c.home_region for c in self.crews
        ]
        self.owner = {
            ticket_key(t.id): self.crew_index[t.assigned_crew_id]
            for t in self.tickets
            if t.assigned_crew_id in self.crew_index and not t.fixed
        }
        self.tow_crews = [
            i
            for i, c in enumerate(self.crews)
            if c.can_tow_generator
            and (s.generator_needs_skill is None or s.generator_needs_skill in c.skills)
        ]
        self.fixed = [[] for _ in self.crews]
        # in-progress first (ON_SITE before EN_ROUTE), then pinned ones in input order
        order = sorted(
            (t for t in self.tickets if t.fixed and t.assigned_crew_id in self.crew_index),
            key=lambda t: 0 if t.status == "ON_SITE" else 1 if t.status == "EN_ROUTE" else 2,
        )
        for t in order:
            self.fixed[self.crew_index[t.assigned_crew_id]].append(t.id)  # type: ignore[index]
        self.hard_end = []
        self.free_after_fixed = []
        for i, c in enumerate(self.crews):
            end = c.shift_end + s.overtime_minutes
            keys = [ticket_key(t) for t in self.fixed[i]]
            times = self.simulate(i, keys)
            end = max(end, times.end)  # fixed work always fits (it is happening anyway)
            self.hard_end.append(end)
            here = self.visit_point_service(keys[-1])[0] if keys else self.crew_point(i)
            self.free_after_fixed.append((times.finishes[-1] if keys else self.crew_ready(i), here))
        self.horizon = s.horizon_minutes or max([c.shift_end + s.overtime_minutes for c in self.crews] + [0])
        self.qualified = []
        self.unserviceable = {}
        for t in self.tickets:
            q = [i for i, c in enumerate(self.crews) if self._crew_may_serve(c, t)]
            if t.fixed and t.assigned_crew_id in self.crew_index:
                q = [self.crew_index[t.assigned_crew_id]]  # type: ignore[index]
            self.qualified.append(q)
            if not (t.fixed and t.assigned_crew_id in self.crew_index):
                reason = self._unserviceable_reason(t, q)
                if reason:
                    self.unserviceable[t.id] = reason
        self.multi = {
            t.id: t.crews_needed for t in self.tickets
            if t.crews_needed > 1 and not self.is_fixed(t) and t.id not in self.unserviceable
        }
        self.after = {
            t.id: (t.depends_on, max(0, t.depends_gap_minutes)) for t in self.tickets
            if t.depends_on in self.ticket_index and t.depends_on != t.id and not self.is_fixed(t)
        }
        for tid in self._dependency_order():  # what waits for an unserviceable job cannot be served either
            dep = self.after.get(tid, ("", 0))[0]
            if dep in self.unserviceable and tid not in self.unserviceable:
                self.unserviceable[tid] = f"waits for ticket {dep}, which cannot be served ({self.unserviceable[dep]})"
        self.multi = {tid: n for tid, n in self.multi.items() if tid not in self.unserviceable}
        # the first crew there waits for the others; a job waits for the one it depends on
        self.has_windows = self.has_windows or bool(self.multi) or bool(self.after)
        self.gen_options = {}
        for t in self.tickets:
            if t.needs_generator:
                load = t.critical_load_kw or 0.0
                self.gen_options[t.id] = [
                    g.id for g in self.generators if g.available and g.capacity_kw >= load
                ]

    def _dependency_order(self) -> list[str]:
        """Tickets with a dependency, each after the one it depends on (a cycle is cut where it closes)."""
        out: list[str] = []
        seen: set[str] = set()
        for tid in self.after:
            chain = []
            cur: str | None = tid
            while cur is not None and cur not in seen:
                seen.add(cur)
                chain.append(cur)
                cur = self.after[cur][0] if cur in self.after else None
            out += [x for x in reversed(chain) if x in self.after]
        return out

    def _crew_may_serve(self, c: CrewIn, t: TicketIn) -> bool:
        if not t.required_skills <= c.skills:
            return False
        return not (self.settings.respect_regions and t.region and c.region and t.region != c.region)

    def _unserviceable_reason(self, t: TicketIn, q: list[int]) -> str | None:
        if not self.crews:
            return "no crews"
        if not q:
            holders = [c for c in self.crews if t.required_skills <= c.skills]
            if not holders:
                return f"no crew holds skills {'+'.join(sorted(t.required_skills))}"
            return f"no qualified crew in region {t.region}"
        if t.crews_needed > 1 and not t.fixed and len(q) < t.crews_needed:
            return f"needs {t.crews_needed} crews at once; only {len(q)} qualified crew(s) on the board"
        overtime = self.settings.may_use_overtime(t)
        in_shift = [
            i
            for i in q
            if self.crews[i].shift_end + self.settings.overtime_minutes > self.crews[i].available_from
        ]
        if not in_shift:
            return "no qualified crew in shift"
        ti = self.ticket_point(self.ticket_index[t.id])
        svc = self.settings.service_minutes(t)
        in_overtime = False
        for i in in_shift:
            c = self.crews[i]
            start = self.crew_ready(i)
            back = self.minutes[ti, self.end_point(i)] if c.end_at_home else 0
            arrive = max(start + self.minutes[self.crew_point(i), ti], t.earliest_start or 0)
            if arrive + svc + back <= (self.hard_end[i] if overtime else self.shift_limit(i)):
                return None
            in_overtime = in_overtime or arrive + svc + back <= self.hard_end[i]
        if in_overtime:
            return f"{self.not_in_overtime(t)} for every qualified crew"
        if t.earliest_start is not None and t.earliest_start > 0:
            return f"window opens at +{t.earliest_start} min, after every qualified crew's shift"
        return "beyond reach within shift of every qualified crew"

    def not_in_overtime(self, t: TicketIn) -> str:
        """The words for the overtime rule blocking ``t`` (see ``OptimizerSettings.overtime_only_for_emergencies``)."""
        allowed = "/".join(p for p in PRIORITIES if p in self.settings.overtime_priorities) or "no"
        return (f"would end after shift end (with the drive back to the depot) and is not an emergency: "
                f"only {allowed} work may run into overtime, this is {t.priority}")

    # ----- indexing -------------------------------------------------------------------------------
    def is_fixed(self, t: TicketIn) -> bool:
        """In progress or pinned on a crew of this problem (a fix to an unknown crew is ignored)."""
        return t.fixed and t.assigned_crew_id in self.crew_index

    def crew_point(self, c: int) -> int:
        return c

    def end_point(self, c: int) -> int:
        return len(self.crews) + c

    def ticket_point(self, t: int) -> int:
        return 2 * len(self.crews) + t

    def gen_point(self, g: int) -> int:
        return 2 * len(self.crews) + len(self.tickets) + g

    def crew_ready(self, c: int) -> int:
        """When the crew can start moving after its fixed work is *not* counted: max(0, shift_start)."""
        return self.crews[c].available_from

    def earliest(self, key: Visit) -> int:
        """Earliest start of a visit (0 = none): a ticket's booked window or retry time."""
        tid = visit_ticket(key)
        if tid is None:
            return 0
        t = self.tickets[self.ticket_index[tid]]
        return max(0, t.earliest_start or 0)

    def extra_cost(self, c: int, key: Visit) -> int:
        """Per crew-and-job costs: taking a job assigned to another crew (stability) and lending."""
        if key[0] != "T":
            return 0
        cost = 0
        own = self.owner.get(key)
        if own is not None and own != c:
            cost += round(self.settings.reassign_cost)
        if self.crews[c].home_region is not None:
            t = self.tickets[self.ticket_index[key[2:]]]
            where = t.region or self.crews[c].region
            if where is not None and where != self.crews[c].home_region:
                cost += round(self.settings.lending_cost)
        return cost

    def shift_limit(self, c: int) -> int:
        """Latest return to the depot after a job that may not run into overtime: the shift end, less a meal
        break still to be taken (it is taken before heading home at the latest)."""
        brk = self.breaks[c]
        return self.crews[c].shift_end - (brk[2] if brk is not None else 0)

    def may_overrun(self, key: Visit) -> bool:
        """May this visit end after its crew's shift end? Emergencies (and their generator and assisting visits)
        may, started or pinned work is exempt (it is happening anyway), other work may not when
        ``overtime_only_for_emergencies`` is set."""
        ok = self._overrun_ok.get(key)
        if ok is None:
            kind, _, rest = key.partition(":")
            tid = rest if kind == "T" else rest.partition(":")[2]
            t = self.tickets[self.ticket_index[tid]]
            ok = self.settings.may_use_overtime(t) or (kind == "T" and self.is_fixed(t))
            self._overrun_ok[key] = ok
        return ok

    def fair_coef(self) -> int:
        return round(self.settings.fair_overtime_cost)

    def route_end_cost(self, c: int, end: int) -> int:
        """Overtime and overtime-fairness cost of a route ending at ``end``."""
        crew = self.crews[c]
        over = max(0, end - crew.shift_end)
        return self.overtime_coef() * over + self.fair_coef() * max(0, over - self.settings.fair_overtime_minutes)

    def visit_point_service(self, key: Visit) -> tuple[int, int]:
        kind, _, rest = key.partition(":")
        if kind == "T":
            ti = self.ticket_index[rest]
            return self.ticket_point(ti), self.settings.service_minutes(self.tickets[ti])
        gid, _, tid = rest.partition(":")
        if kind == "A":
            ti = self.ticket_index[tid]
            return self.ticket_point(ti), self.settings.service_minutes(self.tickets[ti])
        if kind == "P":
            return self.gen_point(self.gen_index[gid]), GENERATOR_PICKUP_MINUTES
        return self.ticket_point(self.ticket_index[tid]), self.settings.generator_hookup_minutes

    # ----- simulation and costs --------------------------------------------------------------------
    def simulate(self, c: int, keys: Sequence[Visit], sync: dict[str, int] | None = None) -> RouteTimes:
        """Arrival/finish per visit (no waiting: crews leave as soon as a job is done) and route end.
        ``sync``: per multi-crew ticket the synchronised start (see :meth:`sync_starts`); a crew there earlier
        waits for the others."""
        crew = self.crews[c]
        t = self.crew_ready(c)
        prev = self.crew_point(c)
        arrivals: list[int] = []
        finishes: list[int] = []
        travel = 0
        brk = self.breaks[c]
        break_at: int | None = None
        for k in keys:
            p, svc = self.visit_point_service(k)
            leg = int(self.minutes[prev, p])
            if brk is not None and break_at is None:
                break_at = self._break_before(brk, t, leg, svc, self.earliest(k))
                if break_at is not None:
                    t = break_at + brk[2]
            travel += leg
            t += leg
            if self.has_windows:
                t = max(t, self.earliest(k))
            if sync and k[0] in "TA":
                t = max(t, sync.get(visit_ticket(k) or "", 0))
            arrivals.append(t)
            t += svc
            finishes.append(t)
            prev = p
        if brk is not None and break_at is None and keys and t >= brk[0]:
            break_at = t  # working into the break window: the break before heading home
            t += brk[2]
        if crew.end_at_home:
            leg = int(self.minutes[prev, self.end_point(c)])
            travel += leg
            t += leg
        return RouteTimes(arrivals, finishes, t, travel, break_at)

    @staticmethod
    def _break_before(brk: tuple[int, int, int], t: int, leg: int, svc: int, earliest: int) -> int | None:
        """When a crew free at ``t`` takes its meal break before driving ``leg`` to a job of ``svc`` minutes:
        as late as the window allows, i.e. only when that job would end after the window's latest start, then
        at once (or at the window's opening if it is not open yet); else not yet (None). A late break delays
        fewer jobs than an early one. A window already missed is taken at once (never silently dropped)."""
        start, end, _ = brk
        if max(t + leg, earliest) + svc > end:
            return max(t, start)
        return None

    def visit_cost(self, key: Visit, arrival: int) -> int:
        """Objective contribution of performing a visit at ``arrival`` (shared with the OR-Tools model)."""
        kind, _, rest = key.partition(":")
        if kind == "T":
            t = self.tickets[self.ticket_index[rest]]
            cost = self.cm_coef(t) * arrival
            due = max(0, t.respond_by) if t.respond_by is not None else None
            if due is not None and arrival > due:
                cost += self.late_coef(t) * (arrival - due)
            return cost
        if kind == "D":
            t = self.tickets[self.ticket_index[rest.partition(":")[2]]]
            return self.gen_time_coef(t) * arrival
        return 0

    def earliest_arrival(self, tid: str) -> int | None:
        """Soonest any qualified crew could be on site (after its fixed work), ignoring all other tickets."""
        ti = self.ticket_index[tid]
        best: int | None = None
        for c in self.qualified[ti]:
            keys = [ticket_key(x) for x in self.fixed[c] if x != tid]
            rt = self.simulate(c, keys)
            t0 = rt.finishes[-1] if rt.finishes else self.crew_ready(c)
            here = self.visit_point_service(keys[-1])[0] if keys else self.crew_point(c)
            a = t0 + int(self.minutes[here, self.ticket_point(ti)])
            best = a if best is None else min(best, a)
        return best

    def late_coef(self, t: TicketIn) -> int:
        s = self.settings
        return max(1, round(s.late_cost.get(t.priority, 1.0) * s.customers_factor(t.customers_affected)))

    def cm_coef(self, t: TicketIn) -> int:
        return round(self.settings.customer_minute_weight * t.customers_affected) if t.loss_of_supply else 0

    def gen_time_coef(self, t: TicketIn) -> int:
        s = self.settings
        return round(s.generator_minute_cost * s.customers_factor(t.customers_affected))

    def drop_penalty(self, t: TicketIn) -> int:
        """Base penalty by priority plus the cost of serving the ticket at the horizon (plus the stability cost
        when it is taken off the crew it is assigned to)."""
        due = max(0, t.respond_by) if t.respond_by is not None else None
        late = self.late_coef(t) * max(0, self.horizon - due) if due is not None else 0
        moved = round(self.settings.reassign_cost) if ticket_key(t.id) in self.owner else 0  # taken off its crew
        return round(self.settings.drop_penalty.get(t.priority, 1e3)) + self.cm_coef(t) * self.horizon + late + moved

    def overtime_coef(self) -> int:
        return round(self.settings.overtime_cost)

    def travel_cost(self, minutes: int) -> int:
        return round(self.settings.travel_weight * minutes)

    def row(self, point: int) -> list[int]:
        r = self._rows.get(point)
        if r is None:
            r = self.minutes[point].tolist()
            self._rows[point] = r
        return r

    def vinfo(self, key: Visit) -> tuple[int, int, int, int, int]:
        """(point, service, cost per minute from start, cost per minute late, deadline) of a visit; see
        :meth:`earliest` for its earliest start."""
        v = self._vinfo.get(key)
        if v is None:
            pt, svc = self.visit_point_service(key)
            kind, _, rest = key.partition(":")
            if kind == "T":
                t = self.tickets[self.ticket_index[rest]]
                due = max(0, t.respond_by) if t.respond_by is not None else 1 << 40
                v = (pt, svc, self.cm_coef(t), self.late_coef(t), due)
            elif kind == "D":
                t = self.tickets[self.ticket_index[rest.partition(":")[2]]]
                v = (pt, svc, self.gen_time_coef(t), 0, 1 << 40)
            else:
                v = (pt, svc, 0, 0, 1 << 40)
            self._vinfo[key] = v
        return v

    def eval_route(self, c: int, keys: Sequence[Visit], sync: dict[str, int] | None = None) -> tuple[int, int]:
        """(cost, end time) of a route in one pass: the hot path of insertion heuristics. ``sync`` as in
        :meth:`simulate`; without it a multi-crew job is timed as if this crew alone decided. The end is
        ``OVER_SHIFT`` when a job that may not run into overtime (:meth:`may_overrun`) ends too late."""
        t = self.crew_ready(c)
        prev = self.crew_point(c)
        cost = 0
        travel = 0
        windows = self.has_windows
        extra = bool(self.owner) or self.crews[c].home_region is not None
        brk = self.breaks[c]
        crew = self.crews[c]
        limited = self.settings.overtime_only_for_emergencies
        over_shift = False
        for k in keys:
            pt, svc, cm, late, due = self.vinfo(k)
            leg = self.row(prev)[pt]
            if brk is not None:
                at = self._break_before(brk, t, leg, svc, self.earliest(k))
                if at is not None:
                    t = at + brk[2]
                    brk = None
            travel += leg
            t += leg
            if windows:
                t = max(t, self.earliest(k))
            if sync and k[0] in "TA":
                t = max(t, sync.get(visit_ticket(k) or "", 0))
            if extra:
                cost += self.extra_cost(c, k)
            cost += cm * t
            if t > due:
                cost += late * (t - due)
            t += svc
            prev = pt
            if limited and not over_shift and not self.may_overrun(k):
                # no overtime for this job: done in time to take a pending break and drive home by shift end
                back = self.row(pt)[self.end_point(c)] if crew.end_at_home else 0
                over_shift = t + back + (brk[2] if brk is not None else 0) > crew.shift_end
        if brk is not None and keys and t >= brk[0]:
            t += brk[2]
        if crew.end_at_home:
            leg = self.row(prev)[self.end_point(c)]
            travel += leg
            t += leg
        cost += self.travel_cost(travel) + self.route_end_cost(c, t)
        return cost, OVER_SHIFT if over_shift else t

    def route_cost(self, c: int, keys: Sequence[Visit]) -> int:
        return self.eval_route(c, keys)[0]

    def route_feasible(self, c: int, keys: Sequence[Visit]) -> bool:
        return self.eval_route(c, keys)[1] <= self.hard_end[c]

    def sync_starts(self, routes: dict[str, list[Visit]]) -> dict[str, int]:
        """Synchronised start per multi-crew ticket served in ``routes``: the latest arrival of its crews, found by
        re-timing the routes with the waits until nothing changes (a crew waiting delays its later jobs, which
        may be multi-crew jobs too)."""
        if not self.multi and not self.after:
            return {}
        sync: dict[str, int] = {}
        needed = self.needed_by
        for _ in range(2 * (len(self.multi) + len(self.after)) + 2):
            arrivals: dict[str, list[int]] = {}
            for cid, keys in routes.items():
                rt = self.simulate(self.crew_index[cid], keys, sync)
                for k, a in zip(keys, rt.arrivals, strict=True):
                    tid = visit_ticket(k)
                    if tid in self.multi or tid in self.after or tid in needed:
                        arrivals.setdefault(tid or "", []).append(a)
            changed = False
            for tid, times in arrivals.items():
                start = max(times)
                if tid in self.after and self.after[tid][0] in arrivals:
                    dep, gap = self.after[tid]
                    svc = self.settings.service_minutes(self.tickets[self.ticket_index[dep]])
                    start = max(start, max(arrivals[dep]) + svc + gap)
                if min(times) < start:
                    sync[tid] = start
                    changed = True
            if not changed:
                break
        return sync

    @property
    def needed_by(self) -> set[str]:
        """Tickets another ticket waits for."""
        return {dep for dep, _ in self.after.values()}

    def unmet(self, routes: dict[str, list[Visit]]) -> set[str]:
        """Tickets in ``routes`` that cannot count as served: a multi-crew job without all its crews, or a job whose
        predecessor is not served (directly or down a chain)."""
        present = {visit_ticket(k) for keys in routes.values() for k in keys} - {None}
        bad = {tid for tid in self.multi if tid in present} - self.complete_multi(routes)
        for tid in self._dependency_order():
            if tid in present and (self.after[tid][0] not in present or self.after[tid][0] in bad):
                bad.add(tid)
        return bad  # type: ignore[return-value]

    def complete_multi(self, routes: dict[str, list[Visit]]) -> set[str]:
        """Multi-crew tickets whose every crew visit is in ``routes``, each on a different crew."""
        crews_of: dict[str, set[str]] = {}
        visits: dict[str, int] = {}
        for cid, keys in routes.items():
            for k in keys:
                tid = visit_ticket(k)
                if tid in self.multi:
                    crews_of.setdefault(tid, set()).add(cid)
                    visits[tid] = visits.get(tid, 0) + 1
        return {tid for tid, n in self.multi.items() if visits.get(tid) == n and len(crews_of.get(tid, ())) == n}

    def objective(self, routes: dict[str, list[Visit]]) -> int:
        """The full objective of a set of routes (same formula as the OR-Tools model). A multi-crew job counts
        as served only with all its crews (each on its own route), timed at their synchronised start."""
        total = 0
        served: set[str] = set()
        hooked: set[str] = set()
        sync = self.sync_starts(routes)
        unmet = self.unmet(routes) if self.multi or self.after else set()
        for cid, keys in routes.items():
            c = self.crew_index[cid]
            total += self.eval_route(c, keys, sync)[0]
            for k in keys:
                if k.startswith("T:") and k[2:] not in unmet:
                    served.add(k[2:])
                elif k.startswith("D:"):
                    hooked.add(k.split(":", 2)[2])
        for t in self.tickets:
            if t.id not in served:
                total += self.drop_penalty(t)
            if t.needs_generator and t.id not in hooked:
                total += round(self.settings.generator_value)
        return total


@dataclass
class RouteTimes:
    arrivals: list[int]
    finishes: list[int]
    end: int
    travel: int
    break_at: int | None = None  # start of the meal break, if the route has one


def sanitize_routes(
    p: Problem, initial: dict[str, list[Visit]], allowed: set[Visit] | None = None
) -> dict[str, list[Visit]]:
    """Make earlier routes valid for this problem: fixed prefix first, then the earlier visits that are
    still known, qualified and unique, generator pick-up/hook-up only in complete pairs, truncated to fit
    the shift. Used for warm starts and as the fallback when a warm search fails."""
    out: dict[str, list[Visit]] = {}
    used: set[Visit] = set()
    for c, crew in enumerate(p.crews):
        keys = [ticket_key(t) for t in p.fixed[c]]
        fixed = set(keys)
        for k in initial.get(crew.id, []):
            if k in fixed or k in used or (allowed is not None and k not in allowed):
                continue
            kind, _, rest = k.partition(":")
            if kind in "TA":
                rest = visit_ticket(k) or ""
                ti = p.ticket_index.get(rest)
                if (
                    ti is None
                    or c not in p.qualified[ti]
                    or p.is_fixed(p.tickets[ti])
                    or rest in p.unserviceable
                    or (kind == "A" and rest not in p.multi)
                ):
                    continue
            else:
                gid, _, tid = rest.partition(":")
                if c not in p.tow_crews or gid not in p.gen_options.get(tid, []):
                    continue
            keys.append(k)
        keys = complete_pairs(keys)
        while len(keys) > len(fixed) and not p.route_feasible(c, keys):
            keys = complete_pairs(keys[:-1])
        used.update(keys)
        out[crew.id] = keys
    # a generator may appear only once overall
    seen_gen: set[str] = set()
    for cid, keys in out.items():
        kept = []
        for k in keys:
            if k[0] == "P":
                gid = k.split(":")[1]
                if gid in seen_gen:
                    continue
                seen_gen.add(gid)
            kept.append(k)
        out[cid] = complete_pairs(kept)
    return strip_incomplete(p, out)


def strip_incomplete(p: Problem, routes: dict[str, list[Visit]]) -> dict[str, list[Visit]]:
    """Take multi-crew jobs that lack a crew (or have two visits on one crew) and jobs whose predecessor is not
    served off every route, in place."""
    if not p.multi and not p.after:
        return routes
    unmet = p.unmet(routes)
    for cid, keys in routes.items():
        routes[cid] = [k for k in keys if visit_ticket(k) not in unmet]
    return routes


def complete_pairs(keys: list[Visit]) -> list[Visit]:
    """Keep generator visits only where the pick-up precedes its hook-up on the same route and no other
    generator is picked up in between (a crew tows one generator at a time)."""
    ok: set[str] = set()
    towing: str | None = None
    for k in keys:
        if k[0] == "P":
            towing = k[2:] if towing is None else ""  # "" marks a second pick-up while towing
        elif k[0] == "D":
            if towing == k[2:]:
                ok.add(k[2:])
            towing = None if towing in (k[2:], "") else towing
    return [k for k in keys if k[0] in "TA" or k[2:] in ok]
