"""Triage: the priority and skills a report gets when the caller does not say."""

import pytest

from dispatch.enums import Priority, TicketKind
from dispatch.rules import load_rules
from dispatch.triage import infer_priority, infer_skills

RULES = load_rules()


@pytest.mark.parametrize("text", ["电线落地了，很危险", "路边变压器起火", "Wire down across Elm Road",
                                  "smoke and sparks", "a child got a shock from the pole"])
def test_life_safety_words_make_a_fault_an_emergency(text: str) -> None:
    assert infer_priority(RULES, TicketKind.FAULT_REPAIR, text).priority == Priority.EMERGENCY


def test_the_emergency_kind_is_always_an_emergency() -> None:
    assert infer_priority(RULES, TicketKind.EMERGENCY, "please come").priority == Priority.EMERGENCY


def test_a_complaint_mentioning_fire_stays_a_normal_complaint() -> None:
    triage = infer_priority(RULES, TicketKind.COMPLAINT, "last month's fire was handled badly")
    assert triage.priority == Priority.NORMAL


@pytest.mark.parametrize("text", ["医院停电", "Hospital wing without power", "家里老人用呼吸机，停电了"])
def test_critical_loads_are_critical(text: str) -> None:
    assert infer_priority(RULES, TicketKind.FAULT_REPAIR, text).priority == Priority.CRITICAL


def test_a_critical_site_from_the_gazetteer_is_critical_without_keywords() -> None:
    triage = infer_priority(RULES, TicketKind.FAULT_REPAIR, "no power", critical_site="water_works: 东湖水厂")
    assert triage.priority == Priority.CRITICAL
    assert "water_works" in triage.reason


def test_many_customers_make_it_high() -> None:
    assert infer_priority(RULES, TicketKind.FAULT_REPAIR, "no power", customers_affected=120).priority == Priority.HIGH
    assert infer_priority(RULES, TicketKind.FAULT_REPAIR, "整个小区停电").priority == Priority.HIGH


def test_no_loss_of_supply_is_low_and_a_plain_outage_normal() -> None:
    assert infer_priority(RULES, TicketKind.FAULT_REPAIR, "路灯不亮").priority == Priority.LOW
    assert infer_priority(RULES, TicketKind.FAULT_REPAIR, "my meter is broken").priority == Priority.LOW
    assert infer_priority(RULES, TicketKind.FAULT_REPAIR, "家里停电了").priority == Priority.NORMAL


def test_english_keywords_match_at_word_starts_only() -> None:
    # "bonfire" must not read as "fire"; "injured" must read as "injur".
    assert infer_priority(RULES, TicketKind.FAULT_REPAIR, "outage near the bonfire site").priority == Priority.NORMAL
    assert infer_priority(RULES, TicketKind.FAULT_REPAIR, "man injured by line").priority == Priority.EMERGENCY


def test_skills_are_read_from_the_text_of_field_work_only() -> None:
    assert infer_skills(RULES, TicketKind.FAULT_REPAIR, "树枝压线, 变压器异响") == ["lv_overhead", "transformer",
                                                                                   "tree_trimming"]
    assert infer_skills(RULES, TicketKind.COMPLAINT, "变压器 noise") == []
