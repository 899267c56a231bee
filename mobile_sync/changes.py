"""The change log: every transaction that touches a ticket, its history or an assignment writes numbered
`sync_change` rows when it commits, in the same database transaction, whatever code path made the change.

Why hooks on the ORM session: tickets and assignments change in intake, planning, hand assignment, lending
crews, cancelling and sync; `after_flush` sees all of them (and the attribute history: which crew lost a job,
which customer-visible field moved) without each path having to remember a call. What a flush found is kept
with the (nested) transaction it happened in: a savepoint rolled back drops its part, a rollback drops all.

Numbering (the property `syncPull` and the outbox relay rely on: a reader that has seen sequence N will never
later see a newly committed row numbered below N):
  * the rows are numbered and inserted in `before_commit`, the last thing before COMMIT, with numbers from
    the `sync_counter` row `change` taken by one
    `INSERT .. ON CONFLICT DO UPDATE SET value = value + n RETURNING value`;
  * on PostgreSQL that statement row-locks the counter until the transaction ends, so a second writer waits
    there until the first has committed or rolled back: numbers are handed out in commit order, and a
    rolled-back transaction gives its numbers back (no gaps, no late holes below what a reader has seen);
  * on SQLite writers are serialised by the database lock, which gives the same guarantee.
Writers serialise only for the moment between numbering and COMMIT. Deadlocks with other row locks are
possible in principle (a writer holding the counter waits for nothing else, but one waiting for the counter
may hold rows another wants before its own commit); PostgreSQL then aborts one transaction, which changed
nothing, and `syncPush` retries its batch.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.orm import Session

from core.clock import utcnow
from dispatch.models import Assignment, Ticket, TicketEvent
from mobile_sync.models import SyncChange

TOPIC_CREW = "CREW"
TOPIC_BOARD = "BOARD"
TOPIC_CUSTOMER = "CUSTOMER"
CUSTOMER_FIELDS = ("status", "eta", "etr", "power_restored_at")
SEQ_KEY = "gridcrew.sync_seq"
PENDING_KEY = "gridcrew.sync_pending"
CREWS_KEY = "gridcrew.sync_crews"

# Called with the highest sequence number after a transaction that wrote change rows commits (the relay's
# wake-up call for low latency; the relay also polls, so a missed call only delays).
_commit_listeners: list[Callable[[int], None]] = []


def add_commit_listener(listener: Callable[[int], None]) -> None:
    _commit_listeners.append(listener)


def remove_commit_listener(listener: Callable[[int], None]) -> None:
    if listener in _commit_listeners:
        _commit_listeners.remove(listener)


def allocate(connection: Any, count: int, name: str = "change") -> int:
    """Reserve `count` sequence numbers; returns the highest (the lowest is highest - count + 1)."""
    row = connection.execute(text(
        "INSERT INTO sync_counter (name, value) VALUES (:name, :n) "
        "ON CONFLICT (name) DO UPDATE SET value = sync_counter.value + :n RETURNING value"),
        {"name": name, "n": count}).one()
    return int(row[0])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _changed(obj: Any, names: tuple[str, ...]) -> list[str]:
    state = inspect(obj)
    # (an attribute set since the flush has its old value kept in committed_state: only those need a history)
    return [n for n in names if n in state.committed_state and state.attrs[n].history.has_changes()]


def _chain(session: Session) -> list[Any]:
    """The open transactions of the session, innermost first (a flush's changes belong to all of them)."""
    chain = []
    transaction = session.get_nested_transaction() or session.get_transaction()
    while transaction is not None:
        chain.append(transaction)
        transaction = transaction.parent
    return chain


def note_crews(session: Session, ticket_id: int, active_crews: set[int]) -> None:
    """Tell the change log which crews hold `ticket_id` now, when the caller has just read it anyway (saves the
    log its own look-up at the next flush). Must be the state at the start of the transaction's changes."""
    session.info.setdefault(CREWS_KEY, {}).setdefault(ticket_id, set(active_crews))


def _after_flush(session: Session, _context: Any) -> None:
    touched: dict[int, Ticket | None] = {}
    brand_new: set[int] = set()  # tickets inserted by this flush: no crew can hold them yet
    customer: dict[int, list[str]] = {}
    crews_of: dict[int, set[int]] = {}
    new_objects = {id(o) for o in session.new}  # SQLModel tables are not hashable
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, Ticket) and obj.id is not None:
            fields = list(CUSTOMER_FIELDS) if id(obj) in new_objects else _changed(obj, CUSTOMER_FIELDS)
            if id(obj) in new_objects:
                brand_new.add(obj.id)
            if id(obj) in new_objects or session.is_modified(obj, include_collections=False):
                touched[obj.id] = obj
            if fields:
                customer[obj.id] = fields
        elif isinstance(obj, TicketEvent) and id(obj) in new_objects and obj.ticket_id:
            touched.setdefault(obj.ticket_id, None)
        elif isinstance(obj, Assignment) and obj.ticket_id and (id(obj) in new_objects or session.is_modified(obj)):
            touched.setdefault(obj.ticket_id, None)
            # A crew hears about the change whether it gains, keeps or loses the job.
            crews_of.setdefault(obj.ticket_id, set()).add(obj.crew_id)
            previous = inspect(obj).attrs.crew_id.history.deleted
            crews_of[obj.ticket_id].update(c for c in previous if c is not None)
    if not touched:
        return
    # The crews of a ticket, read once per transaction and then kept up to date from the assignment changes
    # every later flush of the transaction shows (the union is what is wanted: gained, kept or lost).
    known: dict[int, set[int]] = session.info.setdefault(CREWS_KEY, {})
    for ticket_id, crews in crews_of.items():
        if ticket_id in known:
            known[ticket_id].update(crews)
    for ticket_id in brand_new:
        known.setdefault(ticket_id, set(crews_of.get(ticket_id, set())))
    connection = session.connection()
    ids = sorted(touched)
    unknown = [t for t in ids if t not in known]
    for start in range(0, len(unknown), 500):
        chunk = unknown[start:start + 500]
        params = {f"t{i}": t for i, t in enumerate(chunk)}
        rows = connection.execute(text(
            "SELECT ticket_id, crew_id FROM assignment WHERE active = :yes AND ticket_id IN ("
            + ", ".join(f":t{i}" for i in range(len(chunk))) + ")"), {"yes": True, **params})
        found: dict[int, set[int]] = {t: set() for t in chunk}
        for ticket_id, crew_id in rows:
            found[ticket_id].add(crew_id)
        for ticket_id, crews in found.items():
            known[ticket_id] = crews | crews_of.get(ticket_id, set())
    changes: list[dict[str, Any]] = []
    for ticket_id in ids:
        changes += _rows(ticket_id, known[ticket_id], touched[ticket_id], customer.get(ticket_id))
    session.info.setdefault(PENDING_KEY, []).append((_chain(session), changes))


def note_new_tickets(session: Session, tickets: list[Ticket]) -> None:
    """Log tickets that were inserted without the session's unit of work (intake inserts a batch's reports with
    one statement), as `after_flush` logs a new ticket: no crew holds them, customers see all of their fields."""
    known: dict[int, set[int]] = session.info.setdefault(CREWS_KEY, {})
    changes: list[dict[str, Any]] = []
    for ticket in tickets:
        assert ticket.id is not None
        changes += _rows(ticket.id, known.setdefault(ticket.id, set()), ticket, list(CUSTOMER_FIELDS))
    session.info.setdefault(PENDING_KEY, []).append((_chain(session), changes))


def _rows(ticket_id: int, crews: set[int], ticket: Ticket | None, customer_fields: list[str] | None,
          ) -> list[dict[str, Any]]:
    """The change rows of one touched ticket: the board's, each crew's that holds (or held) it, and the customers'
    when a field they see changed."""
    rows: list[dict[str, Any]] = [{"topic": TOPIC_BOARD, "crew_id": None, "ticket_id": ticket_id, "payload": None}]
    rows += [{"topic": TOPIC_CREW, "crew_id": crew_id, "ticket_id": ticket_id, "payload": None}
             for crew_id in sorted(crews)]
    if customer_fields:
        assert ticket is not None
        rows.append({"topic": TOPIC_CUSTOMER, "crew_id": None, "ticket_id": ticket_id, "payload": {
            "changed": customer_fields, "status": ticket.status, "eta": _iso(ticket.eta), "etr": _iso(ticket.etr),
            "power_restored_at": _iso(ticket.power_restored_at)}})
    return rows


def _before_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint being released: its changes wait for the real commit
    session.flush()  # the commit's own flush comes after this hook: make it now so its changes are numbered
    session.info.pop(CREWS_KEY, None)
    pending = session.info.pop(PENDING_KEY, [])
    changes = _merge([c for _chain, batch in pending for c in batch])
    if not changes:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        session.info[SEQ_KEY] = _number_and_insert(connection, changes)
        return
    last = allocate(connection, len(changes))
    first, now = last - len(changes) + 1, utcnow()
    table = SyncChange.__table__  # type: ignore[attr-defined]
    connection.execute(table.insert(), [dict(c, seq=first + i, at=now) for i, c in enumerate(changes)])
    session.info[SEQ_KEY] = last


# PostgreSQL: number and insert in one statement, so the counter's row lock (which orders writers) is held for
# one round trip and the COMMIT, not for two round trips with Python (and its GIL) in between.
_NUMBER_AND_INSERT = text(
    "WITH counter AS (INSERT INTO sync_counter (name, value) VALUES ('change', :n) "
    "ON CONFLICT (name) DO UPDATE SET value = sync_counter.value + :n RETURNING value) "
    "INSERT INTO sync_change (seq, topic, crew_id, ticket_id, at, payload) "
    "SELECT counter.value - :n + r.k, r.topic, r.crew_id, r.ticket_id, :at, r.payload "
    "FROM counter, json_to_recordset(CAST(:rows AS json)) AS r(k int, topic text, crew_id int, ticket_id int, "
    "payload json) RETURNING seq")


def _number_and_insert(connection: Any, changes: list[dict[str, Any]]) -> int:
    rows = json.dumps([dict(c, k=i + 1) for i, c in enumerate(changes)])
    seqs = connection.execute(_NUMBER_AND_INSERT, {"n": len(changes), "at": utcnow(), "rows": rows}).scalars().all()
    return int(max(seqs))


def _merge(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (topic, crew, ticket) for the whole transaction; a customer row says every field that
    changed and the values at the end."""
    merged: dict[tuple[str, int | None, int | None], dict[str, Any]] = {}
    for change in changes:
        key = (change["topic"], change["crew_id"], change["ticket_id"])
        if key not in merged:
            merged[key] = dict(change)
        elif change["payload"] is not None:
            before = merged[key]["payload"] or {"changed": []}
            fields = list(dict.fromkeys(before["changed"] + change["payload"]["changed"]))
            merged[key]["payload"] = dict(change["payload"], changed=fields)
    return list(merged.values())


def _after_soft_rollback(session: Session, previous: Any) -> None:
    """Forget what the rolled-back transaction (a savepoint, or everything) had flushed."""
    if previous.parent is None:
        session.info.pop(PENDING_KEY, None)
        session.info.pop(SEQ_KEY, None)
        session.info.pop(CREWS_KEY, None)
        return
    pending = session.info.get(PENDING_KEY)
    if pending:
        session.info[PENDING_KEY] = [(chain, batch) for chain, batch in pending
                                     if not any(t is previous for t in chain)]


def _after_commit(session: Session) -> None:
    last = session.info.pop(SEQ_KEY, None)
    if last is None:
        return
    for listener in list(_commit_listeners):
        # A wake-up call must never fail a commit that already happened.
        with contextlib.suppress(Exception):
            listener(last)


def install() -> None:
    """Register the hooks on every ORM session (idempotent; done when the table module is imported)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_soft_rollback)


def last_sequence(connection: Any) -> int:
    """The highest committed sequence number this connection can see (0 for an empty log)."""
    value = connection.execute(text("SELECT MAX(seq) FROM sync_change")).scalar()
    return int(value or 0)


install()
