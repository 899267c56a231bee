"""Live updates: the relay that reads the transactional outbox (`sync_change`) and fans it out to subscribers.

Only committed rows are ever read, so nothing rolled back is announced; the relay tails the log by sequence
number (which follows commit order, see mobile_sync.changes), so nothing committed is skipped. The process
that commits wakes its relay at once (a commit listener); every relay also polls, so a lost wake-up or a
change committed by another program only waits for the next poll.

Without REDIS_URL each API process tails the log itself and delivers to its own subscribers (`Hub`).
With REDIS_URL one relay at a time (whichever holds the `relay` counter row, `FOR UPDATE SKIP LOCKED`)
publishes each new range of the log to the Redis channel `gridcrew:changes:<database>` (a digest of the
database URL, so several databases can share one Redis) and advances that row; every
process listens on the channel and delivers to its subscribers. A relay that crashes after publishing and
before advancing the row publishes the range again: hubs drop what they have already delivered (by sequence).
While Redis is unreachable (also when a process starts) writes go on, the relay leaves the range unpublished,
and each process without a Redis listener tails the log itself for its own subscribers, as without REDIS_URL;
a listener that gets through again first catches up from the log, so nothing published meanwhile is missed.
With MQTT_URL the relay also publishes each crew's job changes to `gridcrew/crews/<crew id>/jobs` (QoS 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mobile_sync.changes import TOPIC_CREW, add_commit_listener, allocate, last_sequence, remove_commit_listener

log = logging.getLogger(__name__)

CHANNEL = "gridcrew:changes:{database}"
MQTT_TOPIC = "gridcrew/crews/{crew_id}/jobs"
BATCH = 1000
QUEUE_LIMIT = 10_000


@dataclass(frozen=True)
class Change:
    """What the fan-out carries: a pointer into the change log, never personal data."""

    seq: int
    topic: str
    crew_id: int | None
    ticket_id: int | None
    payload: dict[str, Any] | None = None


def read_changes(engine: Engine, after: int, limit: int = BATCH) -> list[Change]:
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT seq, topic, crew_id, ticket_id, payload FROM sync_change WHERE seq > :after "
            "ORDER BY seq LIMIT :limit"), {"after": after, "limit": limit}).all()
    return [Change(int(r[0]), r[1], r[2], r[3], json.loads(r[4]) if isinstance(r[4], str) else r[4])
            for r in rows]


def claim_and_publish(engine: Engine, publish: Callable[[list[Change]], None], limit: int = BATCH) -> int:
    """Publish the next unpublished range of the log, if no other relay holds the `relay` row; returns how many.

    The row's lock is held while publishing, so two relays never publish the same range at the same time.
    """
    with engine.begin() as connection:
        skip = " FOR UPDATE SKIP LOCKED" if engine.dialect.name == "postgresql" else ""
        row = connection.execute(text("SELECT value FROM sync_counter WHERE name = 'relay'" + skip)).first()
        if row is None:
            exists = connection.execute(text("SELECT 1 FROM sync_counter WHERE name = 'relay'")).first()
            if exists is not None:
                return 0  # another relay is publishing
            # First relay ever: start from the present, history is not news.
            allocate(connection, max(last_sequence(connection), 0), name="relay")
            return 0
        after = int(row[0])
        rows = connection.execute(text(
            "SELECT seq, topic, crew_id, ticket_id, payload FROM sync_change WHERE seq > :after "
            "ORDER BY seq LIMIT :limit"), {"after": after, "limit": limit}).all()
        changes = [Change(int(r[0]), r[1], r[2], r[3], json.loads(r[4]) if isinstance(r[4], str) else r[4])
                   for r in rows]
        if not changes:
            return 0
        publish(changes)
        connection.execute(text("UPDATE sync_counter SET value = :v WHERE name = 'relay'"), {"v": changes[-1].seq})
        return len(changes)


class Hub:
    """The subscribers of this process; `deliver` runs on the event loop."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[list[Change]]] = set()
        self.delivered = 0  # highest sequence delivered

    def subscribe(self) -> asyncio.Queue[list[Change]]:
        queue: asyncio.Queue[list[Change]] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[list[Change]]) -> None:
        self._queues.discard(queue)

    def deliver(self, changes: list[Change]) -> None:
        fresh = [c for c in changes if c.seq > self.delivered]
        if not fresh:
            return
        self.delivered = fresh[-1].seq
        for queue in list(self._queues):
            try:
                queue.put_nowait(fresh)
            except asyncio.QueueFull:  # a stalled subscriber: crewJobs catches up by cursor on its next change
                log.warning("live subscriber queue full; dropped %d changes", len(fresh))


class MqttBridge:
    """Publishes crew job changes to an MQTT broker (paho-mqtt, its own network thread)."""

    def __init__(self, url: str) -> None:
        import paho.mqtt.client as mqtt

        parsed = urlparse(url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
        if parsed.username:
            self.client.username_pw_set(parsed.username, parsed.password)
        self.client.connect_async(parsed.hostname or "127.0.0.1", parsed.port or 1883)
        self.client.loop_start()

    def publish(self, changes: list[Change]) -> None:
        for change in changes:
            if change.topic == TOPIC_CREW and change.crew_id is not None:
                self.client.publish(MQTT_TOPIC.format(crew_id=change.crew_id),
                                    json.dumps({"seq": change.seq, "ticketId": change.ticket_id}), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class LiveUpdates:
    """The relay and fan-out of one process: `start()`/`stop()` from the app's lifespan."""

    def __init__(self, engine: Engine, redis_url: str | None = None, mqtt_url: str | None = None,
                 poll_seconds: float = 0.5) -> None:
        self.engine, self.redis_url, self.mqtt_url = engine, redis_url, mqtt_url
        self.poll_seconds = poll_seconds
        database = hashlib.sha1(engine.url.render_as_string(hide_password=False).encode()).hexdigest()[:16]
        self.channel = CHANNEL.format(database=database)
        self.hub = Hub()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Any = None
        self._mqtt: MqttBridge | None = None
        self.started = False
        self.listening = False  # subscribed to the Redis channel right now
        self._publish_failing = False

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self.mqtt_url:
            self._mqtt = MqttBridge(self.mqtt_url)
        self.hub.delivered = await asyncio.to_thread(self._last)
        if self.redis_url:
            import redis

            self._redis = redis.Redis.from_url(self.redis_url)
            # Subscribed before start() returns when Redis is up: nothing published after is missed. When it is
            # down the process starts anyway and its subscribers read the log until the listener gets through.
            subscribed = await self._subscribe()
            self._tasks.append(asyncio.create_task(self._listen(subscribed)))
            self._tasks.append(asyncio.create_task(self._relay(self._claim_redis)))
        else:
            self._tasks.append(asyncio.create_task(self._relay(self._tail_local)))
        add_commit_listener(self.kick)
        self.started = True

    async def stop(self) -> None:
        remove_commit_listener(self.kick)
        self.started = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._redis is not None:
            self._redis.close()
        if self._mqtt is not None:
            self._mqtt.close()

    def kick(self, _seq: int = 0) -> None:
        """Wake the relay (thread-safe: commits happen on worker threads too)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def _last(self) -> int:
        with self.engine.connect() as connection:
            return last_sequence(connection)

    # -------------------------------------------------------------- relays

    async def _relay(self, step: Callable[[], Any]) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                while await step():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or broker hiccup: log, wait for the next poll, go on
                log.exception("live updates relay failed; retrying")

    async def _tail_local(self) -> bool:
        changes = await asyncio.to_thread(read_changes, self.engine, self.hub.delivered)
        if changes:
            if self._mqtt is not None:
                self._mqtt.publish(changes)
            self.hub.deliver(changes)
        return len(changes) == BATCH

    async def _claim_redis(self) -> bool:
        count = 0
        try:
            count = await asyncio.to_thread(claim_and_publish, self.engine, self._publish_redis)
            self._publish_failing = False
        except Exception as exc:  # the range stays unpublished in the log until Redis is back
            if not _redis_error(exc):
                raise
            if not self._publish_failing:
                log.warning("live updates: cannot publish to Redis (%s); the log keeps the changes", exc)
            self._publish_failing = True
        if not self.listening:  # no Redis listener: this process's subscribers read the log themselves
            await self._tail_local()
        return count == BATCH

    def _publish_redis(self, changes: list[Change]) -> None:
        self._redis.publish(self.channel, json.dumps([asdict(c) for c in changes]))
        if self._mqtt is not None:
            self._mqtt.publish(changes)

    async def _subscribe(self) -> tuple[Any, Any] | None:
        import redis.asyncio as aioredis

        listener = aioredis.Redis.from_url(self.redis_url)
        try:
            pubsub = listener.pubsub()
            await pubsub.subscribe(self.channel)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await listener.aclose()
            if not _redis_error(exc):
                raise
            log.warning("live updates: Redis unreachable (%s); fanning out from the log in this process", exc)
            return None
        self.listening = True
        return listener, pubsub

    async def _listen(self, subscribed: tuple[Any, Any] | None) -> None:
        while True:
            if subscribed is None:
                await asyncio.sleep(1.0)
                subscribed = await self._subscribe()
                if subscribed is None:
                    continue
                # Whatever was published while this process was not listening is in the log: catch up.
                await self._tail_local()
            listener, pubsub = subscribed
            try:
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    data = json.loads(message["data"])
                    self.hub.deliver([Change(**item) for item in data])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening = False
                log.warning("live updates: Redis listener lost (%s); fanning out from the log meanwhile", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await listener.aclose()
            subscribed = None


def _redis_error(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:
        return False
    return isinstance(exc, redis.exceptions.RedisError | OSError)
