"""Service rules as data: SLA deadlines per kind and area type, priority keywords, skill keywords."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.workdays import WorkCalendar, load_calendar
from dispatch.enums import AreaType, Priority, TicketKind

DEFAULT_RULES = Path(__file__).parent / "data" / "service_rules.json"


@dataclass(frozen=True)
class ServiceRules:
    raw: dict[str, Any]
    calendar: WorkCalendar

    @property
    def field_kinds(self) -> frozenset[str]:
        return frozenset(self.raw["field_kinds"])

    @property
    def high_customers_threshold(self) -> int:
        return int(self.raw["high_customers_threshold"])

    def keywords(self, priority: Priority) -> list[str]:
        return list(self.raw["keywords"].get(priority.value, []))

    @property
    def skill_keywords(self) -> dict[str, list[str]]:
        return dict(self.raw["skill_keywords"])

    def default_priority(self, kind: TicketKind) -> Priority:
        return Priority(self.raw["default_priority_by_kind"][kind.value])

    def service_minutes(self, kind: str) -> int:
        return int(self.raw["service_minutes_by_kind"].get(kind, 60))

    def deadlines(
        self, kind: TicketKind, priority: Priority, area: AreaType, reported_at: datetime
    ) -> tuple[datetime | None, datetime | None]:
        """`respondBy` (crew on site, or first contact) and `resolveBy` for a ticket reported at `reported_at`."""
        if kind.value in self.field_kinds:
            if priority == Priority.LOW:
                low = self.raw["low_priority_field"]
                return (reported_at + timedelta(minutes=low["respond_minutes"]),
                        reported_at + timedelta(minutes=low["resolve_minutes"]))
            respond = reported_at + timedelta(minutes=self.raw["respond_minutes"][area.value])
            return respond, respond + timedelta(minutes=self.raw["restore_minutes_after_arrival"][area.value])
        days = self.raw["office_working_days"].get(kind.value)
        if not days:
            return None, None
        return (self.calendar.add_working_days(reported_at, int(days["respond"])),
                self.calendar.add_working_days(reported_at, int(days["resolve"])))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return merged


@lru_cache
def load_rules(path: str | None = None, calendar_path: str | None = None) -> ServiceRules:
    """The shipped defaults, with the keys of the JSON file at `path` (RULES_FILE) laid over them."""
    raw = json.loads(DEFAULT_RULES.read_text(encoding="utf-8"))
    if path:
        raw = _merge(raw, json.loads(Path(path).read_text(encoding="utf-8")))
    missing = [a.value for a in AreaType if a.value not in raw["respond_minutes"]]
    if missing:
        raise ValueError(f"rules: respond_minutes lacks area types {missing}")
    return ServiceRules(raw=raw, calendar=load_calendar(calendar_path))
