"""Restoration updates: ETA and ETR published from ticket changes (re-published only when they move by more
than the margin), incident status kept in step with its tickets, and the notifications of every change.

`ticket_changed` is the one hook dispatch calls (from `record_event` and after a plan is committed); it runs
in the caller's transaction, so a change and its notifications commit together. The incident of a changed
ticket is brought up to date once per transaction, not once per ticket: its id is noted in `session.info` and
the incident is refreshed at the end of `publishing_together` or, at the latest, in `before_commit` (a plan that
moves hundreds of tickets of one incident would otherwise re-read the incident's tickets for each of them).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, or_
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from core.clock import utcnow
from customers.config import CustomerSettings, get_customer_settings
from customers.models import Customer, IncidentScope, NetworkDevice, TicketCustomer, TicketPublication
from customers.notify import (
    Change,
    Recipient,
    enqueue,
    enqueue_many,
    local_time,
    recipient_from_fields,
    recipient_of_caller,
    recipient_of_customer,
)
from dispatch.enums import FIELD_KINDS, IncidentStatus, TicketStatus
from dispatch.models import Incident, Ticket
from dispatch.rules import load_rules

FIELD = frozenset(k.value for k in FIELD_KINDS)
WORKING = frozenset({TicketStatus.ASSIGNED.value, TicketStatus.EN_ROUTE.value, TicketStatus.ON_SITE.value})
DONE = frozenset({TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value})


# ------------------------------------------------------------------ estimates


_history_cache: dict[tuple[str, str], tuple[float, list[float]]] = {}
HISTORY_CACHE_SECONDS = 60.0


def clear_estimate_cache() -> None:
    _history_cache.clear()


def repair_minutes(session: Session, kind: str, area_type: str, settings: CustomerSettings | None = None) -> int:
    """Minutes from arrival to restoration: the median of recent resolved tickets of the kind, once there are
    enough of them; until then the published commitment for the area type (3 h urban, 4 h rural, ...).

    The history is read at most once a minute per database and kind (a plan touches hundreds of tickets)."""
    settings = settings or get_customer_settings()
    key = (str(session.get_bind().engine.url), kind)
    cached = _history_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < HISTORY_CACHE_SECONDS:
        durations = cached[1]
    else:
        durations = _history(session, kind, settings)
        _history_cache[key] = (time.monotonic(), durations)
    if len(durations) >= settings.repair_history_min:
        return max(5, round(statistics.median(durations)))
    return int(load_rules().raw["restore_minutes_after_arrival"].get(area_type, 180))


def _history(session: Session, kind: str, settings: CustomerSettings) -> list[float]:
    rows = session.exec(
        select(Ticket.responded_at, Ticket.resolved_at)
        .where(Ticket.kind == kind, col(Ticket.responded_at).is_not(None), col(Ticket.resolved_at).is_not(None),
               col(Ticket.duplicate_of_id).is_(None))
        .order_by(col(Ticket.resolved_at).desc()).limit(settings.repair_history_size)).all()
    return [(done - arrived).total_seconds() / 60 for arrived, done in rows if done and arrived and done > arrived]


def estimate_etr(session: Session, ticket: Ticket, settings: CustomerSettings | None = None) -> datetime | None:
    """Arrival (actual once on site, else the ETA, else the on-site deadline) + the repair estimate."""
    if ticket.status in DONE:
        return ticket.power_restored_at or ticket.resolved_at
    arrival = ticket.responded_at if ticket.status == TicketStatus.ON_SITE and ticket.responded_at else \
        ticket.eta or ticket.respond_by
    if arrival is None:
        return None
    return arrival + timedelta(minutes=repair_minutes(session, ticket.kind, ticket.area_type, settings))


def moved(new: datetime | None, old: datetime | None, settings: CustomerSettings) -> bool:
    if new is None or old is None:
        return new is not old
    return abs(new - old) > timedelta(minutes=settings.publish_margin_minutes)


def _stamp(value: datetime | None) -> str:
    return value.strftime("%Y%m%d%H%M") if value else "none"


# ------------------------------------------------------------------ who hears


def _callers(session: Session, tickets: Sequence[Ticket]) -> list[Recipient]:
    ids = [t.id for t in tickets if t.id is not None]
    links = {link.ticket_id: link.customer_id for link in session.exec(
        select(TicketCustomer).where(col(TicketCustomer.ticket_id).in_(ids)))} if ids else {}
    customers = {c.id: c for c in session.exec(select(Customer).where(col(Customer.id).in_(list(links.values()))))} \
        if links else {}
    found: list[Recipient] = []
    for ticket in tickets:
        customer = customers.get(links.get(ticket.id or 0))
        recipient = recipient_of_customer(customer) if customer is not None else \
            recipient_of_caller(ticket.contact_phone, ticket.preferred_channels)
        if recipient is not None:
            found.append(recipient)
    return found


def recipients_of_tickets(session: Session, ticket_ids: Sequence[int]) -> dict[int, list[Recipient]]:
    """Who hears of each ticket: its caller and the callers of reports that joined it as duplicates (one query
    for them all: every status change of a field ticket asks, and a plan changes hundreds)."""
    found: dict[int, list[Recipient]] = {}
    for start in range(0, len(ticket_ids), 500):
        chunk = list(ticket_ids[start:start + 500])
        rows = session.exec(
            select(Ticket.id, Ticket.duplicate_of_id, Ticket.contact_phone, Ticket.preferred_channels, Customer.id,
                   Customer.account_number, Customer.phone, Customer.email, Customer.language,
                   Customer.preferred_channels, Customer.critical, Customer.quiet_hours)
            .select_from(Ticket)
            .outerjoin(TicketCustomer, col(TicketCustomer.ticket_id) == Ticket.id)
            .outerjoin(Customer, col(Customer.id) == TicketCustomer.customer_id)
            .where(or_(col(Ticket.id).in_(chunk), col(Ticket.duplicate_of_id).in_(chunk)))
            .order_by(col(Ticket.id)))
        wanted = set(chunk)
        for ticket_id, duplicate_of, phone, channels, *customer in rows:
            # A ticket asked for is its own original even if it is a duplicate of another ticket asked for.
            original = ticket_id if ticket_id in wanted else duplicate_of
            recipient = recipient_from_fields(*customer) if customer[0] is not None else \
                recipient_of_caller(phone, channels)
            if recipient is not None:
                found.setdefault(original, []).append(recipient)
            if ticket_id in wanted and duplicate_of in wanted and recipient is not None:
                found.setdefault(duplicate_of, []).append(recipient)
    return {ticket_id: _unique(recipients) for ticket_id, recipients in found.items()}


def ticket_recipients(session: Session, ticket: Ticket) -> list[Recipient]:
    """The caller of the ticket and the callers of reports that joined it as duplicates."""
    return recipients_of_tickets(session, [ticket.id or 0]).get(ticket.id or 0, [])


def devices_under(session: Session, device: str) -> tuple[list[str], list[str]]:
    """(every device at or below `device`, the transformers among them)."""
    found, transformers, frontier = [device], [], [device]
    rows = session.exec(select(NetworkDevice.id, NetworkDevice.parent_id, NetworkDevice.kind)).all()
    below: dict[str, list[tuple[str, str]]] = {}
    kinds = {}
    for device_id, parent, kind in rows:
        kinds[device_id] = kind
        if parent:
            below.setdefault(parent, []).append((device_id, kind))
    while frontier:
        current = frontier.pop()
        if kinds.get(current) == "TRANSFORMER":
            transformers.append(current)
        for child, _kind in below.get(current, []):
            found.append(child)
            frontier.append(child)
    return found, transformers


def incident_recipients(session: Session, incident: Incident) -> list[Recipient]:
    """Every affected customer: those on the predicted device (when the network placed it) and every caller."""
    recipients: list[Recipient] = []
    scope = session.get(IncidentScope, incident.id)
    if scope is not None and scope.device and scope.device_kind in {"TRANSFORMER", "FUSE", "SECTION", "FEEDER"}:
        _devices, transformers = devices_under(session, scope.device)
        columns = (Customer.id, Customer.account_number, Customer.phone, Customer.email, Customer.language,
                   Customer.preferred_channels, Customer.critical, Customer.quiet_hours)
        for start in range(0, len(transformers), 500):
            chunk = transformers[start:start + 500]
            for row in session.exec(select(*columns).where(col(Customer.transformer).in_(chunk))):
                recipients.append(recipient_from_fields(*row))  # plain rows: a feeder may have 10 000s
    members = list(session.exec(select(Ticket).where(Ticket.incident_id == incident.id)))
    recipients.extend(_callers(session, members))
    return _unique(recipients)


def _unique(recipients: Iterable[Recipient]) -> list[Recipient]:
    return list({r.key: r for r in recipients}.values())


# ------------------------------------------------------------------ the hook


def ticket_changed(session: Session, ticket: Ticket, at: datetime | None = None,
                   settings: CustomerSettings | None = None) -> None:
    """Publish what changed on a field ticket: crew assigned with ETA, ETA moved, on site, ETR (moved by more
    than the margin), restored; then bring its incident up to date.

    Inside `publishing_together` the ticket is only noted, and published with the others at its end."""
    if ticket.id is None or ticket.kind not in FIELD or ticket.duplicate_of_id is not None:
        return
    if ticket.status == TicketStatus.CANCELLED:
        release_duplicates(session, ticket)
    noted: dict[int, tuple[Ticket, datetime | None, CustomerSettings | None]] | None = \
        session.info.get(TOGETHER_KEY)
    if noted is not None:
        noted[ticket.id] = (ticket, at, settings)
        return
    _publish(session, [(ticket, at, settings)])


@contextmanager
def publishing_together(session: Session) -> Iterator[None]:
    """Within the block, changed tickets are noted; at its end each is published once, from its final state,
    with one read of their publications, one of their recipients and one insert of their notifications (a plan
    commit changes hundreds of tickets); then each incident they touched is refreshed once. Nested blocks
    publish with the outermost."""
    if TOGETHER_KEY in session.info:
        yield
        return
    noted: dict[int, tuple[Ticket, datetime | None, CustomerSettings | None]] = {}
    session.info[TOGETHER_KEY] = noted
    try:
        yield
    finally:
        session.info.pop(TOGETHER_KEY, None)
    _publish(session, [entry for entry in noted.values()
                       if entry[0].kind in FIELD and entry[0].duplicate_of_id is None])
    refresh_changed_incidents(session)


def _publish(session: Session, entries: Sequence[tuple[Ticket, datetime | None, CustomerSettings | None]]) -> None:
    fresh: dict[int, TicketPublication] = session.info.setdefault(NEW_PUBLICATIONS_KEY, {})
    # A fresh report says nothing yet (intake stays cheap): no publication is read or written for it.
    entries = [e for e in entries if not (e[0].status == TicketStatus.NEW and e[0].eta is None
                                          and e[0].incident_id is None and e[0].etr is None)]
    if not entries:
        return
    with session.no_autoflush:  # these reads don't need the tickets' new state: they are written once, below
        # A publication made earlier in this transaction may not be flushed yet: the query would not see it.
        unknown = [t.id for t, _at, _s in entries if t.id not in fresh]
        stored = {p.ticket_id: p for p in session.exec(
            select(TicketPublication).where(col(TicketPublication.ticket_id).in_(unknown)))} if unknown else {}
    decided: list[tuple[Ticket, list[Change], datetime, CustomerSettings]] = []
    now = utcnow()
    for ticket, at, settings in entries:
        settings = settings or get_customer_settings()
        at = at or now
        assert ticket.id is not None
        publication = fresh.get(ticket.id) or stored.get(ticket.id)
        if publication is None:
            publication = TicketPublication(ticket_id=ticket.id, published_at=at)
            fresh[ticket.id] = publication
        with session.no_autoflush:
            etr = estimate_etr(session, ticket, settings)
        changes = _changes(ticket, publication, etr, at, settings)
        session.add(publication)
        session.add(ticket)
        if changes:
            decided.append((ticket, changes, at, settings))
        if ticket.incident_id is not None:
            note_incident_changed(session, ticket.incident_id, at, settings)
    if decided:
        recipients = recipients_of_tickets(session, [ticket.id or 0 for ticket, *_rest in decided])
        inserts: dict[int, list[tuple[Change, list[Recipient], datetime]]] = {}
        for ticket, changes, at, settings in decided:  # one insert per settings: in a plan, one in all
            inserts.setdefault(id(settings), []).extend(
                (change, recipients.get(ticket.id or 0, []), at) for change in changes)
        settings_of = {id(settings): settings for *_rest, settings in decided}
        for settings_id, items in inserts.items():
            enqueue_many(session, items, settings_of[settings_id])


def _changes(ticket: Ticket, publication: TicketPublication, etr: datetime | None, at: datetime,
             settings: CustomerSettings) -> list[Change]:
    """What the customers of `ticket` hear of its new state, given what they last heard (`publication`,
    brought up to date here)."""
    changes: list[Change] = []
    values: dict[str, object] = {"number": ticket.number}
    in_incident = ticket.incident_id is not None
    values.update(eta=local_time(ticket.eta, settings), etr=local_time(etr, settings))
    scope = f"t{ticket.id}"
    if ticket.status in {TicketStatus.ASSIGNED, TicketStatus.EN_ROUTE} and ticket.eta is not None:
        if publication.eta is None:
            changes.append(Change("CREW_ASSIGNED", scope, _stamp(ticket.eta), dict(values), ticket_id=ticket.id))
            publication.eta, publication.etr = ticket.eta, etr
        elif moved(ticket.eta, publication.eta, settings):
            changes.append(Change("ETA_CHANGED", scope, _stamp(ticket.eta), dict(values), ticket_id=ticket.id))
            publication.eta = ticket.eta
    if ticket.status == TicketStatus.ON_SITE and publication.status != TicketStatus.ON_SITE:
        # Arrival is news: the on-site message carries the ETR from the actual arrival, so it is published
        # whatever the margin (no extra message is sent for it).
        changes.append(Change("ON_SITE", scope, "1", dict(values), ticket_id=ticket.id))
        publication.etr = etr
    if ticket.status in WORKING and etr is not None and publication.etr is not None \
            and moved(etr, publication.etr, settings) and not in_incident:
        changes.append(Change("ETR_CHANGED", scope, _stamp(etr), dict(values), ticket_id=ticket.id))
        publication.etr = etr
    elif ticket.status in WORKING and publication.etr is None:
        publication.etr = etr
    if ticket.status == TicketStatus.NEW:  # back in the pool or reopened: the next crew is announced afresh
        publication.eta = None
        if publication.status in DONE:  # reopened: power is off again
            ticket.power_restored_at = None
    if ticket.status in DONE:
        ticket.power_restored_at = ticket.power_restored_at or ticket.resolved_at or at
        if publication.status not in DONE and not in_incident:
            restored = {**values, "restored": local_time(ticket.power_restored_at, settings)}
            changes.append(Change("RESTORED", scope, _stamp(ticket.power_restored_at), restored, ticket_id=ticket.id))
    publication.status = ticket.status
    publication.published_at = at
    ticket.etr = publication.etr if ticket.status not in DONE else ticket.etr
    return changes


def release_duplicates(session: Session, ticket: Ticket) -> Ticket | None:
    """A cancelled ticket's open repeat reports are not lost: the oldest is dispatched in its place and the
    others join that one (and it leads the incident, if the cancelled ticket did)."""
    from dispatch.tickets import record_event

    open_statuses = [s.value for s in (TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.EN_ROUTE,
                                       TicketStatus.ON_SITE, TicketStatus.ON_HOLD)]
    heirs = list(session.exec(select(Ticket).where(Ticket.duplicate_of_id == ticket.id,
                                                   col(Ticket.status).in_(open_statuses)).order_by(col(Ticket.id))))
    if not heirs:
        return None
    heir = heirs[0]
    heir.duplicate_of_id = None
    session.add(heir)
    for other in heirs[1:]:
        other.duplicate_of_id = heir.id
        session.add(other)
    if ticket.incident_id is not None:
        scope = session.get(IncidentScope, ticket.incident_id)
        if scope is not None and scope.lead_ticket_id == ticket.id:
            scope.lead_ticket_id = heir.id
            heir.customers_affected = max(heir.customers_affected, ticket.customers_affected)
            session.add(scope)
    record_event(session, heir, "system", kind="NOTE",
                 note=f"{ticket.number} was cancelled; this report is dispatched in its place")
    return heir


# ------------------------------------------------------------------ incidents: once per transaction


PENDING_INCIDENTS_KEY = "customers.incidents_to_refresh"
NEW_PUBLICATIONS_KEY = "customers.new_publications"
TOGETHER_KEY = "customers.publishing_together"


def note_incident_changed(session: Session, incident_id: int, at: datetime,
                          settings: CustomerSettings | None = None) -> None:
    """Remember that a ticket of the incident changed (at `at`): it is refreshed once, before the commit."""
    pending: dict[int, tuple[datetime, CustomerSettings | None]] = session.info.setdefault(PENDING_INCIDENTS_KEY, {})
    pending[incident_id] = (at, settings)


def refresh_changed_incidents(session: Session) -> None:
    """Refresh every incident noted as changed in this transaction, once each (with the time of its latest
    change). A refresh that changes tickets of another incident notes that one in turn: repeat until none."""
    for _round in range(10):  # a refresh only changes repeat reports, which note nothing: one round suffices
        pending = session.info.pop(PENDING_INCIDENTS_KEY, None)
        if not pending:
            return
        for incident_id, (at, settings) in sorted(pending.items()):
            incident = session.get(Incident, incident_id)
            if incident is not None:
                refresh_incident(session, incident, at, settings)


def _before_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint being released: the incidents wait for the real commit
    refresh_changed_incidents(session)


def _after_commit(session: Session) -> None:
    session.info.pop(NEW_PUBLICATIONS_KEY, None)


def _after_soft_rollback(session: Session, previous: Any) -> None:
    if previous.parent is None:  # the whole transaction is gone: so are its changes
        session.info.pop(PENDING_INCIDENTS_KEY, None)
        session.info.pop(NEW_PUBLICATIONS_KEY, None)


def install() -> None:
    """Register the hooks on every ORM session (idempotent). `before_commit` goes first, ahead of the change
    log's (mobile_sync.changes), so what the refresh writes is flushed and logged with the rest."""
    if not event.contains(OrmSession, "before_commit", _before_commit):
        event.listen(OrmSession, "before_commit", _before_commit, insert=True)
        event.listen(OrmSession, "after_commit", _after_commit)
        event.listen(OrmSession, "after_soft_rollback", _after_soft_rollback)


install()


def refresh_incident(session: Session, incident: Incident, at: datetime | None = None,
                     settings: CustomerSettings | None = None) -> None:
    """SUSPECTED -> CONFIRMED (enough calls, or a crew on the way) -> RESTORING (crew on site) -> RESTORED
    (every dispatched ticket done); the ETR is published at confirmation and re-published when it moves."""
    from dispatch.tickets import change_status

    settings = settings or get_customer_settings()
    at = at or utcnow()
    members = list(session.exec(select(Ticket).where(Ticket.incident_id == incident.id)))
    primary = [t for t in members if t.duplicate_of_id is None and t.status != TicketStatus.CANCELLED]
    if incident.status == IncidentStatus.RESTORED:
        return
    if not primary:  # every report was cancelled: nothing to restore, nobody to tell
        if members and all(t.status == TicketStatus.CANCELLED for t in members):
            incident.status = IncidentStatus.RESTORED.value
            session.add(incident)
        return
    values: dict[str, object] = {"customers": incident.customers_affected}
    scope = f"i{incident.id}"
    if all(t.status in DONE for t in primary):
        incident.status = IncidentStatus.RESTORED.value
        restored = max((t.resolved_at or at) for t in primary)
        session.add(incident)
        for member in members:
            member.power_restored_at = member.power_restored_at or restored
            if member.duplicate_of_id is not None and member.status not in DONE | {TicketStatus.CANCELLED.value}:
                change_status(session, member, TicketStatus.RESOLVED, "system",
                              note="power restored with the incident it belongs to", at=at)
            session.add(member)
        enqueue(session, Change("RESTORED", scope, "1", {**values, "restored": local_time(restored, settings)},
                                incident_id=incident.id), incident_recipients(session, incident), at, settings)
        return
    if any(t.status == TicketStatus.ON_SITE for t in primary):
        incident.status = IncidentStatus.RESTORING.value
    elif incident.status == IncidentStatus.SUSPECTED and (
            len(members) >= settings.confirm_calls or any(t.status in WORKING for t in primary)):
        incident.status = IncidentStatus.CONFIRMED.value
    estimates = [estimate_etr(session, t, settings) for t in primary if t.status not in DONE]
    etr = max((e for e in estimates if e is not None), default=None)
    if incident.status != IncidentStatus.SUSPECTED and etr is not None:
        if incident.etr is None:
            incident.etr = etr
            enqueue(session, Change("ETR", scope, _stamp(etr), {**values, "etr": local_time(etr, settings)},
                                    incident_id=incident.id), incident_recipients(session, incident), at, settings)
        elif moved(etr, incident.etr, settings):
            incident.etr = etr
            enqueue(session, Change("ETR_CHANGED", scope, _stamp(etr), {**values, "etr": local_time(etr, settings)},
                                    incident_id=incident.id), incident_recipients(session, incident), at, settings)
    for member in primary:  # the tickets show the incident's published ETR
        if member.status not in DONE and incident.etr is not None:
            member.etr = incident.etr
            session.add(member)
    session.add(incident)
