"""Triage of a new report: its priority and required skills, inferred from kind, text and site."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from dispatch.enums import Priority, TicketKind
from dispatch.rules import ServiceRules

# Kinds where a life-safety keyword means a crew must go now (a complaint mentioning a past fire does not).
SAFETY_KINDS = frozenset({TicketKind.FAULT_REPAIR, TicketKind.EMERGENCY, TicketKind.REPORT})


@dataclass(frozen=True)
class Triage:
    priority: Priority
    reason: str


@lru_cache(maxsize=64)
def _pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    # English words match at a word start ("injur" finds "injured"); Chinese has no spaces, so substrings.
    parts = [rf"\b{re.escape(k)}" if k.isascii() else re.escape(k) for k in keywords]
    return re.compile("|".join(parts) or r"(?!x)x", re.IGNORECASE)


def find_keyword(text: str, keywords: list[str]) -> str | None:
    match = _pattern(tuple(keywords)).search(text)
    return match.group(0) if match else None


def infer_priority(
    rules: ServiceRules,
    kind: TicketKind,
    text: str,
    customers_affected: int = 1,
    critical_site: str | None = None,
    needs_generator: bool = False,
) -> Triage:
    """The most urgent priority that the kind, the words of the report and the site justify."""
    if kind == TicketKind.EMERGENCY:
        return Triage(Priority.EMERGENCY, "reported as an emergency")
    field_work = kind.value in rules.field_kinds
    if kind in SAFETY_KINDS and (word := find_keyword(text, rules.keywords(Priority.EMERGENCY))):
        return Triage(Priority.EMERGENCY, f"life-safety keyword '{word}'")
    if field_work:
        if critical_site:
            return Triage(Priority.CRITICAL, f"critical site ({critical_site})")
        if needs_generator:
            return Triage(Priority.CRITICAL, "critical load needs a mobile generator")
        if word := find_keyword(text, rules.keywords(Priority.CRITICAL)):
            return Triage(Priority.CRITICAL, f"critical-load keyword '{word}'")
        if customers_affected >= rules.high_customers_threshold:
            return Triage(Priority.HIGH, f"{customers_affected} customers affected")
        if word := find_keyword(text, rules.keywords(Priority.HIGH)):
            return Triage(Priority.HIGH, f"wide-outage keyword '{word}'")
        if word := find_keyword(text, rules.keywords(Priority.LOW)):
            return Triage(Priority.LOW, f"no loss of supply ('{word}')")
    return Triage(rules.default_priority(kind), f"default for {kind.value.lower().replace('_', ' ')}")


def infer_skills(rules: ServiceRules, kind: TicketKind, text: str) -> list[str]:
    """Skills a crew needs for a field job, read from the report text; empty for office work."""
    if kind.value not in rules.field_kinds:
        return []
    return sorted(skill for skill, words in rules.skill_keywords.items() if find_keyword(text, words))
