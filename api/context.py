"""The per-request context: who is asking, a database session, dataloaders, intake settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.auth import Principal
from api.loaders import Loaders
from core.settings import Settings
from dispatch.intake import IntakeContext
from dispatch.replanner import Replanner


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

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
