"""The roster at the domain level: validation, derived crew status, lending across regions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from core.errors import DomainError
from crews.models import Crew, CrewStatus
from crews.roster import NewCrew, create_crew, crew_status, lend_crew, list_crews, on_shift

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def day_crew(session: Session, name: str = "Day crew") -> Crew:
    return create_crew(session, NewCrew(name=name, skills=["meter", "lv_overhead", "meter"], home_lat=30.6,
                                        home_lng=114.3, shift_start=NOON - timedelta(hours=4),
                                        shift_end=NOON + timedelta(hours=4)))


def test_skills_are_stored_once_and_sorted(session: Session) -> None:
    crew = day_crew(session)
    assert crew.skills == ["lv_overhead", "meter"]


def test_status_is_derived_from_the_flag_the_shift_and_work_under_way(session: Session) -> None:
    crew = day_crew(session)
    assert on_shift(crew, NOON) and not on_shift(crew, NOON + timedelta(hours=5))
    assert crew_status(crew, busy=False, now=NOON) == CrewStatus.AVAILABLE
    assert crew_status(crew, busy=True, now=NOON) == CrewStatus.BUSY
    assert crew_status(crew, busy=False, now=NOON + timedelta(hours=5)) == CrewStatus.OFF_SHIFT
    crew.unavailable = True
    assert crew_status(crew, busy=True, now=NOON) == CrewStatus.UNAVAILABLE


def test_listing_filters_by_derived_status(session: Session) -> None:
    day_crew(session, "A")
    night = create_crew(session, NewCrew(name="Night", skills=[], home_lat=30.6, home_lng=114.3,
                                         shift_start=NOON + timedelta(hours=8), shift_end=NOON + timedelta(hours=20)))
    off = list_crews(session, ["OFF_SHIFT"], now=NOON)
    assert [crew.id for crew, _ in off] == [night.id]


def test_a_crew_is_lent_to_a_named_region_only(session: Session) -> None:
    crew = day_crew(session)
    assert lend_crew(session, crew.id or 0, "north-aid").region == "north-aid"
    with pytest.raises(DomainError):
        lend_crew(session, crew.id or 0, "")
    with pytest.raises(DomainError):
        lend_crew(session, 999_999, "north-aid")
