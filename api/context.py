"""The per-request context: who is asking, a database session, dataloaders, intake settings, a crew's jobs."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IllegalStateChangeError
from sqlmodel import Session

from api.auth import Principal
from api.loaders import Loaders
from core.settings import Settings
from dispatch.intake import IntakeContext
from dispatch.replanner import Replanner
from dispatch.tickets import crew_job_ids


@dataclass
class Services:
    """Process-wide things every request shares (built once at start-up)."""

    engine: Engine
    intake: IntakeContext
    max_page_size: int = 200
    # Re-plans regions in the background after an emergency; None runs no background re-plans (tests).
    replanner: Replanner | None = None
    # The settings the app was built with (signing device tokens uses its secret); None: get_settings().
    settings: Settings | None = None
    # Largest syncPush batch (SYNC_MAX_BATCH); bigger batches are refused whole with a clear error.
    sync_max_batch: int = 500
    # Live updates (mobile_sync.live.LiveUpdates): the outbox relay and the subscribers' fan-out.
    live: Any = None
    # Service-quality scheduler (quality.supervision.Supervisor), started and stopped by the app's lifespan.
    supervisor: Any = None
    # Per-IP limits of the public fields (api.ratelimit.RateLimiter); None: not limited.
    rate_limiter: Any = None
    # Revoked tokens and devices (api.revocation.Revocations); None: nothing is checked.
    revocations: Any = None
    # Group commit of createTicket (dispatch.intake_queue.IntakeQueue); None: each report in its own request.
    intake_queue: Any = None


class RequestContext:
    def __init__(self, services: Services, principal: Principal, request: Any = None) -> None:
        self.services = services
        self.principal = principal
        self.request = request
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        """One session per request, opened on first use and closed by `close()`."""
        if self._session is None:
            self._session = Session(self.services.engine, expire_on_commit=False)
        return self._session

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(lambda: self.session)

    @cached_property
    def crew_jobs(self) -> set[int]:
        """Tickets the calling crew has been given (a crew token's readable jobs), read once a request."""
        return crew_job_ids(self.session, self.principal.crew_id or 0)

    def close(self) -> None:
        if self._session is not None:
            try:
                self._session.close()
            except IllegalStateChangeError:
                # A cancelled subscription's read still runs in a worker thread: closing the session under it would
                # break that read, leaving it open would keep its transaction (and locks) open: close it once free.
                _close_when_free(self._session)
            self._session = None


def _close_when_free(session: Session, tries: int = 200, pause: float = 0.05) -> None:
    """Close `session` from a short-lived thread as soon as the thread using it lets go (a rare path)."""

    def run() -> None:
        for _ in range(tries):
            time.sleep(pause)
            with contextlib.suppress(IllegalStateChangeError):
                session.close()
                return

    threading.Thread(target=run, name="close-session", daemon=True).start()
