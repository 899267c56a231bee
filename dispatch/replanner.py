"""Background re-optimisation: after an emergency's fast insertion, a worker thread re-plans its region
outside the request path and replaces the committed plan only when it finds a better one. Every
``overrun_check_s`` the same thread also looks for jobs overrunning their planned finish without a report from the
device (dispatch.events.overruns_by_time) on every region it has seen, and re-plans those regions."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Engine
from sqlmodel import Session

from dispatch.events import overruns_by_time
from dispatch.planning import reoptimize_if_better

log = logging.getLogger(__name__)


class Replanner:
    """One worker thread; requests for a region already waiting are merged into one run."""

    def __init__(self, engine: Engine, time_limit_s: float = 5.0, overrun_check_s: float | None = 300.0,
                 regions: tuple[str, ...] = ("default",)) -> None:
        self.engine, self.time_limit_s, self.overrun_check_s = engine, time_limit_s, overrun_check_s
        self.regions: set[str] = set(regions)  # regions whose overruns are checked (grows with requests)
        self._next_check = time.monotonic() + (overrun_check_s or 0.0)
        self._pending: list[str] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="gridcrew-replanner", daemon=True)
        self._thread.start()

    def request(self, region: str) -> None:
        with self._wake:
            self.regions.add(region)
            if region not in self._pending:
                self._pending.append(region)
            self._wake.notify()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopped and not self._check_due():
                    self._wake.wait(self._wait_s())
                if self._stopped:
                    return
                region = self._pending.pop(0) if self._pending else None
                regions = sorted(self.regions) if region is None else []
            if region is None:
                self._next_check = time.monotonic() + (self.overrun_check_s or 0.0)
                for r in regions:
                    self.check_overruns(r)
                continue
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    reoptimize_if_better(session, region, self.time_limit_s)
            except Exception:  # a failed re-plan leaves the committed plan in force; log and go on
                log.exception("background re-optimisation of %s failed", region)

    def _check_due(self) -> bool:
        return self.overrun_check_s is not None and time.monotonic() >= self._next_check

    def _wait_s(self) -> float | None:
        return None if self.overrun_check_s is None else max(0.01, self._next_check - time.monotonic())

    def check_overruns(self, region: str) -> bool:
        """Re-plan ``region`` if jobs overrun their planned finish (found by time passing); True if it did."""
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                return overruns_by_time(session, region, time_limit_s=self.time_limit_s) is not None
        except Exception:  # the committed plan stays in force; log and go on
            log.exception("overrun check of %s failed", region)
            return False
