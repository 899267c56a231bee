"""Service-quality rules as data: repeat-caller risk levels and quality settings, checked when they are loaded."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
DEFAULT_RISK_RULES = DATA / "risk_rules.json"
DEFAULT_QUALITY_SETTINGS = DATA / "quality_settings.json"
LEVEL_NAMES = ("RED", "ORANGE", "YELLOW", "BLUE")


class RulesError(ValueError):
    """A rules file that can't be used; the message names the file, the line and the key at fault."""


@dataclass(frozen=True)
class RiskLevelRule:
    level: str
    min_tickets: int
    max_tickets: int | None
    department: str
    action: str
    deadline_hours: float | None
    min_complaints: int | None = None
    regulator_complaint: bool = False
    same_issue: bool = False

    def covers(self, count: int) -> bool:
        return count >= self.min_tickets and (self.max_tickets is None or count <= self.max_tickets)


@dataclass(frozen=True)
class RiskRules:
    window_days: int
    regulator_keywords: tuple[str, ...]
    levels: tuple[RiskLevelRule, ...]  # most severe first

    def rule(self, level: str) -> RiskLevelRule:
        return next(r for r in self.levels if r.level == level)

    @property
    def min_tickets(self) -> int:
        return min(r.min_tickets for r in self.levels)


@dataclass(frozen=True)
class DefaultUnit:
    code: str
    name: str
    manager: str


@dataclass(frozen=True)
class QualitySettings:
    default_unit: DefaultUnit
    warning_minutes: dict[str, int]
    repeat_window_days: int
    callback_complaint_hours: float
    callback_repair_hours: float
    repair_sample_percent: int
    callback_lookback_days: int = 7
    supervision_interval_seconds: float = 60.0

    def warning_for(self, kind: str) -> int:
        return int(self.warning_minutes.get(kind, 60))


def _line_of(text: str, needle: str) -> int:
    """The 1-based line of the first occurrence of `needle` in `text` (1 when absent)."""
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else 1


def _read_json(path: Path) -> tuple[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RulesError(f"{path}: rules file not found") from exc
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as exc:
        raise RulesError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from exc


def parse_risk_rules(text: str, data: Any, source: str = "risk rules") -> RiskRules:
    """Validate the parsed JSON `data` of `text`; levels must cover ticket counts without gaps or overlaps."""

    def fail(message: str, needle: str) -> RulesError:
        return RulesError(f"{source}: line {_line_of(text, needle)}: {message}")

    if not isinstance(data, dict) or not isinstance(data.get("levels"), list) or not data["levels"]:
        raise fail("'levels' must be a non-empty list", '"levels"')
    window = data.get("window_days", 30)
    if not isinstance(window, int) or window < 1:
        raise fail("'window_days' must be a whole number of days, at least 1", '"window_days"')
    rules: list[RiskLevelRule] = []
    for entry in data["levels"]:
        name = entry.get("level") if isinstance(entry, dict) else None
        needle = f'"{name}"' if name else '"levels"'
        if name not in LEVEL_NAMES:
            raise fail(f"level {name!r} is not one of {', '.join(LEVEL_NAMES)}", needle)
        if any(r.level == name for r in rules):
            raise fail(f"level {name} is given twice", needle + ",")
        low, high = entry.get("min_tickets"), entry.get("max_tickets")
        if not isinstance(low, int) or low < 1:
            raise fail(f"level {name}: 'min_tickets' must be a whole number, at least 1", needle)
        if high is not None and (not isinstance(high, int) or high < low):
            raise fail(f"level {name}: 'max_tickets' must be null or at least min_tickets ({low})", needle)
        for key in ("department", "action"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise fail(f"level {name}: '{key}' is required", needle)
        deadline = entry.get("deadline_hours")
        if deadline is not None and (not isinstance(deadline, int | float) or deadline <= 0):
            raise fail(f"level {name}: 'deadline_hours' must be null or positive", needle)
        complaints = entry.get("min_complaints")
        if complaints is not None and (not isinstance(complaints, int) or complaints < 1):
            raise fail(f"level {name}: 'min_complaints' must be null or at least 1", needle)
        rules.append(RiskLevelRule(
            level=name, min_tickets=low, max_tickets=high, department=entry["department"].strip(),
            action=entry["action"].strip(), deadline_hours=float(deadline) if deadline is not None else None,
            min_complaints=complaints, regulator_complaint=bool(entry.get("regulator_complaint", False)),
            same_issue=bool(entry.get("same_issue", False))))
    order = sorted(rules, key=lambda r: LEVEL_NAMES.index(r.level))
    if [r.level for r in order] != [r.level for r in rules]:
        raise fail("levels must be listed from the most severe (RED) to the least (BLUE)", '"levels"')
    # Severity and ticket counts go together: each level's range ends just below the more severe one's.
    for upper, lower in zip(rules, rules[1:], strict=False):
        if lower.max_tickets is None or lower.max_tickets >= upper.min_tickets:
            raise fail(f"level {lower.level} ({lower.min_tickets}..{lower.max_tickets or '∞'} tickets) overlaps "
                       f"level {upper.level} (from {upper.min_tickets})", f'"{lower.level}"')
        if lower.max_tickets + 1 < upper.min_tickets:
            raise fail(f"gap between level {lower.level} (up to {lower.max_tickets} tickets) and level "
                       f"{upper.level} (from {upper.min_tickets}): {lower.max_tickets + 1} tickets have no level",
                       f'"{lower.level}"')
    if rules[0].max_tickets is not None:
        raise fail(f"the most severe level {rules[0].level} needs 'max_tickets': null (no upper bound)",
                   f'"{rules[0].level}"')
    keywords = data.get("regulator_keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k for k in keywords):
        raise fail("'regulator_keywords' must be a list of words", '"regulator_keywords"')
    return RiskRules(window_days=window, regulator_keywords=tuple(keywords), levels=tuple(rules))


@lru_cache
def load_risk_rules(path: str | None = None) -> RiskRules:
    """The risk levels of `path` (default: the shipped table); RulesError names the line at fault."""
    file = Path(path) if path else DEFAULT_RISK_RULES
    text, data = _read_json(file)
    return parse_risk_rules(text, data, str(file))


@lru_cache
def load_quality_settings(path: str | None = None) -> QualitySettings:
    file = Path(path) if path else DEFAULT_QUALITY_SETTINGS
    text, data = _read_json(file)
    try:
        unit = data["default_unit"]
        callback = data["callback"]
        settings = QualitySettings(
            default_unit=DefaultUnit(code=str(unit["code"]), name=str(unit["name"]), manager=str(unit["manager"])),
            warning_minutes={str(k): int(v) for k, v in data["warning_minutes"].items()},
            repeat_window_days=int(data["repeat_window_days"]),
            callback_complaint_hours=float(callback["complaint_hours"]),
            callback_repair_hours=float(callback["repair_hours"]),
            repair_sample_percent=int(callback["repair_sample_percent"]),
            callback_lookback_days=int(callback.get("lookback_days", 7)),
            supervision_interval_seconds=float(data.get("supervision_interval_seconds", 60)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        key = re.sub(r"[^\w]", "", str(exc)) or "?"
        raise RulesError(f"{file}: line {_line_of(text, key)}: bad or missing key {exc}") from exc
    if not 0 <= settings.repair_sample_percent <= 100:
        raise RulesError(f"{file}: line {_line_of(text, 'repair_sample_percent')}: "
                         "repair_sample_percent must be 0..100")
    return settings
