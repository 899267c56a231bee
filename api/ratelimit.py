"""Rate limits of the public fields per client IP: fixed one-minute windows, counted in Redis or in this process.

With REDIS_URL the count is one `INCR` (+ `EXPIRE` on the first hit) on `gridcrew:rl:<window>:<client>`, shared
by every worker process; without it, or while Redis does not answer, each process counts for itself (a limit per
process is still a limit: under a Redis outage the public endpoints stay limited and keep working).
Which fields are limited is api/permissions.py's RATE_LIMITED table; staff tokens are never limited.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
REDIS_RETRY_SECONDS = 30.0


class InProcessCounter:
    """Hits per key and window in a dict; windows older than the current one are dropped as time moves on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = -1
        self._counts: dict[str, int] = {}

    def hit(self, key: str, window: int) -> int:
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


class RedisCounter:
    """Hits per key and window in Redis: one round trip (INCR and EXPIRE pipelined)."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)

    def hit(self, key: str, window: int) -> int:
        name = f"gridcrew:rl:{window}:{key}"
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, WINDOW_SECONDS * 2)
        count, _ = pipe.execute()
        return int(count)

    def close(self) -> None:
        self.client.close()


class RateLimiter:
    """`allow(client)`: False once `client` has made `per_minute` hits in the current minute."""

    def __init__(self, per_minute: int, redis_url: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_minute, self.clock = per_minute, clock
        self.local = InProcessCounter()
        self.redis: Any = RedisCounter(redis_url) if redis_url else None
        self._redis_down_until = 0.0

    @property
    def backend(self) -> str:
        return "redis" if self.redis is not None and self.clock() >= self._redis_down_until else "memory"

    def allow(self, client: str | None) -> bool:
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        key = (client or "unknown")[:100]
        count: int | None = None
        if self.redis is not None and now >= self._redis_down_until:
            try:
                count = self.redis.hit(key, window)
            except Exception as exc:  # noqa: BLE001  (Redis down: count here until it is back)
                log.warning("rate limiter: Redis unavailable (%s); counting in this process for %.0f s",
                            type(exc).__name__, REDIS_RETRY_SECONDS)
                self._redis_down_until = now + REDIS_RETRY_SECONDS
        if count is None:
            count = self.local.hit(key, window)
        return count <= self.per_minute

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()


def client_ip(request: Any) -> str | None:
    """The client address of an HTTP request or WebSocket (behind a proxy: run uvicorn with --proxy-headers)."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None)
