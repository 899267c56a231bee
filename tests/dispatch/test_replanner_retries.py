"""The background re-planner runs a re-plan again when it loses a deadlock (the database undid it), a bounded
number of times, says so in the log and counts every outcome for /metrics; anything else leaves the committed
plan in force."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

import api.metrics  # noqa: F401  (registers its counter of re-plan outcomes)
from dispatch import replanner
from dispatch.models import DispatchPlan
from dispatch.replanner import RACE_RETRIES, Replanner


class Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


def lost_deadlock() -> OperationalError:
    return OperationalError("UPDATE ticket SET etr=...", {}, Deadlock("deadlock detected"))


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("gridcrew_replan_runs_total", {"outcome": outcome}) or 0.0


@pytest.fixture
def planner(db: Engine) -> Iterator[Replanner]:
    worker = Replanner(db, time_limit_s=1.0, overrun_check_s=None)
    yield worker
    worker.stop()


def test_a_re_plan_that_lost_a_deadlock_runs_again_and_is_counted(
        planner: Replanner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def loses_twice(session: Session, region: str, time_limit_s: float) -> DispatchPlan | None:
        calls.append(region)
        if len(calls) <= 2:
            raise lost_deadlock()
        return None

    monkeypatch.setattr(replanner, "reoptimize_if_better", loses_twice)
    retried, unchanged = counted("retried"), counted("unchanged")
    with caplog.at_level(logging.WARNING, logger="dispatch.replanner"):
        assert planner.replan("north") == "unchanged"
    assert calls == ["north"] * 3
    assert sum("lost a race" in r.getMessage() for r in caplog.records) == 2
    assert counted("retried") == retried + 2 and counted("unchanged") == unchanged + 1


def test_a_re_plan_that_keeps_losing_gives_up_and_is_counted_as_failed(
        planner: Replanner, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def always_loses(session: Session, region: str, time_limit_s: float) -> DispatchPlan | None:
        calls.append(region)
        raise lost_deadlock()

    monkeypatch.setattr(replanner, "reoptimize_if_better", always_loses)
    failed = counted("failed")
    assert planner.replan("north") == "failed"
    assert len(calls) == RACE_RETRIES + 1
    assert counted("failed") == failed + 1


def test_other_failures_are_not_run_again(planner: Replanner, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def broken(session: Session, region: str, time_limit_s: float) -> DispatchPlan | None:
        calls.append(region)
        raise ValueError("a bug")

    monkeypatch.setattr(replanner, "reoptimize_if_better", broken)
    assert planner.replan("north") == "failed" and calls == ["north"]


def test_a_re_plan_whose_solver_processes_died_says_so_in_one_line(
        planner: Replanner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # What a server stopped with its process group logs: its solver processes get the signal first.
    def killed(session: Session, region: str, time_limit_s: float) -> DispatchPlan | None:
        raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(replanner, "reoptimize_if_better", killed)
    failed = counted("failed")
    assert planner.replan("north") == "failed" and counted("failed") == failed + 1
    [record] = [r for r in caplog.records if "re-optimisation" in r.getMessage()]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "solver processes ended" in record.getMessage()

