"""Hotspots on the shipped sample of mixed Chinese/English tickets, whose top hotspots are known by design."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, func, select

from core.errors import DomainError
from geo.areas import RegionConfig
from quality.hotspots import default_tokeniser, hotspots, index_keywords
from quality.models import TicketKeyword
from quality.rules import DATA, QualitySettings

SAMPLE = json.loads((DATA / "sample_tickets.json").read_text(encoding="utf-8"))


@pytest.fixture
def sample(session: Session, make_ticket: object) -> None:
    for item in SAMPLE["tickets"]:
        make_ticket(ago=timedelta(days=item["days_ago"], hours=1), kind=item["kind"],  # type: ignore[operator]
                    branch=item["branch"], lat=None if item["branch"] is None else 30.6, summary=item["text"])
    index_keywords(session)
    session.commit()


def test_chinese_is_segmented_with_the_utility_dictionary_and_english_is_stemmed_into_the_same_keywords() -> None:
    tokeniser = default_tokeniser()
    assert "停电" in tokeniser.keywords("家里突然停电了")
    assert "停电" in tokeniser.keywords("Power outages on our street")  # phrase, stemmed, mapped
    assert "跳闸" in tokeniser.keywords("the breaker tripped")
    assert "电压低" in tokeniser.keywords("low voltage every evening")
    words = tokeniser.keywords("我们家的电表")
    assert "电表" in words and "我们" not in words and "的" not in words  # stop words are dropped


def test_the_top_hotspots_of_the_sample_are_the_expected_ones_across_both_languages(
        session: Session, sample: None, region: RegionConfig, quality_settings: QualitySettings,
        now: datetime) -> None:
    ranking = hotspots(session, region, quality_settings, days=30, now=now)
    expected = SAMPLE["expected_top"]
    top = [(h.branch, h.category, h.keyword, h.ticket_count, h.previous_count) for h in ranking[:len(expected)]]
    assert top == [(e["branch"], e["kind"], e["keyword"], e["ticket_count"], e["previous_count"]) for e in expected]
    assert [h.score for h in ranking] == sorted((h.score for h in ranking), reverse=True)
    assert ranking[0].trend == "RISING"


def test_one_branch_and_the_trend_against_the_previous_window(
        session: Session, sample: None, region: RegionConfig, quality_settings: QualitySettings,
        now: datetime) -> None:
    north = hotspots(session, region, quality_settings, days=30, branch="NORTH", now=now)
    assert {h.branch for h in north} == {"NORTH"}
    bill = next(h for h in north if h.keyword == "电费")
    assert (bill.category, bill.ticket_count, bill.previous_count, bill.trend) == ("INQUIRY", 4, 6, "FALLING")


def test_a_ticket_without_location_is_counted_under_the_default_unit(
        session: Session, sample: None, region: RegionConfig, quality_settings: QualitySettings,
        now: datetime) -> None:
    code = quality_settings.default_unit.code
    found = hotspots(session, region, quality_settings, days=30, branch=code, now=now)
    assert ("FAULT_REPAIR", "停电", 1) in {(h.category, h.keyword, h.ticket_count) for h in found}


def test_keywords_are_extracted_once_per_ticket(session: Session, sample: None) -> None:
    assert index_keywords(session) == 0
    tickets = session.exec(select(func.count(func.distinct(TicketKeyword.ticket_id)))).one()
    assert tickets == len(SAMPLE["tickets"])


def test_unknown_branch_and_bad_days_are_refused(session: Session, region: RegionConfig,
                                                 quality_settings: QualitySettings) -> None:
    with pytest.raises(DomainError, match="unknown branch 'ATLANTIS'"):
        hotspots(session, region, quality_settings, branch="ATLANTIS")
    with pytest.raises(DomainError, match="days must be between"):
        hotspots(session, region, quality_settings, days=-3)
