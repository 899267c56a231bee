"""Repeat-caller risk levels: each level's trigger on hand-made caller histories, masked phones, level tasks."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from core.errors import DomainError
from geo.areas import RegionConfig
from quality.models import QualityTask
from quality.repeat_callers import mask_phone, repeat_callers, sync_risk_levels
from quality.rules import DEFAULT_RISK_RULES, QualitySettings, RiskRules, RulesError, load_risk_rules

PHONE = "13812345678"


def levels(session: Session, risk_rules: RiskRules, quality_settings: QualitySettings, now: object,
           days: int | None = None) -> dict[str, str]:
    return {r.caller_key: r.risk_level for r in repeat_callers(session, risk_rules, quality_settings, days=days,
                                                                now=now)}  # type: ignore[arg-type]


def calls(make_ticket: object, count: int, phone: str = PHONE, kind: str = "FAULT_REPAIR", **values: object) -> None:
    for i in range(count):
        make_ticket(ago=timedelta(days=2 + i), contact_phone=phone, kind=kind, **values)  # type: ignore[operator]


def test_five_tickets_in_thirty_days_are_red_with_a_24_hour_callback(
        session: Session, make_ticket: object, risk_rules: RiskRules, quality_settings: QualitySettings,
        now: object) -> None:
    calls(make_ticket, 5)
    [caller] = repeat_callers(session, risk_rules, quality_settings, now=now)  # type: ignore[arg-type]
    assert (caller.risk_level, caller.ticket_count, caller.phone_masked) == ("RED", 5, "138****5678")
    assert caller.department == "branch manager"
    last = max(t.created_at for t in caller.tickets)
    assert caller.deadline == last + timedelta(hours=24)
    assert len(caller.tickets) == 5 and caller.unit == "CITY"


def test_one_complaint_escalated_to_12398_is_red_whatever_the_count(
        session: Session, make_ticket: object, risk_rules: RiskRules, quality_settings: QualitySettings,
        now: object) -> None:
    make_ticket(contact_phone=PHONE, kind="COMPLAINT", summary="已向12398投诉电压低")  # type: ignore[operator]
    make_ticket(contact_phone="13900000001", kind="FAULT_REPAIR", summary="12398 号楼停电")  # type: ignore[operator]
    found = levels(session, risk_rules, quality_settings, now)
    assert found == {PHONE: "RED"}  # the fault ticket mentions the number but is no regulator complaint


@pytest.mark.parametrize(("history", "level"), [
    ([("FAULT_REPAIR", 4)], "ORANGE"),
    ([("COMPLAINT", 2)], "ORANGE"),
    ([("FAULT_REPAIR", 1), ("INQUIRY", 1), ("COMPLAINT", 1)], "YELLOW"),
    ([("FAULT_REPAIR", 2)], "BLUE"),
    ([("FAULT_REPAIR", 1), ("INQUIRY", 1)], None),
    ([("FAULT_REPAIR", 1)], None),
])
def test_each_level_has_its_trigger(
        session: Session, make_ticket: object, risk_rules: RiskRules, quality_settings: QualitySettings,
        now: object, history: list[tuple[str, int]], level: str | None) -> None:
    for kind, count in history:
        calls(make_ticket, count, kind=kind)
    assert levels(session, risk_rules, quality_settings, now).get(PHONE) == level


def test_only_the_window_counts_and_an_account_stands_for_a_missing_phone(
        session: Session, make_ticket: object, risk_rules: RiskRules, quality_settings: QualitySettings,
        now: object) -> None:
    for days in (1, 3, 40, 50, 60):
        make_ticket(ago=timedelta(days=days), contact_phone=PHONE)  # type: ignore[operator]
    for days in (1, 2):
        make_ticket(ago=timedelta(days=days), contact_phone=None, account_number="0101234567")  # type: ignore
    found = levels(session, risk_rules, quality_settings, now)
    assert found == {PHONE: "BLUE", "0101234567": "BLUE"}
    assert levels(session, risk_rules, quality_settings, now, days=90)[PHONE] == "RED"
    masked = {r.phone_masked for r in repeat_callers(session, risk_rules, quality_settings, now=now)}  # type: ignore
    assert masked == {"138****5678", "010***4567"}


def test_phones_are_masked_whatever_their_length() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+8613812345678") == "+86*******5678"
    assert mask_phone("12345") == "*2345"
    assert mask_phone(None) == "****"


def test_days_must_be_a_sensible_window(session: Session, risk_rules: RiskRules,
                                        quality_settings: QualitySettings) -> None:
    with pytest.raises(DomainError, match="days must be between"):
        repeat_callers(session, risk_rules, quality_settings, days=0)


def test_a_level_change_creates_one_task_for_the_responsible_department(
        session: Session, make_ticket: object, risk_rules: RiskRules, quality_settings: QualitySettings,
        region: RegionConfig, now: object) -> None:
    calls(make_ticket, 3)
    first = sync_risk_levels(session, risk_rules, quality_settings, region, now=now)  # type: ignore[arg-type]
    again = sync_risk_levels(session, risk_rules, quality_settings, region, now=now)  # type: ignore[arg-type]
    session.commit()
    assert [(t.level, t.recipient_role) for t in first] == [("YELLOW", "DEPARTMENT")] and again == []
    make_ticket(ago=timedelta(hours=1), contact_phone=PHONE)  # type: ignore[operator]
    risen = sync_risk_levels(session, risk_rules, quality_settings, region, now=now)  # type: ignore[arg-type]
    session.commit()
    assert [t.level for t in risen] == ["ORANGE"]
    tasks = session.exec(select(QualityTask).order_by(QualityTask.id)).all()
    assert [t.level for t in tasks] == ["YELLOW", "ORANGE"]
    assert "customer manager" in tasks[1].recipient and "138****5678" in tasks[1].message


def _rules_with(tmp_path: Path, change: dict[str, dict[str, object]]) -> Path:
    data = json.loads(DEFAULT_RISK_RULES.read_text(encoding="utf-8"))
    for entry in data["levels"]:
        entry.update(change.get(entry["level"], {}))
    path = tmp_path / "risk.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def _line(path: Path, level: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if f'"level": "{level}"' in line)


def test_a_rules_table_with_a_gap_is_rejected_naming_the_line(tmp_path: Path) -> None:
    path = _rules_with(tmp_path, {"YELLOW": {"min_tickets": 3, "max_tickets": 3},
                                  "ORANGE": {"min_tickets": 5, "max_tickets": 5},
                                  "RED": {"min_tickets": 6}})
    with pytest.raises(RulesError, match=rf"line {_line(path, 'YELLOW')}: gap .* 4 tickets have no level"):
        load_risk_rules(str(path))


def test_overlapping_levels_are_rejected_naming_the_line(tmp_path: Path) -> None:
    path = _rules_with(tmp_path, {"YELLOW": {"min_tickets": 3, "max_tickets": 4}})
    with pytest.raises(RulesError, match=rf"line {_line(path, 'YELLOW')}: level YELLOW .* overlaps level ORANGE"):
        load_risk_rules(str(path))


def test_a_broken_rules_file_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "levels": [\n    {"level": "RED",}\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(RulesError, match="line 3: not valid JSON"):
        load_risk_rules(str(path))
    unknown = _rules_with(tmp_path, {"BLUE": {"level": "GREEN"}})
    with pytest.raises(RulesError, match="'GREEN' is not one of"):
        load_risk_rules(str(unknown))
