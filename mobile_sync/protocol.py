"""The offline-first sync protocol of crew devices: registration, `pull` and `push`.

Devices
  A device (its own id, e.g. a UUID) is registered to one crew; its token names the crew and the device.
  A device pulls and pushes only for its own crew; a device of another crew, or a token of another device,
  is FORBIDDEN; an unregistered device is NOT_FOUND. The whole batch is refused in those cases.

Pull
  `pull(since=None)` is a snapshot of the crew's active jobs (paged by ticket id); every later pull returns
  the tickets that changed for the crew since the cursor: a ticket still actively assigned to the crew comes
  with its assignment, any other (reassigned, unassigned, cancelled) in `removed_ticket_ids`. The cursor is a
  sequence number of the change log (mobile_sync.changes), numbered in commit order, so a change committed
  while a pull runs is in this page or a later one, never skipped. Pages hold at most `limit` change rows.

Push: every client mutation is applied exactly once
  * The ledger `client_mutation` keeps (device, clientMutationId) unique with a fingerprint of the content
    and the answer given. A replay (same id, same content) is answered `duplicate: true` with the original
    answer and changes nothing; the same id with other content is a CONFLICT and changes nothing.
  * Each mutation runs in its own savepoint: a refused one changes nothing but its ledger row (so a replay
    gets the same refusal), the others go on. The batch commits once, before the answer (durable).
  * A batch larger than `max_batch` (SYNC_MAX_BATCH) is refused whole with a clear error: send smaller
    batches. Malformed mutations (missing ticket, status, location or note; bad coordinates; unknown kind;
    blank or over-long id) are answered INVALID/REQUIRED one by one.

Conflict rules
  1. Clock: `occurredAt` is the device clock. It is clamped into [now - max_offline, now] (a device ahead of
     the server is moved back to now; one days behind is moved forward); the difference is recorded on the
     mutation (`skew_seconds`) and the device (`last_skew_seconds`).
  2. Order: the new mutations of a batch are applied in the order of their clamped `occurredAt` (ties keep
     the order they were sent in), not in the order they arrived.
  3. State machine of the field: ASSIGNED -> EN_ROUTE -> ON_SITE -> RESOLVED, forward steps may be skipped
     (ASSIGNED -> ON_SITE); ON_HOLD may be entered from ASSIGNED, EN_ROUTE or ON_SITE and left to EN_ROUTE,
     ON_SITE or RESOLVED. A device may only report EN_ROUTE, ON_SITE, ON_HOLD or RESOLVED (INVALID
     otherwise). Reporting the current status again changes nothing (applied, outcome NO_CHANGE).
  4. Late arrivals: a status that would go backwards but happened (clamped) before the ticket's latest
     status change (e.g. EN_ROUTE sent after RESOLVED by a device that reordered its queue) is merged into
     the history at its own time without changing the current status (applied, outcome HISTORY); a late
     ON_SITE still sets the arrival time when it is earlier. Going backwards otherwise, or anything after
     RESOLVED/CLOSED/CANCELLED, is a CONFLICT ("no going back").
  5. Reassigned away: a status for a job the crew held but that is now with another crew (or back in the
     pool, or cancelled) is refused with CONFLICT and kept in the ticket's history as a CONFLICT event, which
     reaches the dispatcher board like any ticket change.
  6. RESOLVED wins: a RESOLVED for a job the crew led, which a dispatcher has since reassigned or put back
     in the pool (the crew never saw it, it was offline), is applied: the ticket is RESOLVED and the newer
     assignments (the lead's and any assisting crews') are taken off the other crews' routes (their devices
     receive a removal). The fault is fixed; sending a second crew would be wrong. This does not apply to a
     cancelled or resolved ticket, nor to a crew that only assisted on the job (rule 10).
  7. A ticket that does not exist is NOT_FOUND; a ticket never assigned to the crew is FORBIDDEN.
  8. LOCATION is a GPS breadcrumb: stored; the crew's position and `lastSeenAt` move only forward in time
     (an older fix is stored but does not move the crew); the ETA of the crew's next job (first active job
     it leads, ASSIGNED or EN_ROUTE, by route sequence) is recomputed once a batch, from its latest fix, and
     changes when it moves by a minute or more. NOTE adds a note to the history of a ticket the crew holds or held.
  9. ON_SITE sets the arrival time (once) and the ETR (arrival + restore minutes of the area type, from the
     service rules); RESOLVED sets the resolution and power-restored times. Customer-visible changes become
     CUSTOMER rows of the change log: the outbox the customer notifications consume.
 10. Multi-crew jobs: every crew of the job holds an active assignment, the LEAD one and the ASSIST ones
     (role on the assignment); each crew's device pulls the job and its removal like any other. The ticket's
     status follows the lead crew only: a status an assisting crew reports for its own part (EN_ROUTE,
     ON_SITE, ON_HOLD, RESOLVED) is recorded in the ticket's history as an ASSIST event at its own time and
     answered HISTORY (applied), leaving the ticket's status, arrival time and ETA as they are. An assisting
     crew whose assignment was released gets the CONFLICT of rule 5 (RESOLVED does not win for it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, col, select

from core.clock import as_utc, utcnow
from core.errors import DomainError, ErrorCode, Problem
from crews.models import Crew
from dispatch.enums import OPEN_STATUSES, TicketStatus
from dispatch.models import Assignment, AssignmentRole, Ticket, TicketEvent
from dispatch.rules import load_rules
from dispatch.tickets import change_status, record_event, release_assignments
from geo.points import validate_lat_lng
from geo.travel import minutes_between
from mobile_sync.changes import TOPIC_CREW, last_sequence, note_crews
from mobile_sync.models import ClientMutation, CrewBreadcrumb, Device, SyncChange

DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")
MAX_MUTATION_ID = 100
MAX_NOTE = 2000
DEFAULT_MAX_BATCH = 500
DEFAULT_MAX_OFFLINE = timedelta(days=3)
DEFAULT_PULL_LIMIT = 200
SOURCE = "crew device"

KINDS = ("STATUS_CHANGE", "LOCATION", "NOTE")
FIELD_STATUSES = frozenset({TicketStatus.EN_ROUTE, TicketStatus.ON_SITE, TicketStatus.ON_HOLD,
                            TicketStatus.RESOLVED})
RANK = {TicketStatus.NEW: 0, TicketStatus.ASSIGNED: 0, TicketStatus.EN_ROUTE: 1, TicketStatus.ON_SITE: 2,
        TicketStatus.RESOLVED: 3, TicketStatus.CLOSED: 4, TicketStatus.CANCELLED: 4}
FINAL = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED, TicketStatus.CANCELLED})


# ------------------------------------------------------------------ devices


def register_device(session: Session, crew_id: int, device_id: str, name: str | None = None) -> Device:
    """Register `device_id` to crew `crew_id`; registering it again to the same crew is a no-op."""
    device_id = (device_id or "").strip()
    if not DEVICE_ID_PATTERN.match(device_id):
        raise DomainError.one("deviceId", "deviceId must be 1 to 100 letters, digits, '.', '_', ':' or '-'")
    if name is not None and len(name) > 200:
        raise DomainError.one("name", "name may be at most 200 characters")
    if session.get(Crew, crew_id) is None:
        raise DomainError.one("crewId", f"crew {crew_id} does not exist", ErrorCode.NOT_FOUND)
    device = session.get(Device, device_id)
    if device is not None and device.crew_id != crew_id:
        raise DomainError.one("deviceId", f"device {device_id} is registered to another crew", ErrorCode.CONFLICT)
    if device is None:
        device = Device(id=device_id, crew_id=crew_id, name=name)
        session.add(device)
    elif name:
        device.name = name
        session.add(device)
    session.commit()
    return device


def require_device(session: Session, device_id: str, crew_id: int | None, token_device: str | None = None,
                   lock: bool = False) -> Device:
    """The device, checked against the caller: its crew, and its own id when the token names a device."""
    query = select(Device).where(Device.id == (device_id or "").strip())
    if lock:
        query = query.with_for_update()
    device = session.exec(query).first()
    if device is None:
        raise DomainError.one("deviceId", f"device {device_id[:100]!r} is not registered", ErrorCode.NOT_FOUND)
    if crew_id is None or device.crew_id != crew_id:
        raise DomainError.one("deviceId", "this device belongs to another crew", ErrorCode.FORBIDDEN)
    if token_device is not None and token_device != device.id:
        raise DomainError.one("deviceId", "the token was issued to another device", ErrorCode.FORBIDDEN)
    return device


# ------------------------------------------------------------------ pull


@dataclass
class PullResult:
    cursor: str
    has_more: bool
    tickets: list[Ticket]
    assignments: list[Assignment]
    removed_ticket_ids: list[int]


def encode_cursor(seq: int, after_ticket: int | None = None) -> str:
    raw = f"sync1:{seq}" + (f":{after_ticket}" if after_ticket is not None else "")
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, int | None]:
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if parts[0] != "sync1" or len(parts) not in (2, 3):
            raise ValueError(parts[0])
        seq = int(parts[1])
        after = int(parts[2]) if len(parts) == 3 else None
        if seq < 0 or (after is not None and after < 0):
            raise ValueError(seq)
        return seq, after
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise DomainError.one("since", "malformed cursor: pass back a cursor you were given, or none") from exc


def _active_for_crew(session: Session, crew_id: int, ticket_ids: list[int]) -> dict[int, Assignment]:
    if not ticket_ids:
        return {}
    rows = session.exec(select(Assignment).where(col(Assignment.active).is_(True), Assignment.crew_id == crew_id,
                                                 col(Assignment.ticket_id).in_(ticket_ids)))
    return {a.ticket_id: a for a in rows}


def pull(session: Session, crew_id: int, since: str | None = None, limit: int = DEFAULT_PULL_LIMIT) -> PullResult:
    """What changed for the crew since the cursor (see the module docstring)."""
    if not 1 <= limit <= 1000:
        raise DomainError.one("limit", "limit must be between 1 and 1000")
    connection = session.connection()
    if since is None or since == "":
        base, after = last_sequence(connection), 0
    else:
        base, after = decode_cursor(since)
        if base > last_sequence(connection):
            raise DomainError.one("since", "cursor is ahead of this server's change log: pull again without one",
                                  ErrorCode.CONFLICT)
    if after is not None:  # snapshot page: the crew's active jobs by ticket id, as of sequence `base` or later
        rows = list(session.exec(select(Assignment).where(
            col(Assignment.active).is_(True), Assignment.crew_id == crew_id, col(Assignment.ticket_id) > after)
            .order_by(col(Assignment.ticket_id)).limit(limit + 1)))
        page, more = rows[:limit], len(rows) > limit
        tickets = _tickets(session, [a.ticket_id for a in page])
        cursor = encode_cursor(base, page[-1].ticket_id) if more else encode_cursor(base)
        return PullResult(cursor, more, tickets, page, [])
    changes = list(session.exec(select(SyncChange).where(
        SyncChange.topic == TOPIC_CREW, SyncChange.crew_id == crew_id, col(SyncChange.seq) > base)
        .order_by(col(SyncChange.seq)).limit(limit + 1)))
    page, more = changes[:limit], len(changes) > limit
    ticket_ids = list(dict.fromkeys(c.ticket_id for c in page if c.ticket_id is not None))
    active = _active_for_crew(session, crew_id, ticket_ids)
    kept = [t for t in ticket_ids if t in active]
    return PullResult(encode_cursor(page[-1].seq if page else base), more, _tickets(session, kept),
                      [active[t] for t in kept], [t for t in ticket_ids if t not in active])


def _tickets(session: Session, ids: list[int]) -> list[Ticket]:
    if not ids:
        return []
    found = {t.id: t for t in session.exec(select(Ticket).where(col(Ticket.id).in_(ids)))}
    return [found[i] for i in ids if i in found]


# ------------------------------------------------------------------ push


@dataclass
class MutationIn:
    """One client mutation as the device sent it (ids still raw: the domain answers for bad ones)."""

    client_mutation_id: str
    kind: str
    occurred_at: datetime
    ticket_id: str | int | None = None
    status: str | None = None
    note: str | None = None
    lat: float | None = None
    lng: float | None = None

    def fingerprint(self) -> str:
        content = [self.kind, None if self.ticket_id is None else str(self.ticket_id), self.status, self.note,
                   self.lat, self.lng, as_utc(self.occurred_at).isoformat()]
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


@dataclass
class MutationResult:
    client_mutation_id: str
    applied: bool
    duplicate: bool = False
    error: Problem | None = None
    outcome: str | None = None


@dataclass
class PushSettings:
    max_batch: int = DEFAULT_MAX_BATCH
    max_offline: timedelta = DEFAULT_MAX_OFFLINE


@dataclass
class _Outcome:
    outcome: str
    event: TicketEvent | None = None
    problem: Problem | None = None  # set for answers that keep their effect (CONFLICT kept in history)
    crumb: CrewBreadcrumb | None = None  # a GPS fix, stored with the ledger row it belongs to


@dataclass
class PushResult:
    results: list[MutationResult] = field(default_factory=list)


def parse_ticket_id(value: str | int | None) -> int | None:
    """A plain number or a global id ("Ticket:12" in base64); None when it is neither."""
    if value is None:
        return None
    text = str(value).strip()
    if text.isascii() and text.isdigit():  # str.isdigit() also takes '²', which int() refuses
        return int(text)
    try:
        kind, _, raw = base64.b64decode(text.encode(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None
    return int(raw) if kind == "Ticket" and raw.isascii() and raw.isdigit() else None


def _stored_result(row: ClientMutation, duplicate: bool) -> MutationResult:
    error = None
    if row.error_code:
        error = Problem([row.error_field] if row.error_field else None, row.error_message or "",
                        ErrorCode(row.error_code))
    return MutationResult(row.client_mutation_id, row.applied, duplicate, error, row.outcome)


def push(session: Session, crew_id: int | None, device_id: str, mutations: list[MutationIn],
         token_device: str | None = None, settings: PushSettings | None = None, now: datetime | None = None,
         retries: int = 3) -> PushResult:
    """Apply a batch exactly once per mutation and commit it; the results are in the order sent.

    A transaction that loses a deadlock or a lock race (PostgreSQL deadlock/serialisation failure, SQLite
    busy) changed nothing: the batch is run again, up to `retries` times.
    """
    settings = settings or PushSettings()
    if len(mutations) > settings.max_batch:
        raise DomainError.one("mutations", f"a batch may hold at most {settings.max_batch} mutations; "
                              f"this one has {len(mutations)}: send it in parts", ErrorCode.INVALID)
    for attempt in range(retries + 1):
        try:
            result = _push_once(session, crew_id, device_id, mutations, token_device, settings, now or utcnow())
            session.commit()
            return result
        except (OperationalError, DBAPIError) as exc:
            session.rollback()
            if attempt == retries or not _retryable(exc):
                raise
    raise AssertionError("unreachable")


def _retryable(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    # Also a unique-key race on the ledger: two copies of one batch sent at once (SQLite has no row lock on
    # the device); run again, the second finds the first's rows and answers them as duplicates.
    return any(s in text for s in ("deadlock", "could not serialize", "database is locked", "busy",
                                   "unique constraint", "duplicate key"))


def _push_once(session: Session, crew_id: int | None, device_id: str, mutations: list[MutationIn],
               token_device: str | None, settings: PushSettings, now: datetime) -> PushResult:
    if session.get_bind().dialect.name == "sqlite":
        # Take SQLite's write lock first (waiting for it): a transaction that reads first and writes later is
        # refused at once, without waiting, when another writer committed in between.
        session.execute(text("UPDATE device SET last_seen_at = last_seen_at WHERE id = :id"), {"id": device_id})
    device = require_device(session, device_id, crew_id, token_device, lock=True)
    results: list[MutationResult | None] = [None] * len(mutations)
    ids = [(m.client_mutation_id or "").strip() for m in mutations]
    known = {row.client_mutation_id: row for row in session.exec(select(ClientMutation).where(
        ClientMutation.device_id == device.id, col(ClientMutation.client_mutation_id).in_(
            [i for i in ids if i and len(i) <= MAX_MUTATION_ID])))}
    in_batch: dict[str, tuple[str, int]] = {}
    todo: list[tuple[datetime, int, MutationIn, ClientMutation]] = []
    for index, (m, cmid) in enumerate(zip(mutations, ids, strict=True)):
        if not cmid or len(cmid) > MAX_MUTATION_ID:
            results[index] = MutationResult(cmid, False, error=Problem(
                ["mutations", str(index), "clientMutationId"],
                f"clientMutationId must be 1 to {MAX_MUTATION_ID} characters", ErrorCode.INVALID))
            continue
        fingerprint = m.fingerprint()
        if cmid in known:
            row = known[cmid]
            results[index] = _stored_result(row, True) if row.fingerprint == fingerprint else _reused(cmid, index)
            continue
        if cmid in in_batch:
            # The same content again: answered below from the first one; other content: a CONFLICT.
            if in_batch[cmid][0] != fingerprint:
                results[index] = _reused(cmid, index)
            continue
        in_batch[cmid] = (fingerprint, index)
        occurred = as_utc(m.occurred_at)
        effective = min(max(occurred, now - settings.max_offline), now)
        row = ClientMutation(device_id=device.id, client_mutation_id=cmid, crew_id=device.crew_id,
                             fingerprint=fingerprint, kind=str(getattr(m.kind, "value", m.kind))[:20],
                             ticket_id=parse_ticket_id(m.ticket_id),
                             status=str(getattr(m.status, "value", m.status))[:20] if m.status else None,
                             note=m.note, lat=m.lat, lng=m.lng, occurred_at=occurred, effective_at=effective,
                             skew_seconds=(occurred - effective).total_seconds(), received_at=now)
        todo.append((effective, index, m, row))
    todo.sort(key=lambda item: (item[0], item[1]))
    crumbs: list[tuple[ClientMutation, CrewBreadcrumb]] = []
    last_fix: datetime | None = None  # the latest GPS fix applied: the next job's ETA is refreshed from it
    for effective, index, m, row in todo:
        crumb: CrewBreadcrumb | None = None
        try:
            if _writes_after_checks(m):
                outcome = _apply(session, device, m, effective)
            else:
                with session.begin_nested():  # a refused mutation leaves nothing behind but its ledger row
                    outcome = _apply(session, device, m, effective)
            row.applied = outcome.problem is None
            row.outcome = outcome.outcome
            row.event_id = outcome.event.id if outcome.event is not None else None
            crumb, problem = outcome.crumb, outcome.problem
        except DomainError as error:
            row.applied, row.outcome = False, "REFUSED"
            problem = error.problems[0]
        if problem is not None:
            row.error_code, row.error_message = problem.code.value, problem.message
            row.error_field = ".".join(problem.field) if problem.field else None
        if crumb is not None:
            crumbs.append((row, crumb))
            if row.outcome == "APPLIED":
                last_fix = effective
        results[index] = _stored_result(row, False)
    if last_fix is not None:
        _refresh_next_eta(session, device.crew_id, last_fix)
    # The ledger rows in one insert, then the breadcrumbs that point at them.
    session.add_all([row for *_rest, row in todo])
    if crumbs:
        session.flush()
        for row, crumb in crumbs:
            crumb.mutation_id = row.id or 0
        session.add_all([crumb for _row, crumb in crumbs])
    for index, cmid in enumerate(ids):
        if results[index] is None:  # a repeat inside the same batch: the first one's answer, as a duplicate
            first = results[in_batch[cmid][1]]
            assert first is not None
            results[index] = MutationResult(cmid, first.applied, True, first.error, first.outcome)
    if todo:
        latest = max(todo, key=lambda item: item[0])
        device.last_skew_seconds = latest[3].skew_seconds
    device.last_seen_at = now
    session.add(device)
    session.flush()
    return PushResult([r for r in results if r is not None])


def _writes_after_checks(m: MutationIn) -> bool:
    """A LOCATION checks everything before it writes anything, so it needs no savepoint of its own."""
    return str(getattr(m.kind, "value", m.kind)) == "LOCATION"


def _reused(cmid: str, index: int) -> MutationResult:
    return MutationResult(cmid, False, False, Problem(
        ["mutations", str(index), "clientMutationId"],
        f"clientMutationId {cmid[:100]} was already used for a different mutation", ErrorCode.CONFLICT))


# ------------------------------------------------------------------ applying one mutation


def _apply(session: Session, device: Device, m: MutationIn, at: datetime) -> _Outcome:
    kind = str(getattr(m.kind, "value", m.kind))
    if kind == "LOCATION":
        return _apply_location(session, device, m, at)
    if kind not in KINDS:
        raise DomainError.one("kind", f"unknown mutation kind {kind[:40]!r}")
    ticket = _require_ticket(session, m)
    # One read for both questions: did this crew ever hold the job, and who holds it now.
    rows = list(session.exec(select(Assignment).where(Assignment.ticket_id == ticket.id, or_(
        Assignment.crew_id == device.crew_id, col(Assignment.active).is_(True)))))
    held = next((a for a in rows if a.crew_id == device.crew_id), None)
    active = next((a for a in rows if a.active and a.role == AssignmentRole.LEAD), None)
    note_crews(session, ticket.id or 0, {a.crew_id for a in rows if a.active})
    if held is None:
        raise DomainError.one("ticketId", f"ticket {ticket.number} was never assigned to this crew",
                              ErrorCode.FORBIDDEN)
    if kind == "NOTE":
        note = (m.note or "").strip()
        if not note:
            raise DomainError.one("note", "a NOTE needs a note", ErrorCode.REQUIRED)
        if len(note) > MAX_NOTE:
            raise DomainError.one("note", f"a note may be at most {MAX_NOTE} characters")
        return _Outcome("APPLIED", record_event(session, ticket, SOURCE, note=f"{device.id}: {note}", kind="NOTE",
                                                at=at))
    if any(a.active and a.crew_id == device.crew_id and a.role == AssignmentRole.ASSIST for a in rows):
        return _assisting_status(session, device, m, ticket, at)
    led = any(a.crew_id == device.crew_id and a.role == AssignmentRole.LEAD for a in rows)
    return _apply_status(session, device, m, ticket, active, at, led)


def _require_ticket(session: Session, m: MutationIn) -> Ticket:
    if m.ticket_id is None or str(m.ticket_id).strip() == "":
        raise DomainError.one("ticketId", f"a {m.kind} needs a ticketId", ErrorCode.REQUIRED)
    ticket_id = parse_ticket_id(m.ticket_id)
    ticket = session.get(Ticket, ticket_id) if ticket_id is not None else None
    if ticket is None:
        raise DomainError.one("ticketId", f"ticket {str(m.ticket_id)[:60]} does not exist", ErrorCode.NOT_FOUND)
    return ticket


def _status_of(m: MutationIn) -> TicketStatus:
    if m.status is None:
        raise DomainError.one("status", "a STATUS_CHANGE needs a status", ErrorCode.REQUIRED)
    try:
        status = TicketStatus(str(getattr(m.status, "value", m.status)))
    except ValueError as exc:
        raise DomainError.one("status", f"unknown status {str(m.status)[:40]!r}") from exc
    if status not in FIELD_STATUSES:
        raise DomainError.one("status", f"a device may report EN_ROUTE, ON_SITE, ON_HOLD or RESOLVED, "
                              f"not {status.value}")
    return status


def _note(device: Device, status: TicketStatus, m: MutationIn, extra: str = "") -> str:
    text = f"{status.value} from device {device.id}{extra}"
    return text + (f": {m.note.strip()[:MAX_NOTE]}" if m.note and m.note.strip() else "")


def _last_status_at(session: Session, ticket: Ticket) -> datetime | None:
    return session.exec(select(TicketEvent.at).where(TicketEvent.ticket_id == ticket.id,
                                                     TicketEvent.kind == "STATUS")
                        .order_by(col(TicketEvent.at).desc()).limit(1)).first()


def _assisting_status(session: Session, device: Device, m: MutationIn, ticket: Ticket, at: datetime) -> _Outcome:
    """Rule 10: an assisting crew's status is history; the ticket follows its lead crew."""
    status = _status_of(m)
    event = TicketEvent(ticket_id=ticket.id or 0, at=max(at, ticket.created_at), status=ticket.status,
                        kind="ASSIST", source=SOURCE, note=_note(device, status, m, " (assisting crew)"))
    session.add(event)
    session.flush()
    return _Outcome("HISTORY", event)


def _apply_status(session: Session, device: Device, m: MutationIn, ticket: Ticket, active: Assignment | None,
                  at: datetime, led: bool = True) -> _Outcome:
    status = _status_of(m)
    current = TicketStatus(ticket.status)
    if active is None or active.crew_id != device.crew_id:
        if status == TicketStatus.RESOLVED and current in OPEN_STATUSES and led:
            return _resolved_wins(session, device, m, ticket, active, at)
        where = f"crew {active.crew_id}" if active is not None else f"no crew ({current.value})"
        event = record_event(session, ticket, SOURCE, kind="CONFLICT", at=at,
                             note=_note(device, status, m, f" refused: the job is now with {where}"))
        return _Outcome("CONFLICT", event, Problem(["ticketId"], f"ticket {ticket.number} was reassigned away "
                                                   f"from this crew; it is now with {where}", ErrorCode.CONFLICT))
    if status == current:
        return _Outcome("NO_CHANGE")
    last_at = _last_status_at(session, ticket)
    late = last_at is not None and at < last_at
    backwards = current in FINAL or (status != TicketStatus.ON_HOLD and current != TicketStatus.ON_HOLD
                                     and RANK[status] < RANK[current])
    if backwards:
        if late:
            return _history(session, device, m, ticket, status, at)
        raise DomainError.one("status", f"a {current.value} ticket cannot go back to {status.value}",
                              ErrorCode.CONFLICT)
    if late and current != TicketStatus.ON_HOLD and status == TicketStatus.ON_HOLD:
        return _history(session, device, m, ticket, status, at)
    at = max(at, ticket.created_at)  # nothing happens to a ticket before it was reported
    event = change_status(session, ticket, status, SOURCE, note=_note(device, status, m), at=at)
    _after_status(session, device, ticket, status, at)
    return _Outcome("APPLIED", event)


def _history(session: Session, device: Device, m: MutationIn, ticket: Ticket, status: TicketStatus,
             at: datetime) -> _Outcome:
    """A late report merged into the history at its own time; the current status stays."""
    event = TicketEvent(ticket_id=ticket.id or 0, at=at, status=status.value, kind="STATUS", source=SOURCE,
                        note=_note(device, status, m, " (reported late)"))
    session.add(event)
    if status == TicketStatus.ON_SITE and (ticket.responded_at is None or at < ticket.responded_at):
        ticket.responded_at = at
        session.add(ticket)
    session.flush()
    return _Outcome("HISTORY", event)


def _after_status(session: Session, device: Device, ticket: Ticket, status: TicketStatus, at: datetime) -> None:
    if status == TicketStatus.ON_SITE:
        # The customer-updates hook of record_event estimates the ETR (repair history, else the rules); this
        # is the rule for tickets it leaves without one.
        if ticket.etr is None:
            minutes = load_rules().raw["restore_minutes_after_arrival"].get(ticket.area_type, 180)
            ticket.etr = (ticket.responded_at or at) + timedelta(minutes=int(minutes))
    elif status == TicketStatus.RESOLVED:
        if ticket.power_restored_at is None:
            ticket.power_restored_at = at
    elif status == TicketStatus.EN_ROUTE:
        crew = session.get(Crew, device.crew_id)
        if crew is not None and ticket.lat is not None and ticket.lng is not None:
            origin = (crew.lat if crew.lat is not None else crew.home_lat,
                      crew.lng if crew.lng is not None else crew.home_lng)
            ticket.eta = at + timedelta(minutes=minutes_between(origin, (ticket.lat, ticket.lng), ticket.area_type))
    session.add(ticket)
    session.flush()


def _resolved_wins(session: Session, device: Device, m: MutationIn, ticket: Ticket, active: Assignment | None,
                   at: datetime) -> _Outcome:
    extra = " (the crew resolved it before learning of the reassignment"
    released = release_assignments(session, [ticket.id or 0]) if active is not None else []
    if released:
        extra += f"; taken off the route of crew {', '.join(str(a.crew_id) for a in released)}"
    at = max(at, ticket.created_at)
    event = change_status(session, ticket, TicketStatus.RESOLVED, SOURCE, note=_note(device, TicketStatus.RESOLVED,
                                                                                      m, extra + ")"), at=at)
    _after_status(session, device, ticket, TicketStatus.RESOLVED, at)
    return _Outcome("RESOLVED_WINS", event)


def _apply_location(session: Session, device: Device, m: MutationIn, at: datetime) -> _Outcome:
    if m.lat is None or m.lng is None:
        raise DomainError.one("location", "a LOCATION needs a location", ErrorCode.REQUIRED)
    problems = validate_lat_lng(m.lat, m.lng)
    if problems:
        raise DomainError.one("location", "; ".join(problems))
    crumb = CrewBreadcrumb(crew_id=device.crew_id, device_id=device.id, mutation_id=0, lat=float(m.lat),
                           lng=float(m.lng), at=at)
    crew = session.get(Crew, device.crew_id)
    if crew is None:
        raise DomainError.one("deviceId", "the device's crew no longer exists", ErrorCode.NOT_FOUND)
    if crew.last_seen_at is not None and at < crew.last_seen_at:
        return _Outcome("HISTORY", crumb=crumb)
    crew.lat, crew.lng, crew.last_seen_at = float(m.lat), float(m.lng), at
    session.add(crew)
    return _Outcome("APPLIED", crumb=crumb)


def _refresh_next_eta(session: Session, crew_id: int, at: datetime) -> None:
    """The ETA of the crew's next job from its latest position: once a batch, after its last GPS fix (a batch of
    breadcrumbs replayed after an offline spell would otherwise recompute it once per fix)."""
    crew = session.get(Crew, crew_id)
    if crew is None or crew.lat is None or crew.lng is None:
        return
    next_job = session.exec(select(Assignment, Ticket).join(Ticket, col(Ticket.id) == col(Assignment.ticket_id))
                            .where(col(Assignment.active).is_(True), Assignment.crew_id == crew.id,
                                   Assignment.role == AssignmentRole.LEAD.value,
                                   col(Ticket.status).in_([TicketStatus.ASSIGNED.value, TicketStatus.EN_ROUTE.value]))
                            .order_by(col(Assignment.sequence))).first()
    if next_job is not None:
        _assignment, ticket = next_job
        if ticket.lat is not None and ticket.lng is not None:
            eta = at + timedelta(minutes=minutes_between((crew.lat, crew.lng), (ticket.lat, ticket.lng),
                                                         ticket.area_type))
            if ticket.eta is None or abs((eta - ticket.eta).total_seconds()) >= 60:
                ticket.eta = eta
                session.add(ticket)
