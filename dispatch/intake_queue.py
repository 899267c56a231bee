"""Group commit for intake: the reports that arrive while the previous batch is being written are written
together, in one transaction, by a writer thread (more writers start while reports keep queueing: a storm).

Part of a report's cost is fixed per transaction (a connection, the idempotency and customer look-ups, the
duplicate and incident analysis's reads, the change log's counter row, the COMMIT and its fsync); written
together, the reports share it (dispatch.intake.create_tickets reads what the batch needs in a few set-based
queries and locks the groups its reports are likely to join at once; writing a report's incident is still
paid per report). When a writer is free it takes whatever has arrived (up to MAX_BATCH), so a lone report is
written at once, and under load the batches grow by themselves. Batches stay small because a batch holds the rows
it locks (the incidents its reports join) until its COMMIT, and device pushes and plan commits wait for them.

Right after a batch, a writer waits a moment (at most LINGER_SECONDS) for as many more reports as that batch
answered: their callers (a gateway, agents, a client reporting in a loop) tend to send their next ones at once.
Without the wait, a writer that finds one report queued takes it alone, the others queue behind that batch, and
the reports of a steady load split into two half-size batches that each pay the fixed cost.

A report is validated, located and triaged (drafted) in the caller's thread, before it joins the queue: that
work needs no database, and the one writer's time is what bounds intake.

Every caller still gets its own answer, and only after the COMMIT (a write is durable before we answer). When a
batch fails as a whole (a lost race, a fault; on SQLite, a concurrent transaction that stored one of its
clientRequestIds first), nothing of it was written: its reports are written again one by one, each getting its
own answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from core.errors import DomainError
from dispatch.intake import Draft, IntakeContext, IntakeResult, NewTicket, draft_ticket, write_ticket, write_tickets
from dispatch.locks import all_or_nothing, lost_a_race, row_was_busy

log = logging.getLogger(__name__)

MAX_BATCH = 8  # reports per transaction: bounds how long a batch holds the rows it locks (a storm)
# Writer threads: a second one starts only when more reports wait than the running ones take in a batch, so a
# quiet process writes in one thread; in a storm, while one batch waits on the database, another is written.
WRITERS = 4
# A writer thread ends after this long without reports (the next report starts one again). It needs no stopping:
# a server that shuts down waits for its requests, and they for their batches.
IDLE_SECONDS = 30.0
# A writer keeps its database connection between batches while reports keep coming, and gives it back to the
# pool after this long without any.
KEEP_CONNECTION_SECONDS = 1.0
LINGER_SECONDS = 0.010  # (INTAKE_LINGER_MS)
SINGLE_TRIES = 3  # a report written alone runs again after a lost race (deadlock, serialization failure)
# Called with the size of every batch written (api/metrics.py counts them: gridcrew_intake_batch_size).
BATCH_OBSERVERS: list[Callable[[int], None]] = []


@dataclass
class _Item:
    draft: Draft
    future: Future[IntakeResult]


class IntakeQueue:
    """Writes submitted reports in batches; `submit` answers a future of the report's IntakeResult (or its error)."""

    def __init__(self, engine: Engine, context: IntakeContext, max_batch: int = MAX_BATCH,
                 idle_seconds: float = IDLE_SECONDS, writers: int = WRITERS,
                 linger_seconds: float = LINGER_SECONDS) -> None:
        self.engine = engine
        self.context = context
        self.max_batch = max_batch
        self.idle_seconds = idle_seconds
        self.writers = writers
        self.linger_seconds = linger_seconds
        self._items: list[_Item] = []
        self._ready = threading.Condition()
        self._running = 0  # writer threads

    def submit(self, report: NewTicket, source: str) -> Future[IntakeResult]:
        """Draft the report here, in the caller's thread (a wrong one is answered at once, with its DomainError),
        and queue it for the writer."""
        future: Future[IntakeResult] = Future()
        try:
            draft = draft_ticket(self.context, report, source)
        except DomainError as error:
            future.set_exception(error)
            return future
        with self._ready:
            self._items.append(_Item(draft, future))
            if self._running < self.writers and len(self._items) > self._running * self.max_batch:
                self._running += 1
                threading.Thread(target=self._run, name="intake-writer", daemon=True).start()
            self._ready.notify()
        return future

    def _run(self) -> None:
        writer = _Connection(self.engine)
        answered = 0  # reports of the batch just written
        try:
            while True:
                with self._ready:
                    if answered:
                        self._linger(min(self.max_batch, len(self._items) + answered))
                    if not self._items:
                        self._ready.wait(KEEP_CONNECTION_SECONDS)
                    batch, self._items = self._items[:self.max_batch], self._items[self.max_batch:]
                answered = len(batch)
                if batch:
                    self._write(batch, writer)
                    continue
                writer.close()  # a quiet moment: the connection goes back to the pool
                with self._ready:
                    if not self._items:
                        self._ready.wait(self.idle_seconds)
                    if not self._items:
                        self._running -= 1
                        return
        finally:
            writer.close()

    def _linger(self, wanted: int) -> None:
        """Wait until `wanted` reports are queued, at most `linger_seconds` (called holding `_ready`)."""
        deadline = time.monotonic() + self.linger_seconds
        while len(self._items) < wanted and (left := deadline - time.monotonic()) > 0:
            self._ready.wait(left)

    def _write(self, batch: list[_Item], writer: _Connection) -> None:
        for observe in BATCH_OBSERVERS:
            observe(len(batch))
        if len(batch) == 1:
            self._write_alone(batch[0], batch[0].draft, writer)
            return
        try:
            outcomes = _write_together([i.draft for i in batch], writer)
        except Exception as error:  # noqa: BLE001 - nothing of the batch was written: one by one, then
            log.info("intake batch of %d failed (%s): writing its reports one by one", len(batch),
                     type(error).__name__)
            for item in batch:
                self._write_alone(item, item.draft.again(), writer)
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, IntakeResult):
                item.future.set_result(outcome)
            else:
                item.future.set_exception(outcome)

    def _write_alone(self, item: _Item, draft: Draft, writer: _Connection) -> None:
        for attempt in range(SINGLE_TRIES):
            try:
                with writer.session() as session:
                    item.future.set_result(write_ticket(session, draft if attempt == 0 else draft.again()))
                return
            except Exception as error:  # noqa: BLE001 - the caller answers it (a DomainError is the caller's input)
                if attempt + 1 < SINGLE_TRIES and (lost_a_race(error) or _connection_lost(error)):
                    continue
                item.future.set_exception(error)
                return


def _write_together(drafts: list[Draft], writer: _Connection) -> list[IntakeResult | DomainError]:
    """A batch in one transaction. It locks its rows without savepoints (`all_or_nothing`): when one is busy the
    batch fails, and it is written again at once, waiting its turn for the row like any other writer."""
    try:
        with writer.session() as session:
            all_or_nothing(session)
            return write_tickets(session, drafts)
    except Exception as error:
        if not row_was_busy(error):
            raise
    log.debug("a row intake's batch of %d wanted was busy: writing it again, politely", len(drafts))
    with writer.session() as session:
        return write_tickets(session, [d.again() for d in drafts])


def _connection_lost(error: BaseException) -> bool:
    """The database connection broke (a restart, a network fault): nothing was written; a new one may do."""
    return isinstance(error, DBAPIError) and error.connection_invalidated


class _Connection:
    """A writer thread's own database connection, kept between its batches: taking one from the pool for every
    batch costs a round trip (the pool checks the connection first) and some CPU of the one writer. One that
    broke (SQLAlchemy invalidates it) is replaced at the next batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None

    def session(self) -> Session:
        if self._connection is None or self._connection.invalidated or self._connection.closed:
            self.close()
            self._connection = self.engine.connect()
        return Session(self._connection, expire_on_commit=False)

    def close(self) -> None:
        if self._connection is not None:
            with suppress(Exception):  # a broken connection is being let go of: nothing to save
                self._connection.close()
            self._connection = None
