"""Background re-optimisation: after an emergency's fast insertion, a worker thread re-plans its region
outside the request path and replaces the committed plan only when it finds a better one. A region is re-planned
at most once every ``min_interval_s`` (its committed plan's age counts, whichever process committed it): in a
storm emergencies come every few seconds, each already has its crew from the fast insertion, and back-to-back
re-plans in every process would take the CPU that intake and the crews' devices need; for the same reason a
process leaves a region alone while another process is re-planning it (`dispatch.locks.replan_turn`). Every
``overrun_check_s`` the same thread also looks for jobs overrunning their planned finish without a report from the
device (dispatch.events.overruns_by_time) on every region it has seen, and re-plans those regions. A run that
loses a deadlock runs again a few times (dispatch/locks.py says why that should be rare)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool

from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.clock import utcnow
from dispatch.events import overruns_by_time
from dispatch.locks import lost_a_race, replan_turn
from dispatch.planning import committed_plan, reoptimize_if_better

log = logging.getLogger(__name__)
BUSY_RETRY_S = 5.0  # without an interval: how soon to look again when another process is re-planning the region
RACE_RETRIES = 3  # runs again after a lost deadlock / serialization failure, then gives up until the next request
# Called with (region, outcome) for every background run and every retry: committed, unchanged, retried, failed,
# deferred (another process committed a plan of the region less than min_interval_s ago, or is re-planning it).
# api/metrics.py counts them.
RUN_OBSERVERS: list[Callable[[str, str], None]] = []


def _observe(region: str, outcome: str) -> None:
    for observe in RUN_OBSERVERS:
        observe(region, outcome)


class Replanner:
    """One worker thread; requests for a region already waiting are merged into one run."""

    def __init__(self, engine: Engine, time_limit_s: float = 5.0, overrun_check_s: float | None = 300.0,
                 regions: tuple[str, ...] = ("default",), min_interval_s: float = 0.0) -> None:
        self.engine, self.time_limit_s, self.overrun_check_s = engine, time_limit_s, overrun_check_s
        self.min_interval_s = min_interval_s
        self.regions: set[str] = set(regions)  # regions whose overruns are checked (grows with requests)
        self._next_check = time.monotonic() + (overrun_check_s or 0.0)
        self._due: dict[str, float] = {}  # region -> when its waiting re-plan may run (requests merge into it)
        self._last_run: dict[str, float] = {}
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="gridcrew-replanner", daemon=True)
        self._thread.start()

    def request(self, region: str) -> None:
        with self._wake:
            self.regions.add(region)
            if region not in self._due:
                self._due[region] = max(time.monotonic(), self._last_run.get(region, -1e18) + self.min_interval_s)
            self._wake.notify()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and not self._ready() and not self._check_due():
                    self._wake.wait(self._wait_s())
                if self._stopped:
                    return
                ready = self._ready()
                region = min(ready, key=lambda r: self._due[r]) if ready else None
                if region is not None:
                    del self._due[region]
                regions = sorted(self.regions) if region is None else []
            if region is None:
                self._next_check = time.monotonic() + (self.overrun_check_s or 0.0)
                for r in regions:
                    self.check_overruns(r)
                continue
            wait = self._plan_wait(region)
            if wait > 0:  # another process committed a plan of this region a moment ago
                with self._wake:
                    self._due[region] = min(self._due.get(region, float("inf")), time.monotonic() + wait)
                _observe(region, "deferred")
                continue
            with self._wake:  # requests arriving while it runs are due an interval after its start
                self._last_run[region] = time.monotonic()
            with replan_turn(self.engine, region) as mine:
                if mine:
                    self.replan(region)
                    continue
            # Another process is re-planning this region right now: its plan will count as the fresh one.
            with self._wake:
                self._due[region] = min(self._due.get(region, float("inf")),
                                        time.monotonic() + max(self.min_interval_s, BUSY_RETRY_S))
            _observe(region, "deferred")

    def _ready(self) -> list[str]:
        now = time.monotonic()
        return [r for r, due in self._due.items() if due <= now]

    def _plan_wait(self, region: str) -> float:
        """Seconds until the region's committed plan is ``min_interval_s`` old (0: re-plan now)."""
        if self.min_interval_s <= 0:
            return 0.0
        try:
            with Session(self.engine) as session:
                plan = committed_plan(session, region)
        except Exception:  # the database is away: the re-plan itself will say so
            return 0.0
        if plan is None:
            return 0.0
        return max(0.0, self.min_interval_s - (utcnow() - plan.created_at).total_seconds())

    def replan(self, region: str) -> str:
        """One background re-plan of ``region``; its outcome: committed, unchanged or failed.

        A run that loses a deadlock or a serialization failure changed nothing: it runs again (from a fresh read of
        the board) up to ``RACE_RETRIES`` times. Anything else, or losing every time, leaves the committed plan in
        force: logged, counted, and the thread goes on."""
        for attempt in range(RACE_RETRIES + 1):
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    outcome = "committed" if reoptimize_if_better(session, region, self.time_limit_s) else "unchanged"
            except Exception as error:
                if lost_a_race(error) and attempt < RACE_RETRIES and not self._stopped:
                    log.warning("background re-optimisation of %s lost a race with another writer (%s): "
                                "running it again (%d/%d)", region, type(getattr(error, "orig", error)).__name__,
                                attempt + 1, RACE_RETRIES)
                    _observe(region, "retried")
                    time.sleep(random.uniform(0.05, 0.5))  # noqa: S311 - jitter, not security
                    continue
                if isinstance(error, BrokenProcessPool):  # its solver processes died: killed (a server stopping
                    # with its process group) or out of memory. Nothing was committed; a traceback would say no more.
                    log.warning("background re-optimisation of %s failed: its solver processes ended", region)
                else:
                    log.exception("background re-optimisation of %s failed", region)
                outcome = "failed"
            _observe(region, outcome)
            return outcome
        raise AssertionError("unreachable")

    def _check_due(self) -> bool:
        return self.overrun_check_s is not None and time.monotonic() >= self._next_check

    def _wait_s(self) -> float | None:
        times = list(self._due.values()) + ([self._next_check] if self.overrun_check_s is not None else [])
        return max(0.01, min(times) - time.monotonic()) if times else None

    def check_overruns(self, region: str) -> bool:
        """Re-plan ``region`` if jobs overrun their planned finish (found by time passing); True if it did."""
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                return overruns_by_time(session, region, time_limit_s=self.time_limit_s) is not None
        except Exception:  # the committed plan stays in force; log and go on
            log.exception("overrun check of %s failed", region)
            return False
