"""The background re-planner's cadence in a storm: a region is re-planned at most once every `min_interval_s`,
requests in between merge into the next run, and a plan another process committed a moment ago counts too."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dispatch import replanner
from dispatch.enums import PlanStatus
from dispatch.models import DispatchPlan
from dispatch.replanner import Replanner


def wait_for(condition: Any, seconds: float = 20.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The regions re-planned, in order (each run is the real re-optimisation, only counted)."""
    seen: list[str] = []
    real = replanner.reoptimize_if_better

    def counted(session: Session, region: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(region)
        return real(session, region, *args, **kwargs)

    monkeypatch.setattr(replanner, "reoptimize_if_better", counted)
    return seen


def test_emergencies_in_a_burst_make_one_replan_now_and_at_most_one_more_after_the_interval(
        db: Engine, runs: list[str]) -> None:
    worker = Replanner(db, time_limit_s=0.5, overrun_check_s=None, min_interval_s=30.0)
    try:
        worker.request("default")
        assert wait_for(lambda: len(runs) == 1)  # the first emergency's re-plan runs at once
        for _ in range(5):  # five more emergencies within seconds
            worker.request("default")
        time.sleep(1.5)
        assert runs == ["default"]  # they wait for the interval, merged into one run
        assert list(worker._due) == ["default"]
    finally:
        worker.stop()


def test_a_plan_committed_by_another_process_a_moment_ago_defers_the_replan(
        db: Engine, runs: list[str]) -> None:
    with Session(db) as session:
        session.add(DispatchPlan(region="default", status=PlanStatus.COMMITTED.value))
        session.commit()
    outcomes: list[tuple[str, str]] = []
    replanner.RUN_OBSERVERS.append(lambda region, outcome: outcomes.append((region, outcome)))
    worker = Replanner(db, time_limit_s=0.5, overrun_check_s=None, min_interval_s=30.0)
    try:
        worker.request("default")
        assert wait_for(lambda: ("default", "deferred") in outcomes)
        assert runs == []
    finally:
        worker.stop()
        replanner.RUN_OBSERVERS.pop()


def test_without_an_interval_every_request_after_a_run_runs_again(db: Engine, runs: list[str]) -> None:
    worker = Replanner(db, time_limit_s=0.5, overrun_check_s=None)
    try:
        worker.request("default")
        assert wait_for(lambda: len(runs) == 1)
        worker.request("default")
        assert wait_for(lambda: len(runs) == 2)
    finally:
        worker.stop()


def test_a_region_another_process_is_replanning_right_now_is_left_to_it(db: Engine, runs: list[str]) -> None:
    from dispatch.locks import replan_turn

    if db.dialect.name != "postgresql":
        pytest.skip("one process on SQLite: no other re-planner to take turns with")
    outcomes: list[tuple[str, str]] = []
    replanner.RUN_OBSERVERS.append(lambda region, outcome: outcomes.append((region, outcome)))
    worker = Replanner(db, time_limit_s=0.5, overrun_check_s=None, min_interval_s=30.0)
    try:
        with replan_turn(db, "default") as mine:  # "another process" is solving the region's board
            assert mine
            worker.request("default")
            assert wait_for(lambda: ("default", "deferred") in outcomes)
            assert runs == []  # two solves of one board at once would burn the CPU for one plan
        with replan_turn(db, "default") as mine:
            assert mine  # the turn is free again once its holder is done
    finally:
        worker.stop()
        replanner.RUN_OBSERVERS.pop()
