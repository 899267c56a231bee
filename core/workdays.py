"""The working-day calendar: weekends and public holidays (as data) for deadlines counted in working days."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

DEFAULT_CALENDAR = Path(__file__).parent / "data" / "holidays.json"


@dataclass(frozen=True)
class WorkCalendar:
    holidays: frozenset[date]
    extra_working_days: frozenset[date]

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The same time of day `days` working days after `start` (a request on a holiday counts from the
        next working day)."""
        current = start
        while not self.is_working_day(current.date()):
            current += timedelta(days=1)
        added = 0
        while added < days:
            current += timedelta(days=1)
            if self.is_working_day(current.date()):
                added += 1
        return current


@lru_cache
def load_calendar(path: str | None = None) -> WorkCalendar:
    data = json.loads(Path(path or DEFAULT_CALENDAR).read_text(encoding="utf-8"))
    return WorkCalendar(
        holidays=frozenset(date.fromisoformat(d) for d in data.get("holidays", [])),
        extra_working_days=frozenset(date.fromisoformat(d) for d in data.get("extra_working_days", [])),
    )
