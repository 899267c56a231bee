"""Background re-optimisation: after an emergency's fast insertion, a worker thread re-plans its region
outside the request path and replaces the committed plan only when it finds a better one."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine
from sqlmodel import Session

from dispatch.planning import reoptimize_if_better

log = logging.getLogger(__name__)


class Replanner:
    """One worker thread; requests for a region already waiting are merged into one run."""

    def __init__(self, engine: Engine, time_limit_s: float = 5.0) -> None:
        self.engine, self.time_limit_s = engine, time_limit_s
        self._pending: list[str] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="gridcrew-replanner", daemon=True)
        self._thread.start()

    def request(self, region: str) -> None:
        with self._wake:
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
                while not self._pending and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                region = self._pending.pop(0)
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    reoptimize_if_better(session, region, self.time_limit_s)
            except Exception:  # a failed re-plan leaves the committed plan in force; log and go on
                log.exception("background re-optimisation of %s failed", region)
