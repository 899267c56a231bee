"""The lock order of dispatch writes on PostgreSQL, so that a plan commit, intake, fast insertion and device
pushes queue behind each other instead of deadlocking.

The order, for every transaction that writes more than the one ticket it started from:

  1. transaction-scoped advisory locks: intake's caller/site keys (customers.incidents), then the region's plan
     lock (`lock_region_plans`: plan commits and fast insertions of one region never overlap);
  2. incident rows, by id;
  3. ticket rows, by id: the tickets the transaction changes plus every ticket of those incidents (refreshing an
     incident writes its ETR onto all of its tickets, customers.updates.refresh_incident);
  4. active assignment rows of those tickets, by id; what customers were last told of them (ticket_publication,
     by ticket id: a crew's note rewrites it without touching the ticket); then generators, by id.

Row locks are `FOR NO KEY UPDATE` (what an UPDATE of non-key columns takes): inserting an event or an assignment
that references a locked ticket is not held up by it.

The cycles this prevents (found in the storm benchmark): a plan commit sets ETAs on its tickets, then refreshes
their incidents (incident row, then the ETR of every ticket of it) while intake groups a report into the same
incident (the reports' rows, then the incident) or a crew's note rewrites a ticket's publication and refreshes
its incident; each held what the other wanted next.

Not every writer can follow the order (a device's status change writes its ticket and only then learns that
the ticket's incident must be refreshed), and a plan commit locks hundreds of rows after a solve of seconds: it
should not be the one a deadlock kills. So `lock_rows` takes the rows politely: in a savepoint, with a lock and a
statement timeout shorter than PostgreSQL's `deadlock_timeout` (1 ms a ticket for big plans); when a row is
busy it rolls back to the savepoint (letting go of what it took), waits a moment and tries again. Whoever held
the row goes on; no cycle lasts long enough to be declared a deadlock. The first try does not wait at all
(`NOWAIT`: rows are seldom busy, and then it needs no timeouts set and put back); after a bounded number of
tries it waits like anyone else. SQLite serialises writers: nothing to do there.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, null, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, col, select

from core.db import id_list
from crews.models import MobileGenerator
from customers.models import IncidentScope, TicketPublication
from dispatch.models import Assignment, Incident, Ticket
from mobile_sync.changes import note_crews

log = logging.getLogger(__name__)

# Deadlock, serialization failure: the transaction changed nothing and may simply run again.
RACE_SQLSTATES = frozenset({"40P01", "40001"})
# What a polite lock attempt gives up with: lock_timeout, statement_timeout (query_canceled).
BUSY_SQLSTATES = frozenset({"55P03", "57014"})
POLITE_LOCK_MS = 200  # well under deadlock_timeout (1 s by default)
POLITE_STATEMENT_MS = 700
POLITE_TRIES = 50  # then wait like anyone else (up to some 12 s of trying)
HELD_KEY = "gridcrew.locked_tickets"
ALL_OR_NOTHING_KEY = "gridcrew.all_or_nothing"
TIMEOUTS_KEY = "gridcrew.own_timeouts"


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lost_a_race(error: BaseException) -> bool:
    """A deadlock or serialization failure: the database undid the transaction; running it again is right."""
    return isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) in RACE_SQLSTATES


def lock_region_plans(session: Session, region: str) -> None:
    """Plan commits and fast insertions of one region queue behind each other (several server processes may
    re-plan at once), so exactly one plan is COMMITTED afterwards. Released with the transaction. The key
    includes the schema, so deployments (and test runs) sharing one database never wait on each other."""
    if is_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || :key))"),
                        {"key": f":gridcrew-plan:{region}"})


@contextmanager
def replan_turn(engine: Engine, region: str) -> Iterator[bool]:
    """Whether this process may re-plan `region` in the background now: False while another process is (a
    session-level advisory try-lock, held for the block; released if the process dies). With several server
    processes each has a re-planner, and two solves of one board at once would both burn the CPU for one plan.
    Always True on SQLite."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = {"key": f":gridcrew-replan:{region}"}
    connection = None
    try:
        connection = engine.connect()
        got = bool(connection.execute(text(
            "SELECT pg_try_advisory_lock(hashtext(current_schema() || :key))"), key).scalar())
        connection.commit()
    except DBAPIError:  # the database is away: the re-plan itself finds out, says so and is tried again later
        if connection is not None:
            with suppress(DBAPIError):
                connection.close()
        yield True
        return
    try:
        yield got
    finally:
        with suppress(DBAPIError):  # a lost connection let go of the lock with it
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(hashtext(current_schema() || :key))"), key)
                connection.commit()
        connection.close()


def lock_rows(session: Session, ticket_ids: Iterable[int], generator_ids: Iterable[int] = ()) -> None:
    """Lock, in the order above and politely, what a write to `ticket_ids` may touch: their incidents, the
    tickets and the other tickets of those incidents, their active assignments, what customers were told of
    them, the generators. The tickets are read afresh into the session (what was read before the locks may have
    changed since)."""
    if not is_postgresql(session):
        return
    session.connection()  # the transaction begins here, if it has not yet: what is held belongs to it
    held = _held_rows(session)
    ids = sorted({int(i) for i in ticket_ids if i is not None} - held.tickets.keys())
    generators = sorted({int(g) for g in generator_ids if g is not None})
    if not (ids or generators):
        return  # all of them held already in this transaction (intake marking several reports duplicate)
    if session.info.get(ALL_OR_NOTHING_KEY):  # a busy row fails the transaction, which its caller runs again
        _hold(session, held, _lock_in_order(session, ids, generators, nowait=True))
        return
    for attempt in range(POLITE_TRIES):
        try:
            with session.begin_nested():
                if attempt == 0:
                    locked = _lock_in_order(session, ids, generators, nowait=True)
                else:
                    before = _own_timeouts(session)
                    _set_timeouts(session, f"{POLITE_LOCK_MS}ms", f"{max(POLITE_STATEMENT_MS, len(ids))}ms")
                    locked = _lock_in_order(session, ids, generators)
                    _set_timeouts(session, *before)  # the connection's own settings for the rest of the transaction
            _hold(session, held, locked)  # only now: a busy attempt's savepoint let go of what it had read
            return
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) not in BUSY_SQLSTATES:
                raise
            log.debug("rows busy (try %d): backing off", attempt + 1)
            time.sleep(random.uniform(0.01, 0.05))  # noqa: S311 - jitter (short: back in the queue soon)
    log.info("rows of %d tickets still busy after %d tries: waiting for them", len(ids), POLITE_TRIES)
    _hold(session, held, _lock_in_order(session, ids, generators))


def all_or_nothing(session: Session) -> None:
    """Mark `session` as one whose caller runs a transaction again, politely, when a row it locks is busy (intake's
    batches: rows are seldom busy, and a savepoint costs two statements and some CPU of the one writer). Its
    `lock_rows` takes the rows without a savepoint, with NOWAIT, and a busy row fails the transaction
    (`row_was_busy`)."""
    session.info[ALL_OR_NOTHING_KEY] = True


def row_was_busy(error: BaseException) -> bool:
    """A row that `lock_rows` wanted was locked by another transaction (see `all_or_nothing`)."""
    return isinstance(error, OperationalError) and getattr(error.orig, "sqlstate", None) in BUSY_SQLSTATES


def lock_ticket(session: Session, ticket_id: int) -> Ticket | None:
    """`lock_rows` for one ticket, and the ticket as read under the lock (None if there is none): the row it
    read, or, where it takes no locks (SQLite), the ticket read afresh."""
    lock_rows(session, [ticket_id])
    held = _held_rows(session).tickets.get(ticket_id)
    if held is not None:
        return held
    return session.exec(select(Ticket).where(Ticket.id == ticket_id).with_for_update(key_share=True)
                        .execution_options(populate_existing=True)).first()


@dataclass
class _Rows:
    """Rows locked through `lock_rows`, as read under the lock: tickets, and incidents with their scopes (kept
    here so they stay in the session's identity map, which holds objects only weakly: whoever locked them reads
    them from there, `session.get`, rather than again from the database), and the crews of the tickets' active
    assignments."""

    tickets: dict[int, Ticket] = field(default_factory=dict)
    incidents: dict[int, Incident] = field(default_factory=dict)
    scopes: dict[int, IncidentScope | None] = field(default_factory=dict)  # of the incidents (None: it has none)
    crews: dict[int, set[int]] = field(default_factory=dict)


def _held_rows(session: Session) -> _Rows:
    """What this session's current transaction holds (a new transaction holds nothing)."""
    transaction = session.get_transaction()
    entry = session.info.get(HELD_KEY)
    if entry is None or entry[0] is not transaction:
        entry = session.info[HELD_KEY] = (transaction, _Rows())
    return entry[1]


def _hold(session: Session, held: _Rows, locked: _Rows) -> None:
    held.tickets.update(locked.tickets)
    held.incidents.update(locked.incidents)
    held.scopes.update(locked.scopes)
    held.crews.update(locked.crews)
    for ticket_id, active in locked.crews.items():  # the change log needs not read them again
        note_crews(session, ticket_id, active)


def crews_when_locked(session: Session, ticket_ids: Iterable[int]) -> dict[int, set[int]] | None:
    """The crews actively assigned to each of `ticket_ids` when this transaction locked them (`lock_rows`, on
    PostgreSQL); None unless it locked them all. Under the lock only this transaction can have changed that."""
    crews = _held_rows(session).crews
    ids = list(ticket_ids)
    return {i: crews[i] for i in ids} if all(i in crews for i in ids) else None


def tickets_of_locked_incident(session: Session, incident_id: int) -> list[Ticket] | None:
    """The tickets of `incident_id` as this transaction has them, when it locked the incident (`lock_rows`, on
    PostgreSQL; None otherwise). None is missing: lock_rows locked every ticket of it, and a ticket joins an
    incident only under the incident's lock."""
    held = _held_rows(session)
    if incident_id not in held.incidents:
        return None
    return [t for t in held.tickets.values() if t.incident_id == incident_id]


def _own_timeouts(session: Session) -> tuple[str, str]:
    """The connection's lock and statement timeouts, read once a transaction (`lock_rows` puts them back after
    every polite attempt, so they stay what they were; intake's batches call it once per grouped report)."""
    transaction = session.get_transaction()
    entry = session.info.get(TIMEOUTS_KEY)
    if entry is None or entry[0] is not transaction:
        row = session.execute(text("SELECT current_setting('lock_timeout'), "
                                   "current_setting('statement_timeout')")).one()
        entry = session.info[TIMEOUTS_KEY] = (transaction, (str(row[0]), str(row[1])))
    return entry[1]


def _set_timeouts(session: Session, lock_timeout: str, statement_timeout: str) -> None:
    session.execute(text("SELECT set_config('lock_timeout', :l, true), set_config('statement_timeout', :s, true)"),
                    {"l": lock_timeout, "s": statement_timeout})


@lru_cache
def _locking(what: str, nowait: bool) -> Select[Any]:
    """The locking statements of `_lock_in_order`, built once (building a statement anew costs about as much
    as running it): `what` names the rows, `nowait` makes a busy row fail the statement at once (55P03)."""
    tickets = col(Ticket.id).in_(id_list("tickets"))
    match what:
        case "incidents of tickets":  # looked up by the statement that locks them
            statement = _with_scope(col(Incident.id).in_(select(Ticket.incident_id).where(tickets)))
        case "incidents":
            statement = _with_scope(col(Incident.id).in_(id_list("incidents")))
        case "tickets":
            statement = select(Ticket).where(tickets)
        case "tickets and siblings":  # with every ticket of the incidents just locked
            statement = select(Ticket).where(tickets | col(Ticket.incident_id).in_(id_list("incidents")))
        case "assignments and publications":
            return _assignments_and_publications(nowait)
        case "generators":
            statement = select(MobileGenerator.id).where(col(MobileGenerator.id).in_(id_list("generators")))
        case _:
            raise ValueError(f"no locking statement for {what!r}")
    first = statement.selected_columns[0]  # the id: every lock is taken in the order of its table's ids
    locked = Incident if what.startswith("incidents") else None  # (not the scope read with it)
    statement = statement.order_by(first).with_for_update(key_share=True, nowait=nowait, of=locked)
    if what.startswith(("incidents", "tickets")):  # read afresh into the session: what was read before may be old
        statement = statement.execution_options(populate_existing=True)
    return statement


def _with_scope(where: Any) -> Select[Any]:
    """Incidents with their scope (lead ticket, network device), read in the same statement: whoever locks an
    incident is about to write it, and its scope with it (customers.incidents, customers.updates)."""
    return select(Incident, IncidentScope).outerjoin(
        IncidentScope, col(IncidentScope.incident_id) == Incident.id).where(where)  # type: ignore[arg-type]


def _assignments_and_publications(nowait: bool) -> Select[Any]:
    """Lock the active assignments of `tickets`, then what customers were told of them, in one statement (a
    round trip less for every lock_rows): (ticket id, crew id) of each assignment, then (ticket id, None) of each
    publication. The two locking sub-queries run in that order, each in the order of its table's ids."""
    def locked(statement: Select[Any], name: str) -> Any:
        first = statement.selected_columns[0]
        return statement.order_by(first).with_for_update(key_share=True, nowait=nowait).cte(name)

    assignments = locked(select(Assignment.id, Assignment.ticket_id, Assignment.crew_id).where(
        col(Assignment.ticket_id).in_(id_list("tickets")), col(Assignment.active).is_(True)), "assignments")
    publications = locked(select(TicketPublication.ticket_id).where(
        col(TicketPublication.ticket_id).in_(id_list("tickets"))), "publications")
    return select(assignments.c.ticket_id, assignments.c.crew_id).union_all(
        select(publications.c.ticket_id, null()))  # type: ignore[return-value]


def _lock_in_order(session: Session, ids: list[int], generator_ids: list[int], nowait: bool = False) -> _Rows:
    """Lock and read the rows in the lock order; with `nowait`, a busy row fails the statement at once (55P03)."""
    locked = _Rows()
    tried: set[int] = set()
    incidents: set[int] = set()
    incident_of: dict[int, int | None] = {}  # of the locked tickets, as read under their lock
    for _round in range(3):  # a ticket may have joined an incident between the look-up and its lock: again
        if _round:  # every ticket of `ids` is locked now: what their rows said then holds
            found = {i for i in incident_of.values() if i is not None} - incidents
            if not found:
                break
            rows = session.exec(_locking("incidents", nowait), params={"incidents": sorted(found)})
        elif ids:
            rows = session.exec(_locking("incidents of tickets", nowait), params={"tickets": ids})
        else:
            break  # generators only
        new = []
        for incident, scope in rows.all():
            locked.incidents[incident.id or 0] = incident
            locked.scopes[incident.id or 0] = scope
            new.append(incident.id)
        incidents.update(new)
        untried = [i for i in ids if i not in tried]
        todo = []
        if untried or new:
            statement = _locking("tickets and siblings" if new else "tickets", nowait)
            for ticket in session.exec(statement, params={"tickets": untried, "incidents": new}).all():
                incident_of[ticket.id or 0] = ticket.incident_id
                locked.tickets[ticket.id or 0] = ticket
                if ticket.id not in tried:
                    todo.append(ticket.id or 0)
        ids = sorted(set(ids) | set(todo))
        if todo:
            locked.crews.update({t: set() for t in todo})
            for ticket_id, crew_id in session.exec(_locking("assignments and publications", nowait),
                                                   params={"tickets": todo}):
                if crew_id is not None:
                    locked.crews[ticket_id].add(crew_id)
        tried.update(untried, todo)
    if generator_ids:
        session.exec(_locking("generators", nowait), params={"generators": generator_ids}).all()
    return locked
