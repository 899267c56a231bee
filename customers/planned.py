"""Planned outages over an area (a polygon or a feeder) and a time: the customers affected are told 7 days
ahead (by default), again when it starts and when power is back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlmodel import Session, col, select

from core.clock import as_utc, utcnow
from core.errors import DomainError, ErrorCode, Problems
from customers.config import CustomerSettings, get_customer_settings
from customers.models import Customer, NetworkDevice, PlannedOutage
from customers.notify import Change, enqueue, local_time, recipient_of_customer
from geo.areas import _ray_cast
from geo.points import validate_lat_lng


@dataclass
class NewPlannedOutage:
    title: str
    start_at: datetime
    end_at: datetime
    feeder: str | None = None
    polygon: list[list[float]] | None = None  # [[lat, lng], ...]
    reason: str | None = None


def create_planned_outage(session: Session, new: NewPlannedOutage, now: datetime | None = None) -> PlannedOutage:
    now = now or utcnow()
    problems = Problems()
    title = (new.title or "").strip()
    if not title or len(title) > 200:
        problems.add("title", "title is required (at most 200 characters)", ErrorCode.REQUIRED)
    start, end = as_utc(new.start_at), as_utc(new.end_at)
    if end <= start:
        problems.add("endAt", "endAt must be after startAt")
    if start < now:
        problems.add("startAt", "a planned outage starts in the future")
    if (new.feeder is None) == (new.polygon is None):
        problems.add("area", "give either a feeder or a polygon")
    if new.polygon is not None:
        if len(new.polygon) < 3:
            problems.add("polygon", "a polygon needs at least 3 points")
        for point in new.polygon:
            if len(point) != 2 or validate_lat_lng(point[0], point[1]):
                problems.add("polygon", f"{point!r} is not a [lat, lng] pair")
                break
    if new.feeder is not None and session.get(NetworkDevice, new.feeder) is None and not session.exec(
            select(Customer.id).where(Customer.feeder == new.feeder).limit(1)).first():
        problems.add("feeder", f"no customer or device is on feeder '{new.feeder[:64]}'", ErrorCode.NOT_FOUND)
    problems.raise_if_any()
    outage = PlannedOutage(title=title, reason=new.reason, feeder=new.feeder, polygon=new.polygon, start_at=start,
                           end_at=end, created_at=now)
    session.add(outage)
    session.commit()
    return outage


def affected_customers(session: Session, outage: PlannedOutage) -> list[Customer]:
    if outage.feeder is not None:
        return list(session.exec(select(Customer).where(Customer.feeder == outage.feeder)))
    ring = np.asarray(outage.polygon or [], dtype=float)
    lats = [p[0] for p in ring]
    lngs = [p[1] for p in ring]
    candidates = list(session.exec(select(Customer).where(
        col(Customer.lat).between(min(lats), max(lats)), col(Customer.lng).between(min(lngs), max(lngs)))))
    if not candidates:
        return []
    inside = _ray_cast(np.array([c.lat for c in candidates]), np.array([c.lng for c in candidates]), ring)
    return [c for c, hit in zip(candidates, inside, strict=True) if hit]


def restore_planned_outage(session: Session, outage_id: int, at: datetime | None = None) -> PlannedOutage:
    outage = session.get(PlannedOutage, outage_id)
    if outage is None:
        raise DomainError.one("id", f"planned outage {outage_id} does not exist", ErrorCode.NOT_FOUND)
    outage.restored_at = outage.restored_at or at or utcnow()
    session.add(outage)
    notify_planned_outages(session, at)
    session.commit()
    return outage


def notify_planned_outages(session: Session, now: datetime | None = None,
                           settings: CustomerSettings | None = None) -> int:
    """Enqueue what is due now: the notice (N days ahead), the start, the restoration. Safe to run often."""
    settings = settings or get_customer_settings()
    now = now or utcnow()
    horizon = now + timedelta(days=settings.planned_notice_days)
    offered = 0
    for outage in session.exec(select(PlannedOutage).where(col(PlannedOutage.start_at) <= horizon,
                                                           col(PlannedOutage.end_at) >= now - timedelta(days=1))):
        values = {"title": outage.title, "start": local_time(outage.start_at, settings, with_date=True),
                  "end": local_time(outage.end_at, settings, with_date=True)}
        due = []
        if outage.restored_at is not None:
            due.append("PLANNED_RESTORED")
        elif now >= outage.start_at:
            due.append("PLANNED_START")
        elif now < outage.start_at:
            due.append("PLANNED_NOTICE")
        recipients = [recipient_of_customer(c) for c in affected_customers(session, outage)]
        for kind in due:
            offered += enqueue(session, Change(kind, f"p{outage.id}", "1", values, planned_outage_id=outage.id),
                               recipients, now, settings)
    return offered
