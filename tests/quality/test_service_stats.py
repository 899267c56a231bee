"""serviceStats on a hand-made set of tickets whose figures are worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from core.errors import DomainError
from customers.models import Feedback
from dispatch.models import Ticket, TicketEvent
from dispatch.rules import ServiceRules
from geo.areas import RegionConfig
from quality.models import CallbackTask
from quality.rules import QualitySettings
from quality.stats import ServiceStats, service_stats

M = timedelta(minutes=1)
FROM = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def hand_made(session: Session, make_ticket: object, now: datetime) -> dict[str, Ticket]:
    make = make_ticket

    def field(name: str, ago: timedelta, area: str, branch: str, arrival: float | None, restore: float | None,
              status: str, respond: int, **values: object) -> Ticket:
        created = now - ago
        responded = created + arrival * M if arrival is not None else None
        resolved = responded + restore * M if responded is not None and restore is not None else None
        return make(created_at=created, area_type=area, branch=branch, status=status,  # type: ignore[operator]
                    respond_by=created + respond * M, resolve_by=created + (respond + 180) * M,
                    responded_at=responded, resolved_at=resolved, **values)

    t: dict[str, Ticket] = {}
    # arrival 30 min (in time), power back 100 min after arrival (resolution noted later)
    t["A"] = field("A", timedelta(days=5), "URBAN", "CITY", 30, 120, "RESOLVED", 45)
    t["A"].power_restored_at = t["A"].responded_at + 100 * M  # type: ignore[operator]
    t["B"] = field("B", timedelta(days=4), "URBAN", "CITY", 60, 200, "RESOLVED", 45, channel="APP")  # late
    t["C"] = field("C", timedelta(days=3), "RURAL", "NANHU", 80, 240, "RESOLVED", 90, channel="WECHAT",
                   contact_phone="13700000001")
    t["D"] = field("D", timedelta(hours=1), "RURAL", "NANHU", None, None, "NEW", 90)  # not due yet
    t["E"] = field("E", timedelta(hours=2), "URBAN", "CITY", None, None, "ASSIGNED", 45, kind="EMERGENCY")
    # the same caller as C, same kind, a day after C was resolved: C is no one-time resolution
    t["G"] = field("G", timedelta(days=2), "RURAL", "NANHU", None, None, "NEW", 90, contact_phone="13700000001")
    t["J"] = field("J", timedelta(days=7), "URBAN", "CITY", None, None, "CANCELLED", 45)
    t["I"] = field("I", timedelta(days=40), "URBAN", "CITY", 10, 10, "RESOLVED", 45)  # before the window
    f_created = now - timedelta(days=10)
    t["F"] = make(created_at=f_created, kind="COMPLAINT", status="RESOLVED",  # type: ignore[operator]
                  responded_at=f_created + timedelta(hours=2), resolved_at=now - timedelta(days=8),
                  respond_by=f_created + timedelta(days=1), resolve_by=f_created + timedelta(days=9))
    session.add(TicketEvent(ticket_id=t["F"].id or 0, at=f_created + timedelta(days=1), status="NEW", source="test"))
    h_created = now - timedelta(days=6)
    t["H"] = make(created_at=h_created, kind="INQUIRY", channel="SMS", branch=None, lat=None,  # type: ignore
                  lng=None, status="CLOSED", responded_at=h_created + 10 * M, resolved_at=h_created + 60 * M)
    session.add(Feedback(ticket_id=t["A"].id or 0, score=5))
    session.add(Feedback(ticket_id=t["B"].id or 0, score=2))
    session.add(CallbackTask(ticket_id=t["C"].id or 0, resolved_at=t["C"].resolved_at or now, reason="SAMPLE",
                             due_at=now, status="DONE", reached=True, score=3, resolved=True))
    session.add(t["A"])
    session.commit()
    return t


def stats(session: Session, service_rules: ServiceRules, region: RegionConfig, settings: QualitySettings,
          now: datetime, **kwargs: object) -> ServiceStats:
    return service_stats(session, service_rules, region, settings, start=kwargs.pop("start", FROM),  # type: ignore
                         end=kwargs.pop("end", now), now=now, **kwargs)  # type: ignore[arg-type]


def test_volumes_overdue_and_one_time_resolution(
        session: Session, hand_made: dict[str, Ticket], service_rules: ServiceRules, region: RegionConfig,
        quality_settings: QualitySettings, now: datetime) -> None:
    s = stats(session, service_rules, region, quality_settings, now)
    assert s.ticket_count == 9  # I is before the window
    assert s.tickets_by_kind == {"FAULT_REPAIR": 6, "EMERGENCY": 1, "COMPLAINT": 1, "INQUIRY": 1}
    assert s.tickets_by_channel == {"HOTLINE": 6, "APP": 1, "WECHAT": 1, "SMS": 1}
    assert s.overdue_count == 2  # E and G: not on site, deadline gone
    # resolved: A B C F H; C has a repeat report (G), F was reopened
    assert (s.resolved_count, s.one_time_resolved_count) == (5, 3)
    assert s.one_time_resolution_rate == pytest.approx(0.6)


def test_arrival_and_restoration_against_the_commitment_by_area_type(
        session: Session, hand_made: dict[str, Ticket], service_rules: ServiceRules, region: RegionConfig,
        quality_settings: QualitySettings, now: datetime) -> None:
    s = stats(session, service_rules, region, quality_settings, now)
    assert s.arrivals == 3
    assert s.mean_arrival_minutes == pytest.approx((30 + 60 + 80) / 3, abs=0.01)
    assert s.p90_arrival_minutes == pytest.approx(80, abs=0.01)  # nearest rank: 3rd of 3
    # judged: A (in time), B (late), C (in time), E and G (deadline gone); D not due yet, J cancelled
    assert s.arrival_within_sla_rate == pytest.approx(2 / 5)
    assert s.mean_restoration_minutes == pytest.approx((100 + 200 + 240) / 3, abs=0.01)
    assert s.p90_restoration_minutes == pytest.approx(240, abs=0.01)
    by_area = {a.area_type: a for a in s.by_area_type}
    urban, rural = by_area["URBAN"], by_area["RURAL"]
    assert (urban.arrivals, urban.arrival_commitment_minutes, urban.restoration_commitment_minutes) == (2, 45, 180)
    assert urban.mean_arrival_minutes == pytest.approx(45, abs=0.01)
    assert urban.p90_arrival_minutes == pytest.approx(60, abs=0.01)
    assert urban.arrival_within_sla_rate == pytest.approx(1 / 3)
    assert rural.arrival_within_sla_rate == pytest.approx(1 / 2)
    assert (rural.arrival_commitment_minutes, by_area["REMOTE"].arrivals) == (90, 0)
    assert by_area["REMOTE"].mean_arrival_minutes is None


def test_satisfaction_joins_feedback_and_callbacks(
        session: Session, hand_made: dict[str, Ticket], service_rules: ServiceRules, region: RegionConfig,
        quality_settings: QualitySettings, now: datetime) -> None:
    s = stats(session, service_rules, region, quality_settings, now)
    assert (s.satisfaction_count, s.satisfaction_mean) == (3, pytest.approx((5 + 2 + 3) / 3))


def test_per_branch_with_unlocated_tickets_under_the_default_unit_and_flagged(
        session: Session, hand_made: dict[str, Ticket], service_rules: ServiceRules, region: RegionConfig,
        quality_settings: QualitySettings, now: datetime) -> None:
    s = stats(session, service_rules, region, quality_settings, now)
    branches = {b.branch: b for b in s.by_branch}
    default = quality_settings.default_unit.code
    assert set(branches) == {"CITY", "NANHU", default}
    city, nanhu, centre = branches["CITY"], branches["NANHU"], branches[default]
    assert (city.tickets, city.overdue_count, city.resolved_count, city.flagged) == (5, 1, 3, False)
    assert city.one_time_resolution_rate == pytest.approx(2 / 3)
    assert city.satisfaction_mean == pytest.approx(3.5)
    assert city.manager == region.branch("CITY").manager  # type: ignore[union-attr]
    assert (nanhu.tickets, nanhu.one_time_resolution_rate, nanhu.arrival_within_sla_rate) == (3, 0.0, 0.5)
    assert (centre.tickets, centre.unlocated_count, centre.flagged) == (1, 1, True)
    assert s.unlocated_count == 1
    only = stats(session, service_rules, region, quality_settings, now, branch="NANHU")
    assert (only.ticket_count, [b.branch for b in only.by_branch]) == (3, ["NANHU"])


def test_an_empty_window_has_no_rates(session: Session, service_rules: ServiceRules, region: RegionConfig,
                                      quality_settings: QualitySettings, now: datetime) -> None:
    s = stats(session, service_rules, region, quality_settings, now)
    assert (s.ticket_count, s.one_time_resolution_rate, s.mean_arrival_minutes, s.satisfaction_mean) == \
        (0, None, None, None)


def test_from_after_to_and_unknown_branch_are_refused(
        session: Session, service_rules: ServiceRules, region: RegionConfig, quality_settings: QualitySettings,
        now: datetime) -> None:
    with pytest.raises(DomainError, match="'from' .* is after 'to'"):
        stats(session, service_rules, region, quality_settings, now, start=now, end=now - timedelta(days=1))
    with pytest.raises(DomainError, match="unknown branch 'NOWHERE'"):
        stats(session, service_rules, region, quality_settings, now, branch="NOWHERE")
