"""The live-updates relay under a backlog: it drains the change log in big batches (one message and one advance of
its mark per batch), publishes every committed change once and in order, skips none, and each subscriber of a
process gets the changes it follows."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.clock import utcnow
from mobile_sync.changes import TOPIC_BOARD, TOPIC_CREW, TOPIC_CUSTOMER, allocate
from mobile_sync.live import BATCH, Batch, Change, Hub, claim_and_publish
from mobile_sync.models import SyncChange


def commit_backlog(db: Engine, count: int) -> list[int]:
    """`count` changes committed in one transaction (board, crew and customer rows of tickets 1..); their numbers."""
    now = utcnow()
    with db.begin() as connection:
        last = allocate(connection, count)
        rows = []
        for seq in range(last - count + 1, last + 1):
            topic = (TOPIC_BOARD, TOPIC_CREW, TOPIC_CUSTOMER)[seq % 3]
            rows.append({"seq": seq, "topic": topic, "crew_id": seq % 7 + 1 if topic == TOPIC_CREW else None,
                         "ticket_id": seq // 3 + 1, "at": now,
                         "payload": {"changed": ["status"], "status": "ON_SITE"} if topic == TOPIC_CUSTOMER else None})
        connection.execute(SyncChange.__table__.insert(), rows)  # type: ignore[attr-defined]
    return list(range(last - count + 1, last + 1))


def relay_mark(db: Engine) -> int:
    with db.connect() as connection:
        return int(connection.execute(text("SELECT value FROM sync_counter WHERE name = 'relay'")).scalar_one())


def test_a_large_backlog_is_published_in_full_batches_in_order_with_nothing_skipped(db: Engine) -> None:
    commit_backlog(db, 10)  # history from before the first relay: not news
    assert claim_and_publish(db, lambda batch: None) == 0  # the first pass sets the relay's mark at the present
    seqs = commit_backlog(db, 2 * BATCH + 123)

    published: list[Batch] = []
    while claim_and_publish(db, published.append):
        pass

    assert [batch.count for batch in published] == [BATCH, BATCH, 123]
    assert [c.seq for batch in published for c in batch.changes] == seqs
    assert [batch.last for batch in published] == [seqs[BATCH - 1], seqs[2 * BATCH - 1], seqs[-1]]
    assert relay_mark(db) == seqs[-1]
    customer = next(c for c in published[0].changes if c.topic == TOPIC_CUSTOMER)
    assert customer.payload == {"changed": ["status"], "status": "ON_SITE"}

    later = commit_backlog(db, 5)  # committed after the drain: the next pass publishes exactly these
    again: list[Batch] = []
    assert claim_and_publish(db, again.append) == 5
    assert [c.seq for c in again[0].changes] == later


def test_a_publish_that_fails_leaves_the_range_for_the_next_pass(db: Engine) -> None:
    claim_and_publish(db, lambda batch: None)
    seqs = commit_backlog(db, 50)

    def down(_batch: Batch) -> None:
        raise ConnectionError("Redis is down")

    with pytest.raises(ConnectionError):
        claim_and_publish(db, down)
    assert relay_mark(db) == seqs[0] - 1
    published: list[Batch] = []
    assert claim_and_publish(db, published.append) == 50
    assert [c.seq for c in published[0].changes] == seqs


def test_each_subscriber_gets_the_changes_it_follows_once() -> None:
    async def scenario() -> dict[str, list[list[int]]]:
        hub = Hub()
        queues = {"everything": hub.subscribe(), "board": hub.subscribe(TOPIC_BOARD),
                  "crew 2": hub.subscribe(TOPIC_CREW, 2), "ticket 5": hub.subscribe(TOPIC_CUSTOMER, 5),
                  "ticket 9": hub.subscribe(TOPIC_CUSTOMER, 9)}
        gone = hub.subscribe(TOPIC_CUSTOMER, 5)
        hub.unsubscribe(gone)
        batch = [Change(1, TOPIC_BOARD, None, 5), Change(2, TOPIC_CREW, 2, 5), Change(3, TOPIC_CUSTOMER, None, 5),
                 Change(4, TOPIC_CREW, 3, 6), Change(5, TOPIC_CUSTOMER, None, 6)]
        hub.deliver(batch)
        hub.deliver(batch[3:] + [Change(6, TOPIC_CUSTOMER, None, 5)])  # a repeat (another relay) and one new
        assert gone.empty()
        out: dict[str, list[list[int]]] = {}
        for name, queue in queues.items():
            out[name] = []
            while not queue.empty():
                out[name].append([c.seq for c in queue.get_nowait()])
        return out

    got = asyncio.run(scenario())

    assert got == {"everything": [[1, 2, 3, 4, 5], [6]], "board": [[1]], "crew 2": [[2]], "ticket 5": [[3], [6]],
                   "ticket 9": []}
