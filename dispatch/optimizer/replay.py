"""Storm replay on plain data: hours of events (new tickets, overruns, crews dropping out, mutual-aid crews
arriving) against one dispatch policy, with crews carrying out the plan in between.

Time is absolute minutes from the start of the replay. Between events crews follow their current plan (its
times are the truth: an overrun is the moment a job on site is found to need longer). At every event the
board is read as a dispatcher would see it — jobs done, on site (remaining time), crews driving to a job,
jobs given out but not started, the pool — and the policy answers with a new plan:

* ``greedy``: the dispatcher by hand; new and orphaned tickets go to the qualified crew that can be there
  first after its current route; nothing given out is ever moved;
* ``once``: optimised once at the start, afterwards handled like ``greedy`` (never re-planned);
* ``replan``: gridcrew; every event re-plans from the current plan (emergencies: insertion with
  pre-emption first), with the stability cost for moving jobs.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatch.optimizer import replan as rp
from dispatch.optimizer.core import Problem, ticket_key
from dispatch.optimizer.greedy import greedy_routes
from dispatch.optimizer.model import CrewIn, OptimizerSettings, Plan, TicketIn
from dispatch.optimizer.plan import build_plan
from dispatch.optimizer.scenario import Scenario, storm_day
from dispatch.optimizer.solve import solve

POLICIES = ("greedy", "once", "replan")
URGENT = frozenset({"EMERGENCY", "CRITICAL"})


@dataclass(frozen=True)
class StormEvent:
    """``kind``: ``tickets`` (new reports), ``overrun`` (the crew's job on site needs ``minutes`` more),
    ``unavailable`` (crew ``crew_id`` drops out) or ``crews`` (crews join)."""

    at: int
    kind: str
    tickets: tuple[TicketIn, ...] = ()
    crew_id: str | None = None
    minutes: int = 0
    crews: tuple[CrewIn, ...] = ()


@dataclass
class ReplayResult:
    policy: str
    customer_minutes: float
    late_urgent: int
    late_by_priority: dict[str, int]
    overtime_minutes: int
    moved_per_replan: list[int]
    replans: int
    served: int
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def median_moved(self) -> float:
        return float(statistics.median(self.moved_per_replan)) if self.moved_per_replan else 0.0


def storm_replay_events(seed: int, crews: Sequence[CrewIn], hours: int = 8, new_tickets: int = 120,
                        overruns: int = 12, unavailable: int = 2, aid_crews: int = 5,
                        batch_minutes: int = 15) -> list[StormEvent]:
    """A seeded event stream: ``new_tickets`` reports spread over the hours (batched every
    ``batch_minutes``, an EMERGENCY/CRITICAL one as its own event at once), overruns of 30–120 min on random
    crews, crews dropping out, and ``aid_crews`` mutual-aid crews (home region ``aid``) arriving at hour 3."""
    rng = random.Random(seed)
    end = hours * 60
    fresh = storm_day(seed + 1000, n_crews=aid_crews or 1, n_tickets=new_tickets, n_generators=0,
                      n_generator_sites=0, id_prefix="N")
    events: list[StormEvent] = []
    batches: dict[int, list[TicketIn]] = {}
    for t in fresh.tickets:
        at = rng.randrange(5, end - 30)
        reported = max(0, at)
        sla = (t.respond_by - min(0, t.respond_by or 0)) if t.respond_by is not None else None
        t = dataclasses.replace(t, respond_by=None if sla is None else reported + max(30, sla))
        if t.priority in URGENT:
            events.append(StormEvent(at, "tickets", (t,)))
        else:
            batches.setdefault((at // batch_minutes + 1) * batch_minutes, []).append(t)
    events += [StormEvent(at, "tickets", tuple(ts)) for at, ts in batches.items() if at < end]
    for _ in range(overruns):
        events.append(StormEvent(rng.randrange(30, end - 30), "overrun", crew_id=rng.choice(crews).id,
                                 minutes=rng.choice((30, 45, 60, 90, 120))))
    for cid in rng.sample([c.id for c in crews], k=min(unavailable, len(crews))):
        events.append(StormEvent(rng.randrange(60, end - 60), "unavailable", crew_id=cid))
    if aid_crews:
        arrive = min(180, end // 2)
        aid = tuple(dataclasses.replace(c, id=f"AID{i}", shift_start=arrive, shift_end=arrive + 600,
                                        home_region="aid", region="storm")
                    for i, c in enumerate(fresh.crews[:aid_crews]))
        events.append(StormEvent(arrive, "crews", crews=aid))
    events.sort(key=lambda e: (e.at, e.kind))
    return events


@dataclass
class _Board:
    """What has happened so far under one policy."""

    crews: dict[str, CrewIn]  # as they were read for the current plan (position, ready time)
    tickets: dict[str, TicketIn]  # reported and not yet done
    known: dict[str, TicketIn]  # every ticket reported
    reported: dict[str, int]
    plan: Plan | None = None
    reached: dict[str, int] = field(default_factory=dict)  # ticket -> arrival of its crew
    finished: dict[str, int] = field(default_factory=dict)  # crew -> finish of its last job started
    gone: set[str] = field(default_factory=set)


def _advance(board: _Board, now: int) -> tuple[list[CrewIn], list[TicketIn]]:
    """Carry out the plan up to ``now``; return crews and open tickets as the board reads at ``now``."""
    plan = board.plan
    by_crew: dict[str, list[Any]] = {}
    if plan is not None:
        for a in sorted(plan.assignments, key=lambda a: (a.crew_id, a.sequence)):
            by_crew.setdefault(a.crew_id, []).append(a)
    crews_out: list[CrewIn] = []
    status: dict[str, tuple[str, str, int]] = {}  # ticket -> (status, crew, remaining service)
    for cid, crew in board.crews.items():
        if cid in board.gone:
            continue
        lat, lng, ready = crew.lat, crew.lng, crew.shift_start
        busy = False
        for a in by_crew.get(cid, []):
            t = board.tickets.get(a.ticket_id)
            if t is None:
                continue
            if a.planned_arrival <= now:
                board.reached.setdefault(a.ticket_id, a.planned_arrival)
                board.finished[cid] = max(board.finished.get(cid, a.planned_finish), a.planned_finish)
            if a.planned_finish <= now:  # done
                lat, lng, ready = t.lat, t.lng, a.planned_finish
                del board.tickets[a.ticket_id]
                continue
            if a.planned_arrival <= now:  # on site
                status[a.ticket_id] = ("ON_SITE", cid, a.planned_finish - now)
                lat, lng, ready, busy = t.lat, t.lng, now, True
            elif ready <= now:  # left for it already
                status[a.ticket_id] = ("EN_ROUTE", cid, 0)
                busy = True
            break
        if not busy:
            ready = max(ready, now)
        crews_out.append(dataclasses.replace(crew, lat=lat, lng=lng, shift_start=ready))
    owner = {a.ticket_id: a.crew_id for a in plan.assignments} if plan is not None else {}
    tickets_out = []
    for tid, t in board.tickets.items():
        st = status.get(tid)
        if st is not None and st[0] == "ON_SITE":
            t = dataclasses.replace(t, status="ON_SITE", assigned_crew_id=st[1], service_minutes=max(1, st[2]))
        elif st is not None:
            t = dataclasses.replace(t, status="EN_ROUTE", assigned_crew_id=st[1])
        else:
            crew_id = owner.get(tid)
            mine = crew_id is not None and crew_id not in board.gone
            t = dataclasses.replace(t, status="ASSIGNED" if mine else "NEW", assigned_crew_id=crew_id if mine else None)
        tickets_out.append(t)
    return crews_out, tickets_out


def _current(p: Problem, plan: Plan | None) -> Plan:
    """The current plan re-timed on the board as read now."""
    routes = {c.id: [] for c in p.crews} if plan is None else {c.id: plan.route(c.id) for c in p.crews}
    clean = {cid: [ticket_key(t) for t in ids if t in p.ticket_index] for cid, ids in routes.items()}
    from dispatch.optimizer.core import sanitize_routes

    return build_plan(p, sanitize_routes(p, clean), 0.0, {"method": "current"})


def run_replay(scenario: Scenario, events: Sequence[StormEvent], policy: str, settings: OptimizerSettings,
               hours: int = 8, initial_time_limit_s: float = 20.0, event_time_limit_s: float = 2.0,
               initial: Plan | None = None) -> ReplayResult:
    """Play ``events`` against ``policy`` (see the module docstring); metrics at the end of ``hours``:
    customer-minutes without supply (customers × minutes from report, or from the start, until a crew is
    on site; unreached ones count to the end), late EMERGENCY/CRITICAL arrivals (or unreached past their
    deadline), overtime of the work started, and jobs moved per re-plan (not-yet-started jobs that changed
    crew or lost it)."""
    t0 = time.perf_counter()
    end = hours * 60
    board = _Board(crews={c.id: c for c in scenario.crews}, tickets={t.id: t for t in scenario.tickets},
                   known={t.id: t for t in scenario.tickets}, reported={t.id: 0 for t in scenario.tickets})
    if initial is not None:
        board.plan = initial
    elif policy == "greedy":
        p = Problem.build(scenario.crews, scenario.tickets, [], settings)
        board.plan = build_plan(p, greedy_routes(p), 0.0, {"method": "greedy"})
    else:
        board.plan = solve(scenario.crews, scenario.tickets, [], settings, time_limit_s=initial_time_limit_s)
    moved: list[int] = []
    by_kind: dict[str, list[int]] = {}
    replans = 0
    for ev in events:
        if ev.at >= end:
            break
        crews, tickets = _advance(board, ev.at)
        if ev.kind == "tickets":
            for t in ev.tickets:
                board.tickets[t.id] = board.known[t.id] = t
                board.reported[t.id] = ev.at
            tickets += [dataclasses.replace(t) for t in ev.tickets]
        elif ev.kind == "overrun":
            on_site = next((t for t in tickets if t.status == "ON_SITE" and t.assigned_crew_id == ev.crew_id), None)
            if on_site is None:
                continue
            tickets = [dataclasses.replace(t, service_minutes=t.service_minutes + ev.minutes)
                       if t.id == on_site.id else t for t in tickets]
        elif ev.kind == "unavailable":
            if ev.crew_id in board.gone or ev.crew_id not in {c.id for c in crews}:
                continue
            board.gone.add(ev.crew_id)  # type: ignore[arg-type]
            crews = [c for c in crews if c.id != ev.crew_id]
            tickets = [dataclasses.replace(t, status="NEW", assigned_crew_id=None)
                       if t.assigned_crew_id == ev.crew_id else t for t in tickets]
        elif ev.kind == "crews":
            crews += list(ev.crews)
        board.crews.update({c.id: c for c in crews})
        p = Problem.build(crews, tickets, [], settings)
        before = _current(p, board.plan)
        if policy == "replan":
            new = [t for t in tickets if t.id in {x.id for x in ev.tickets}]
            if len(new) == 1 and new[0].priority in URGENT:
                others = [t for t in tickets if t.id != new[0].id]
                result = rp.emergency(before, crews, others, [], new[0], settings, time_limit_s=event_time_limit_s)
            else:
                result = rp.replan(before, crews, tickets, [], settings, time_limit_s=event_time_limit_s)
            replans += 1
            n = sum(1 for c in result.changes if c.kind in ("moved", "dropped")
                    and c.crew_before is not None and c.crew_before not in board.gone)
            moved.append(n)
            kind = "emergency" if len(new) == 1 and new[0].priority in URGENT else ev.kind
            by_kind.setdefault(kind, []).append(n)
            board.plan = result.plan
        else:
            board.plan = build_plan(p, greedy_routes(p, start={c.id: before.stats.get("routes", {}).get(c.id, [])
                                                                for c in crews}), 0.0, {"method": "greedy"})
    _advance(board, end)
    result = _metrics(policy, board, end, moved, replans, time.perf_counter() - t0)
    result.stats["moved_by_event"] = {k: (len(v), float(statistics.median(v)), max(v)) for k, v in by_kind.items()}
    return result


def _metrics(policy: str, board: _Board, end: int, moved: list[int], replans: int, seconds: float) -> ReplayResult:
    cm = 0.0
    late_by = {p: 0 for p in ("EMERGENCY", "CRITICAL", "HIGH", "NORMAL", "LOW")}
    for tid, t in board.known.items():
        arrival = board.reached.get(tid)
        if t.loss_of_supply:
            restored = min(end, arrival) if arrival is not None else end
            cm += t.customers_affected * max(0, restored - board.reported[tid])
        if t.respond_by is not None:
            due = max(t.respond_by, board.reported[tid])
            if (arrival is not None and arrival > due) or (arrival is None and due < end):
                late_by[t.priority] += 1
    overtime = sum(max(0, fin - board.crews[cid].shift_end) for cid, fin in board.finished.items())
    return ReplayResult(policy, cm, late_by["EMERGENCY"] + late_by["CRITICAL"], late_by, overtime, moved, replans,
                        len(board.reached), seconds)
