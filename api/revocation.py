"""Revoked tokens: a lost device or a leaked token stops working before its expiry.

Two kinds of rows in `token_revocation`: DEVICE (every token of that device issued up to the revocation is
refused; registering the device again gives a new, working token) and TOKEN (one token by its `jti`).
Checking a token must not cost a database round trip per request, so each process keeps the set in memory
(`Revocations`) and re-reads it every `revocation_refresh_seconds`; a revocation made by this process acts at
once, one made by another worker within that interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Index
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from core.clock import as_utc, utcnow
from core.errors import Problems
from core.types import UTCDateTime

KIND_DEVICE = "DEVICE"
KIND_TOKEN = "TOKEN"


class TokenRevocation(SQLModel, table=True):
    """A revoked device (its tokens issued up to `revoked_at`) or a revoked token (by its `jti`)."""

    __tablename__ = "token_revocation"
    __table_args__ = (Index("ix_token_revocation_kind_value", "kind", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=10)
    value: str = Field(max_length=100)
    revoked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=100)
    reason: str | None = Field(default=None, max_length=500)


def revoke(session: Session, device_id: str | None = None, token_id: str | None = None, reason: str | None = None,
           revoked_by: str | None = None, now: datetime | None = None) -> list[TokenRevocation]:
    """Revoke a device's tokens and/or one token; committed. At least one of the two must be given."""
    problems = Problems()
    device_id, token_id = (device_id or "").strip() or None, (token_id or "").strip() or None
    if device_id is None and token_id is None:
        problems.add(None, "give a deviceId or a tokenId to revoke")
    for name, value in (("deviceId", device_id), ("tokenId", token_id)):
        if value is not None and len(value) > 100:
            problems.add(name, f"{name} is at most 100 characters")
    if reason is not None and len(reason) > 500:
        problems.add("reason", "reason is at most 500 characters")
    problems.raise_if_any()
    now = now or utcnow()
    rows = [TokenRevocation(kind=kind, value=value, revoked_at=now, reason=reason, revoked_by=revoked_by)
            for kind, value in ((KIND_DEVICE, device_id), (KIND_TOKEN, token_id)) if value is not None]
    session.add_all(rows)
    session.commit()
    return rows


class Revocations:
    """This process's view of the revocations, refreshed from the database every `refresh_seconds`."""

    def __init__(self, engine: Engine, refresh_seconds: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.refresh_seconds, self._monotonic = engine, refresh_seconds, monotonic
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._tokens: frozenset[str] = frozenset()
        self._devices: dict[str, float] = {}  # device id -> latest revocation (epoch seconds)

    def invalidate(self) -> None:
        self._loaded_at = None

    def _refresh(self) -> None:
        now = self._monotonic()
        if self._loaded_at is not None and now - self._loaded_at < self.refresh_seconds:
            return
        with self._lock:
            if self._loaded_at is not None and now - self._loaded_at < self.refresh_seconds:
                return
            with Session(self.engine) as session:
                rows = session.exec(select(TokenRevocation.kind, TokenRevocation.value,
                                           TokenRevocation.revoked_at)).all()
            devices: dict[str, float] = {}
            for kind, value, at in rows:
                if kind == KIND_DEVICE:
                    devices[value] = max(devices.get(value, 0.0), as_utc(at).timestamp())
            self._tokens = frozenset(value for kind, value, _ in rows if kind == KIND_TOKEN)
            self._devices = devices
            self._loaded_at = now

    def is_revoked(self, token_id: str | None, device_id: str | None, issued_at: float | None) -> bool:
        self._refresh()
        if token_id is not None and token_id in self._tokens:
            return True
        if device_id is not None and device_id in self._devices:
            return issued_at is None or issued_at <= self._devices[device_id]
        return False
