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

Throughput (bench/relay.py): a pass of the relay is one transaction that reads up to BATCH changes with one
SELECT (on PostgreSQL that SELECT also takes the `relay` row and builds the Redis message, so no row goes
through Python), publishes them as one message and advances the row once; it goes on at once while it finds
full batches. Commits wake it one by one, so after a wake-up it waits GATHER_SECONDS for the commits right
behind to join the same batch: under a storm of small commits it makes a few big passes a second, not one tiny
pass per commit. Each subscriber says what it follows (a topic, and a ticket or crew), so delivering a batch
costs the batch plus the subscribers concerned, not every subscriber times every change.
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
BATCH = 5000  # changes per relay pass and Redis message (a few hundred kB)
GATHER_SECONDS = 0.02  # after a wake-up, the relay waits this long for the commits right behind
QUEUE_LIMIT = 10_000


@dataclass(frozen=True)
class Change:
    """What the fan-out carries: a pointer into the change log, never personal data."""

    seq: int
    topic: str
    crew_id: int | None
    ticket_id: int | None
    payload: dict[str, Any] | None = None


def _change(row: Any) -> Change:
    payload = row[4]
    return Change(int(row[0]), row[1], row[2], row[3], json.loads(payload) if isinstance(payload, str) else payload)


def read_changes(engine: Engine, after: int, limit: int = BATCH) -> list[Change]:
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT seq, topic, crew_id, ticket_id, payload FROM sync_change WHERE seq > :after "
            "ORDER BY seq LIMIT :limit"), {"after": after, "limit": limit}).all()
    return [_change(r) for r in rows]


@dataclass
class Batch:
    """A range of the log as the relay publishes it: the Redis message (a JSON list of changes) and its size."""

    message: str
    count: int
    last: int
    _changes: list[Change] | None = None

    @property
    def changes(self) -> list[Change]:
        if self._changes is None:
            self._changes = [Change(**item) for item in json.loads(self.message)]
        return self._changes

    @staticmethod
    def of(changes: list[Change]) -> Batch:
        return Batch(json.dumps([asdict(c) for c in changes]), len(changes), changes[-1].seq, changes)


# PostgreSQL: the relay's row (skipped when another relay holds it), the next range and its Redis message in one
# statement. FOR UPDATE gives the newest mark even if the statement's snapshot is older; what that snapshot shows
# above the mark is still a gap-free prefix of the log (numbers follow commit order), so nothing is skipped.
_CLAIM_POSTGRESQL = text(
    "WITH mark AS MATERIALIZED (SELECT value FROM sync_counter WHERE name = 'relay' FOR UPDATE SKIP LOCKED), "
    "batch AS (SELECT c.seq, c.topic, c.crew_id, c.ticket_id, c.payload FROM sync_change c, mark "
    "WHERE c.seq > mark.value ORDER BY c.seq LIMIT :limit) "
    "SELECT (SELECT value FROM mark), COUNT(*), MAX(seq), CAST(json_agg(json_build_object('seq', seq, "
    "'topic', topic, 'crew_id', crew_id, 'ticket_id', ticket_id, 'payload', payload) ORDER BY seq) AS text) "
    "FROM batch")


def _claim(connection: Any, limit: int) -> tuple[bool, Batch | None]:
    """(whether this relay holds the `relay` row, the next range of the log); one SELECT on PostgreSQL."""
    if connection.dialect.name == "postgresql":
        mark, count, last, message = connection.execute(_CLAIM_POSTGRESQL, {"limit": limit}).one()
        if mark is None:
            return False, None
        return True, Batch(message, int(count), int(last)) if count else None
    row = connection.execute(text("SELECT value FROM sync_counter WHERE name = 'relay'")).first()
    if row is None:
        return False, None
    rows = connection.execute(text(
        "SELECT seq, topic, crew_id, ticket_id, payload FROM sync_change WHERE seq > :after "
        "ORDER BY seq LIMIT :limit"), {"after": int(row[0]), "limit": limit}).all()
    return True, Batch.of([_change(r) for r in rows]) if rows else None


def claim_and_publish(engine: Engine, publish: Callable[[Batch], None], limit: int = BATCH) -> int:
    """Publish the next unpublished range of the log, if no other relay holds the `relay` row; returns how many.

    The row's lock is held while publishing, so two relays never publish the same range at the same time; the
    row is advanced in the same transaction, once for the whole range.
    """
    with engine.begin() as connection:
        held, batch = _claim(connection, limit)
        if not held:
            exists = connection.execute(text("SELECT 1 FROM sync_counter WHERE name = 'relay'")).first()
            if exists is None:  # first relay ever: start from the present, history is not news
                allocate(connection, max(last_sequence(connection), 0), name="relay")
            return 0  # else another relay is publishing
        if batch is None:
            return 0
        publish(batch)
        connection.execute(text("UPDATE sync_counter SET value = :v WHERE name = 'relay'"), {"v": batch.last})
        return batch.count


class Hub:
    """The subscribers of this process; `deliver` runs on the event loop.

    A subscriber follows everything, a topic, or a topic and one key (the crew of TOPIC_CREW changes, else the
    ticket), and its queue gets only the changes of a batch it follows (it may filter further)."""

    def __init__(self) -> None:
        self._all: set[asyncio.Queue[list[Change]]] = set()
        self._topics: dict[str, set[asyncio.Queue[list[Change]]]] = {}
        self._keys: dict[tuple[str, int], set[asyncio.Queue[list[Change]]]] = {}
        self._where: dict[asyncio.Queue[list[Change]], tuple[str | None, int | None]] = {}
        self.delivered = 0  # highest sequence delivered

    def subscribe(self, topic: str | None = None, key: int | None = None) -> asyncio.Queue[list[Change]]:
        queue: asyncio.Queue[list[Change]] = asyncio.Queue(QUEUE_LIMIT)
        self._where[queue] = (topic, key)
        if topic is None:
            self._all.add(queue)
        elif key is None:
            self._topics.setdefault(topic, set()).add(queue)
        else:
            self._keys.setdefault((topic, key), set()).add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[list[Change]]) -> None:
        where = self._where.pop(queue, None)
        if where is None:
            return
        topic, key = where
        if topic is None:
            self._all.discard(queue)
        elif key is None:
            _discard(self._topics, topic, queue)
        else:
            _discard(self._keys, (topic, key), queue)

    @staticmethod
    def _key(change: Change) -> tuple[str, int | None]:
        return change.topic, change.crew_id if change.topic == TOPIC_CREW else change.ticket_id

    def deliver(self, changes: list[Change]) -> None:
        if not changes or changes[-1].seq <= self.delivered:
            return
        fresh = [c for c in changes if c.seq > self.delivered] if changes[0].seq <= self.delivered else changes
        self.delivered = fresh[-1].seq
        for queue in list(self._all):
            self._put(queue, fresh)
        if self._topics:
            by_topic: dict[str, list[Change]] = {}
            for change in fresh:
                if change.topic in self._topics:
                    by_topic.setdefault(change.topic, []).append(change)
            for topic, batch in by_topic.items():
                for queue in list(self._topics.get(topic, ())):
                    self._put(queue, batch)
        if self._keys:
            by_key: dict[tuple[str, int | None], list[Change]] = {}
            for change in fresh:
                key = self._key(change)
                if key in self._keys:
                    by_key.setdefault(key, []).append(change)
            for key, batch in by_key.items():
                for queue in list(self._keys.get(key, ())):
                    self._put(queue, batch)

    @staticmethod
    def _put(queue: asyncio.Queue[list[Change]], changes: list[Change]) -> None:
        try:
            queue.put_nowait(changes)
        except asyncio.QueueFull:  # a stalled subscriber: crewJobs catches up by cursor on its next change
            log.warning("live subscriber queue full; dropped %d changes", len(changes))


def _discard(index: dict[Any, set[Any]], name: Any, queue: Any) -> None:
    queues = index.get(name)
    if queues is not None:
        queues.discard(queue)
        if not queues:
            del index[name]


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


STOP_SECONDS = 5.0  # how long stop() waits for the relay and listener tasks to end


class LiveUpdates:
    """The relay and fan-out of one process: `start()`/`stop()` from the app's lifespan."""

    def __init__(self, engine: Engine, redis_url: str | None = None, mqtt_url: str | None = None,
                 poll_seconds: float = 0.5, gather_seconds: float = GATHER_SECONDS) -> None:
        self.engine, self.redis_url, self.mqtt_url = engine, redis_url, mqtt_url
        self.poll_seconds, self.gather_seconds = poll_seconds, gather_seconds
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
        if self._tasks:
            # Bounded: a task that swallows its cancellation (a client library's read, say) must not hold up the
            # shutdown of the whole process; it is left behind with a warning.
            done, pending = await asyncio.wait(self._tasks, timeout=STOP_SECONDS)
            for task in done:
                if not task.cancelled():
                    task.exception()  # (retrieved: an error of a stopping relay is no news)
            if pending:
                log.warning("live updates: %d task(s) did not stop within %.0f s; leaving them", len(pending),
                            STOP_SECONDS)
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
            # Commits wake the relay one at a time: let the ones right behind join this pass's batch.
            await asyncio.sleep(self.gather_seconds)
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

    def _publish_redis(self, batch: Batch) -> None:
        self._redis.publish(self.channel, batch.message)
        if self._mqtt is not None:
            self._mqtt.publish(batch.changes)

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
