"""Shared pieces of the quality modules: time windows, known units and SQL time arithmetic for both databases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column

from core.clock import as_utc, utcnow
from core.errors import DomainError, ErrorCode, Problems
from geo.areas import RegionConfig
from quality.rules import QualitySettings

MAX_DAYS = 3660


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end)."""

    start: datetime
    end: datetime

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def previous(self) -> Window:
        return Window(self.start - (self.end - self.start), self.start)


def window_of(start: datetime | None, end: datetime | None, now: datetime | None = None,
              default_days: int = 30, start_field: str = "from", end_field: str = "to") -> Window:
    """The window [start, end): `end` defaults to now, `start` to `default_days` before `end`; from > to is refused."""
    end = as_utc(end) if end is not None else (now or utcnow())
    start = as_utc(start) if start is not None else end - timedelta(days=default_days)
    if start > end:
        raise DomainError.one(start_field, f"'{start_field}' ({start.isoformat()}) is after '{end_field}' "
                                           f"({end.isoformat()}): give a window that starts before it ends")
    if (end - start).days > MAX_DAYS:
        raise DomainError.one(start_field, f"a window may span at most {MAX_DAYS} days")
    return Window(start, end)


def days_window(days: int | None, now: datetime | None = None, default_days: int = 30,
                field: str = "days") -> Window:
    """The last `days` days up to now."""
    days = default_days if days is None else days
    if not 1 <= days <= MAX_DAYS:
        raise DomainError.one(field, f"days must be between 1 and {MAX_DAYS}, got {days}")
    end = now or utcnow()
    return Window(end - timedelta(days=days), end)


def unit_codes(region: RegionConfig, settings: QualitySettings) -> list[str]:
    return [*region.branch_codes, settings.default_unit.code]


def check_unit(unit: str | None, region: RegionConfig, settings: QualitySettings, field: str = "branch") -> None:
    """Refuse a branch (service unit) the region does not have."""
    if unit is None:
        return
    known = unit_codes(region, settings)
    if unit not in known:
        problems = Problems()
        problems.add(field, f"unknown branch '{unit}': known are {', '.join(known)}", ErrorCode.NOT_FOUND)
        problems.raise_if_any()


def manager_of(unit: str, region: RegionConfig, settings: QualitySettings) -> str:
    branch = region.branch(unit)
    return branch.manager if branch is not None else settings.default_unit.manager


def minutes_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[float]:
    """`later - earlier` in minutes, as SQL."""
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 60.0
    return (func.julianday(later) - func.julianday(earlier)) * 1440.0


def plus_days(column: Any, days: int, dialect: str) -> ColumnElement[Any]:
    """`column + days`, as SQL (SQLite keeps timestamps as ISO text)."""
    days = int(days)
    if dialect == "postgresql":
        return column + literal_column(f"interval '{days} days'")
    return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{days} days")
