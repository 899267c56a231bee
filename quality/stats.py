"""serviceStats, the operations view: volumes, overdue, one-time resolution, arrival and restoration against the
commitments by area type, satisfaction; overall and per branch. Every figure is an SQL aggregation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, or_, text, union_all
from sqlmodel import Session, col, select

from core.clock import utcnow
from customers.models import Feedback
from dispatch.enums import FIELD_KINDS, TicketStatus
from dispatch.models import Ticket, TicketEvent
from dispatch.rules import ServiceRules
from dispatch.tickets import overdue_clause
from geo.areas import RegionConfig
from quality.common import Window, check_unit, minutes_between, plus_days, window_of
from quality.models import CallbackTask, TicketOwner
from quality.rules import QualitySettings

FIELD = [k.value for k in FIELD_KINDS]
P90 = 0.9


@dataclass
class AreaTypeStats:
    area_type: str
    arrivals: int = 0
    mean_arrival_minutes: float | None = None
    p90_arrival_minutes: float | None = None
    arrival_commitment_minutes: int | None = None
    arrival_within_sla_rate: float | None = None
    restorations: int = 0
    mean_restoration_minutes: float | None = None
    p90_restoration_minutes: float | None = None
    restoration_commitment_minutes: int | None = None


@dataclass
class BranchStats:
    branch: str
    manager: str | None = None
    tickets: int = 0
    overdue_count: int = 0
    resolved_count: int = 0
    one_time_resolution_rate: float | None = None
    mean_arrival_minutes: float | None = None
    arrival_within_sla_rate: float | None = None
    mean_restoration_minutes: float | None = None
    satisfaction_mean: float | None = None
    # Tickets without a location, counted here under the default unit: flagged for a dispatcher to place.
    unlocated_count: int = 0

    @property
    def flagged(self) -> bool:
        return self.unlocated_count > 0


@dataclass
class ServiceStats:
    start: datetime
    end: datetime
    branch: str | None
    ticket_count: int = 0
    tickets_by_kind: dict[str, int] = field(default_factory=dict)
    tickets_by_channel: dict[str, int] = field(default_factory=dict)
    overdue_count: int = 0
    resolved_count: int = 0
    one_time_resolved_count: int = 0
    one_time_resolution_rate: float | None = None
    arrivals: int = 0
    mean_arrival_minutes: float | None = None
    p90_arrival_minutes: float | None = None
    arrival_within_sla_rate: float | None = None
    mean_restoration_minutes: float | None = None
    p90_restoration_minutes: float | None = None
    satisfaction_mean: float | None = None
    satisfaction_count: int = 0
    unlocated_count: int = 0
    by_area_type: list[AreaTypeStats] = field(default_factory=list)
    by_branch: list[BranchStats] = field(default_factory=list)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


class _Query:
    """The window, the unit expression (owner after handover, else branch, else the default unit) and filters."""

    def __init__(self, window: Window, branch: str | None, settings: QualitySettings, dialect: str) -> None:
        self.window, self.branch, self.dialect = window, branch, dialect
        self.unit = func.coalesce(col(TicketOwner.unit), col(Ticket.branch), settings.default_unit.code)

    def scoped(self, query: Select[Any], start: datetime | None = None, end: datetime | None = None) -> Select[Any]:
        query = query.select_from(Ticket).outerjoin(TicketOwner, col(TicketOwner.ticket_id) == col(Ticket.id)).where(
            col(Ticket.created_at) >= (start or self.window.start), col(Ticket.created_at) < (end or self.window.end))
        return query.where(self.unit == self.branch) if self.branch is not None else query


def service_stats(session: Session, rules: ServiceRules, region: RegionConfig, settings: QualitySettings,
                  start: datetime | None = None, end: datetime | None = None, branch: str | None = None,
                  now: datetime | None = None) -> ServiceStats:
    """Figures of the tickets reported in [start, end) (default: the last 30 days), overall and per branch."""
    now = now or utcnow()
    window = window_of(start, end, now)
    check_unit(branch, region, settings)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":  # sorts of a year's tickets fit in memory instead of spilling (this transaction)
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    q = _Query(window, branch, settings, dialect)
    stats = ServiceStats(start=window.start, end=window.end, branch=branch)
    branches: dict[str, BranchStats] = {}

    def of(unit: str) -> BranchStats:
        if unit not in branches:
            known = region.branch(unit)
            branches[unit] = BranchStats(unit, known.manager if known else settings.default_unit.manager)
        return branches[unit]

    _volumes(session, q, now, stats, of)
    _one_time_resolution(session, q, settings, stats, of)
    _arrivals(session, q, rules, now, stats, of)
    _satisfaction(session, q, stats, of)
    stats.by_branch = sorted(branches.values(), key=lambda b: b.branch)
    return stats


def _volumes(session: Session, q: _Query, now: datetime, stats: ServiceStats, of: Any) -> None:
    overdue = func.sum(case((overdue_clause(now), 1), else_=0))
    unlocated = func.sum(case((or_(col(Ticket.lat).is_(None), col(Ticket.branch).is_(None)), 1), else_=0))
    rows = session.exec(q.scoped(select(q.unit, col(Ticket.kind), col(Ticket.channel), func.count(), overdue,
                                        unlocated)).group_by(q.unit, col(Ticket.kind), col(Ticket.channel)))
    for unit, kind, channel, count, late, without_location in rows:
        stats.ticket_count += count
        stats.tickets_by_kind[kind] = stats.tickets_by_kind.get(kind, 0) + count
        stats.tickets_by_channel[channel] = stats.tickets_by_channel.get(channel, 0) + count
        stats.overdue_count += int(late or 0)
        stats.unlocated_count += int(without_location or 0)
        branch = of(unit)
        branch.tickets += count
        branch.overdue_count += int(late or 0)
        branch.unlocated_count += int(without_location or 0)


def _one_time_resolution(session: Session, q: _Query, settings: QualitySettings, stats: ServiceStats,
                         of: Any) -> None:
    """Resolved tickets without a reopen and without a repeat report (same caller, same kind) before
    `repeat_window_days` after the resolution, over all resolved tickets."""
    days = settings.repeat_window_days
    caller = func.coalesce(col(Ticket.contact_phone), col(Ticket.account_number))
    # Partitions only need equal keys: byte order ("C") sorts far faster than a linguistic collation.
    keys = [caller.collate("C"), col(Ticket.kind).collate("C")] if q.dialect == "postgresql" \
        else [caller, col(Ticket.kind)]
    following = func.lead(col(Ticket.created_at)).over(partition_by=keys,
                                                       order_by=[col(Ticket.created_at), col(Ticket.id)])
    # Reopened: a second NEW status (intake records the first). Uncorrelated, so it is hashed once.
    reopened_ids = (select(col(TicketEvent.ticket_id))
                    .where(col(TicketEvent.status) == TicketStatus.NEW.value, col(TicketEvent.kind) == "STATUS")
                    .group_by(col(TicketEvent.ticket_id)).having(func.count() > 1))
    reopened = col(Ticket.id).in_(reopened_ids)
    # Tickets up to `days` past the window's end may be the repeat of one inside it.
    end = q.window.end + timedelta(days=days)
    inner = q.scoped(select(q.unit.label("unit"), col(Ticket.created_at).label("created_at"),
                            col(Ticket.resolved_at).label("resolved_at"), caller.label("caller"),
                            following.label("next_at"), case((reopened, 1), else_=0).label("reopened")),
                     end=end).subquery()
    repeated = and_(inner.c.caller.is_not(None), inner.c.next_at.is_not(None),
                    inner.c.next_at <= plus_days(inner.c.resolved_at, days, q.dialect))
    once = func.sum(case((or_(inner.c.reopened == 1, repeated), 0), else_=1))
    rows = session.exec(select(inner.c.unit, func.count(), once)
                        .where(inner.c.created_at < q.window.end, inner.c.resolved_at.is_not(None))
                        .group_by(inner.c.unit))
    for unit, resolved, one_time in rows:
        stats.resolved_count += resolved
        stats.one_time_resolved_count += int(one_time or 0)
        branch = of(unit)
        branch.resolved_count = resolved
        branch.one_time_resolution_rate = _ratio(int(one_time or 0), resolved)
    stats.one_time_resolution_rate = _ratio(stats.one_time_resolved_count, stats.resolved_count)


def _percentiles(session: Session, q: _Query, measures: list[tuple[ColumnElement[float], ColumnElement[bool]]]
                 ) -> list[tuple[dict[str, float], float | None]]:
    """p90 (nearest rank) of each (minutes, counted-when) measure per area type and over all field tickets.

    PostgreSQL: percentile_disc with ROLLUP, one scan for every measure. SQLite has no percentiles: ranks by
    window functions, same definition (the first value whose rank reaches 90 % of the count), so both agree.
    """
    if q.dialect == "postgresql":
        area = col(Ticket.area_type)
        rows = session.exec(q.scoped(select(area, *[
            func.percentile_disc(P90).within_group(minutes).filter(done) for minutes, done in measures
        ]).where(col(Ticket.kind).in_(FIELD))).group_by(func.rollup(area))).all()
        results = []
        for i in range(len(measures)):
            per_area = {r[0]: float(r[i + 1]) for r in rows if r[0] is not None and r[i + 1] is not None}
            overall = next((float(r[i + 1]) for r in rows if r[0] is None and r[i + 1] is not None), None)
            results.append((per_area, overall))
        return results
    return [_ranked_percentile(session, q, minutes, done) for minutes, done in measures]


def _ranked_percentile(session: Session, q: _Query, minutes: ColumnElement[float], done: ColumnElement[bool]
                       ) -> tuple[dict[str, float], float | None]:
    inner = q.scoped(select(
        col(Ticket.area_type).label("area"), minutes.label("minutes"),
        func.row_number().over(partition_by=col(Ticket.area_type), order_by=minutes).label("rank_area"),
        func.count().over(partition_by=col(Ticket.area_type)).label("n_area"),
        func.row_number().over(order_by=minutes).label("rank_all"),
        func.count().over().label("n_all"),
    ).where(col(Ticket.kind).in_(FIELD), done)).subquery()
    rows = session.exec(select(
        inner.c.area,
        func.min(case((inner.c.rank_area >= P90 * inner.c.n_area, inner.c.minutes))),
        func.min(case((inner.c.rank_all >= P90 * inner.c.n_all, inner.c.minutes))),
    ).group_by(inner.c.area)).all()
    overall = [float(r[2]) for r in rows if r[2] is not None]
    return {r[0]: float(r[1]) for r in rows if r[1] is not None}, (min(overall) if overall else None)


def _arrivals(session: Session, q: _Query, rules: ServiceRules, now: datetime, stats: ServiceStats,
              of: Any) -> None:
    arrival = minutes_between(col(Ticket.responded_at), col(Ticket.created_at), q.dialect)
    restored_at = func.coalesce(col(Ticket.power_restored_at), col(Ticket.resolved_at))
    restoration = minutes_between(restored_at, col(Ticket.responded_at), q.dialect)
    arrived = col(Ticket.responded_at).is_not(None)
    restored = and_(arrived, restored_at.is_not(None))
    # Judged against the SLA: arrived, or not arrived with the deadline gone; cancelled tickets are not judged.
    judged = and_(col(Ticket.respond_by).is_not(None), col(Ticket.status) != TicketStatus.CANCELLED.value,
                  or_(arrived, col(Ticket.respond_by) < now))
    in_time = and_(arrived, col(Ticket.respond_by).is_not(None), col(Ticket.responded_at) <= col(Ticket.respond_by))
    rows = session.exec(q.scoped(select(
        q.unit, col(Ticket.area_type),
        func.sum(case((arrived, 1), else_=0)), func.sum(case((arrived, arrival), else_=literal(0.0))),
        func.sum(case((judged, 1), else_=0)), func.sum(case((in_time, 1), else_=0)),
        func.sum(case((restored, 1), else_=0)), func.sum(case((restored, restoration), else_=literal(0.0))),
    ).where(col(Ticket.kind).in_(FIELD))).group_by(q.unit, col(Ticket.area_type))).all()
    (p90_arrival, stats.p90_arrival_minutes), (p90_restore, stats.p90_restoration_minutes) = _percentiles(
        session, q, [(arrival, arrived), (restoration, restored)])
    areas: dict[str, list[float]] = {}
    per_unit: dict[str, list[float]] = {}
    for unit, area, n_arr, sum_arr, n_judged, n_in_time, n_rest, sum_rest in rows:
        values = [float(n_arr or 0), float(sum_arr or 0), float(n_judged or 0), float(n_in_time or 0),
                  float(n_rest or 0), float(sum_rest or 0)]
        for target in (areas.setdefault(area, [0.0] * 6), per_unit.setdefault(unit, [0.0] * 6)):
            for i, v in enumerate(values):
                target[i] += v
    for area in sorted(set(areas) | {"URBAN", "RURAL", "REMOTE"}):
        n_arr, sum_arr, n_judged, n_in_time, n_rest, sum_rest = areas.get(area, [0.0] * 6)
        stats.by_area_type.append(AreaTypeStats(
            area_type=area, arrivals=int(n_arr), mean_arrival_minutes=_ratio(sum_arr, n_arr),
            p90_arrival_minutes=p90_arrival.get(area),
            arrival_commitment_minutes=rules.raw["respond_minutes"].get(area),
            arrival_within_sla_rate=_ratio(n_in_time, n_judged), restorations=int(n_rest),
            mean_restoration_minutes=_ratio(sum_rest, n_rest), p90_restoration_minutes=p90_restore.get(area),
            restoration_commitment_minutes=rules.raw["restore_minutes_after_arrival"].get(area)))
    totals = [sum(v[i] for v in areas.values()) for i in range(6)]
    stats.arrivals = int(totals[0])
    stats.mean_arrival_minutes = _ratio(totals[1], totals[0])
    stats.arrival_within_sla_rate = _ratio(totals[3], totals[2])
    stats.mean_restoration_minutes = _ratio(totals[5], totals[4])
    for unit, (n_arr, sum_arr, n_judged, n_in_time, n_rest, sum_rest) in per_unit.items():
        branch = of(unit)
        branch.mean_arrival_minutes = _ratio(sum_arr, n_arr)
        branch.arrival_within_sla_rate = _ratio(n_in_time, n_judged)
        branch.mean_restoration_minutes = _ratio(sum_rest, n_rest)


def _satisfaction(session: Session, q: _Query, stats: ServiceStats, of: Any) -> None:
    """Scores of customers' feedback and of callbacks together."""
    feedback = q.scoped(select(q.unit.label("unit"), col(Feedback.score).label("score"))) \
        .join(Feedback, col(Feedback.ticket_id) == col(Ticket.id))
    callbacks = q.scoped(select(q.unit.label("unit"), col(CallbackTask.score).label("score"))) \
        .join(CallbackTask, col(CallbackTask.ticket_id) == col(Ticket.id)).where(col(CallbackTask.score).is_not(None))
    scores = union_all(feedback, callbacks).subquery()
    total, count = 0.0, 0
    for unit, score_sum, n in session.exec(select(scores.c.unit, func.sum(scores.c.score), func.count())
                                           .group_by(scores.c.unit)):
        total += float(score_sum or 0)
        count += n
        of(unit).satisfaction_mean = _ratio(float(score_sum or 0), n)
    stats.satisfaction_count = count
    stats.satisfaction_mean = _ratio(total, count)
