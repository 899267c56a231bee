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
from geo.travel import GeodesicProvider, TravelMatrixProvider, haversine_km_matrix

GENERATOR_PICKUP_MINUTES = 10

Visit = str  # "T:<ticket>", "P:<generator>:<ticket>", "D:<generator>:<ticket>"


def ticket_key(tid: str) -> Visit:
    return f"T:{tid}"


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
    _rows: dict[int, list[int]] = field(init=False, repr=False)  # travel-matrix rows as lists (fast lookups)
    _vinfo: dict[Visit, tuple[int, int, int, int, int]] = field(init=False, repr=False)

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
        minutes = prov.matrix(pts, areas) if pts else np.zeros((0, 0), dtype=np.int64)
        km = (
            haversine_km_matrix(np.asarray(pts, dtype=float)) * settings.travel.detour_factor
            if pts
            else np.zeros((0, 0))
        )
        return cls(list(crews), list(tickets), list(generators), settings, np.asarray(minutes, np.int64), km)

    def __post_init__(self) -> None:
        s = self.settings
        self._rows = {}
        self._vinfo = {}
        self.crew_index = {c.id: i for i, c in enumerate(self.crews)}
        self.ticket_index = {t.id: i for i, t in enumerate(self.tickets)}
        self.gen_index = {g.id: i for i, g in enumerate(self.generators)}
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
        self.gen_options = {}
        for t in self.tickets:
            if t.needs_generator:
                load = t.critical_load_kw or 0.0
                self.gen_options[t.id] = [
                    g.id for g in self.generators if g.available and g.capacity_kw >= load
                ]

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
        in_shift = [
            i
            for i in q
            if self.crews[i].shift_end + self.settings.overtime_minutes > self.crews[i].available_from
        ]
        if not in_shift:
            return "no qualified crew in shift"
        ti = self.ticket_point(self.ticket_index[t.id])
        svc = self.settings.service_minutes(t)
        for i in in_shift:
            c = self.crews[i]
            start = self.crew_ready(i)
            back = self.minutes[ti, self.end_point(i)] if c.end_at_home else 0
            if start + self.minutes[self.crew_point(i), ti] + svc + back <= self.hard_end[i]:
                return None
        return "beyond reach within shift of every qualified crew"

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

    def visit_point_service(self, key: Visit) -> tuple[int, int]:
        kind, _, rest = key.partition(":")
        if kind == "T":
            ti = self.ticket_index[rest]
            return self.ticket_point(ti), self.settings.service_minutes(self.tickets[ti])
        gid, _, tid = rest.partition(":")
        if kind == "P":
            return self.gen_point(self.gen_index[gid]), GENERATOR_PICKUP_MINUTES
        return self.ticket_point(self.ticket_index[tid]), self.settings.generator_hookup_minutes

    # ----- simulation and costs --------------------------------------------------------------------
    def simulate(self, c: int, keys: Sequence[Visit]) -> RouteTimes:
        """Arrival/finish per visit (no waiting: crews leave as soon as a job is done) and route end."""
        crew = self.crews[c]
        t = self.crew_ready(c)
        prev = self.crew_point(c)
        arrivals: list[int] = []
        finishes: list[int] = []
        travel = 0
        for k in keys:
            p, svc = self.visit_point_service(k)
            leg = int(self.minutes[prev, p])
            travel += leg
            t += leg
            arrivals.append(t)
            t += svc
            finishes.append(t)
            prev = p
        if crew.end_at_home:
            leg = int(self.minutes[prev, self.end_point(c)])
            travel += leg
            t += leg
        return RouteTimes(arrivals, finishes, t, travel)

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
        """Base penalty by priority plus the cost of serving the ticket at the horizon."""
        due = max(0, t.respond_by) if t.respond_by is not None else None
        late = self.late_coef(t) * max(0, self.horizon - due) if due is not None else 0
        return round(self.settings.drop_penalty.get(t.priority, 1e3)) + self.cm_coef(t) * self.horizon + late

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
        """(point, service, cost per minute from start, cost per minute late, deadline) of a visit."""
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

    def eval_route(self, c: int, keys: Sequence[Visit]) -> tuple[int, int]:
        """(cost, end time) of a route in one pass: the hot path of insertion heuristics."""
        t = self.crew_ready(c)
        prev = self.crew_point(c)
        cost = 0
        travel = 0
        for k in keys:
            pt, svc, cm, late, due = self.vinfo(k)
            leg = self.row(prev)[pt]
            travel += leg
            t += leg
            cost += cm * t
            if t > due:
                cost += late * (t - due)
            t += svc
            prev = pt
        crew = self.crews[c]
        if crew.end_at_home:
            leg = self.row(prev)[self.end_point(c)]
            travel += leg
            t += leg
        cost += self.travel_cost(travel) + self.overtime_coef() * max(0, t - crew.shift_end)
        return cost, t

    def route_cost(self, c: int, keys: Sequence[Visit]) -> int:
        return self.eval_route(c, keys)[0]

    def route_feasible(self, c: int, keys: Sequence[Visit]) -> bool:
        return self.eval_route(c, keys)[1] <= self.hard_end[c]

    def objective(self, routes: dict[str, list[Visit]]) -> int:
        """The full objective of a set of routes (same formula as the OR-Tools model)."""
        total = 0
        served: set[str] = set()
        hooked: set[str] = set()
        for cid, keys in routes.items():
            c = self.crew_index[cid]
            total += self.route_cost(c, keys)
            for k in keys:
                if k.startswith("T:"):
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
            if kind == "T":
                ti = p.ticket_index.get(rest)
                if (
                    ti is None
                    or c not in p.qualified[ti]
                    or p.is_fixed(p.tickets[ti])
                    or rest in p.unserviceable
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
    return out


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
    return [k for k in keys if k[0] == "T" or k[2:] in ok]
