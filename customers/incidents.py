"""Trouble-call analysis at intake: link the report to its customer, join a repeat report to the open ticket
of the same customer or site (`duplicateOf`), and group fault reports into incidents by network prediction
(or by distance and time where the network is unknown)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, or_, text
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select

from core.db import id_list, insert_as_loaded
from customers.config import CustomerSettings, get_customer_settings
from customers.directory import find_customers, load_network
from customers.models import Customer, IncidentScope, NetworkDevice, TicketCustomer
from customers.prediction import Call, Outage, Thresholds, outage_of, predict_outages
from dispatch.enums import OPEN_STATUSES, PRIORITY_ORDER, Priority, TicketKind, TicketStatus
from dispatch.locks import crews_when_locked, is_postgresql, lock_rows, tickets_of_locked_incident
from dispatch.models import Assignment, Incident, Ticket
from dispatch.rules import load_rules
from geo.points import haversine_km

log = logging.getLogger(__name__)
FIELD = (TicketKind.FAULT_REPAIR.value, TicketKind.EMERGENCY.value)
OPEN = [s.value for s in OPEN_STATUSES]


def thresholds(settings: CustomerSettings) -> Thresholds:
    return Thresholds(transformer_min_calls=settings.transformer_min_calls,
                      upstream_min_children=settings.upstream_min_children, radius_km=settings.incident_radius_km,
                      window=timedelta(minutes=settings.incident_window_minutes),
                      max_diameter_km=settings.incident_max_diameter_km)


@dataclass
class Batch:
    """What the analysis of a batch of new reports reads once, in a few set-based queries, and then keeps up to
    date while it goes through the reports in order, so each report sees the ones before it (and only those) as
    if they had come one by one."""

    customers: dict[int, Customer | None]  # the customer of each report of the batch, by ticket id
    waiting: set[int]  # reports of the batch not analysed yet
    candidates: list[Ticket] = field(default_factory=list)  # open field tickets a repeat report may join
    customer_tickets: dict[int, set[int]] = field(default_factory=dict)  # customer id -> its candidates
    calls: list[Any] = field(default_factory=list)  # open fault reports of the batch's windows (light rows)
    # ticket id -> the calls around it and the outage they predicted (a report asks twice: see _lock_likely_groups)
    predicted: dict[int, tuple[list[Call], Outage | None]] = field(default_factory=dict)
    # ticket id -> the rows of `calls` in its region, window and box (or all its region's and window's, on a
    # feeder): what does not change while the batch goes on, sorted out once a report
    near: dict[int, list[Any]] = field(default_factory=dict)


def process_reports(session: Session, tickets: list[Ticket], settings: CustomerSettings | None = None,
                    ) -> list[Ticket | None]:
    """The trouble-call analysis of new, flushed tickets of one transaction, in their order: link each to its
    customer, join a repeat report to its original, group fault reports into incidents. Returns, for each, the
    ticket it joined, if any."""
    settings = settings or get_customer_settings()
    field_tickets = [t for t in tickets if t.kind in FIELD]
    take_turns_with_same_reports(session, field_tickets, settings)
    customers = find_customers(session, [(t.account_number, t.contact_phone) for t in tickets])
    batch = Batch(customers={t.id or 0: c for t, c in zip(tickets, customers, strict=True)},
                  waiting={t.id or 0 for t in tickets})
    _read_candidates(session, batch, field_tickets, settings)
    _read_calls(session, batch, [t for t in field_tickets if t.kind == TicketKind.FAULT_REPAIR], settings)
    _lock_likely_groups(session, batch, tickets, customers, settings)
    joined: list[Ticket | None] = []
    for ticket, customer in zip(tickets, customers, strict=True):
        batch.waiting.discard(ticket.id or 0)
        joined.append(_process(session, batch, ticket, customer, settings))
    return joined


def _process(session: Session, batch: Batch, ticket: Ticket, customer: Customer | None,
             settings: CustomerSettings) -> Ticket | None:
    if customer is not None and ticket.id is not None:  # a new ticket: no link yet
        session.add(TicketCustomer(ticket_id=ticket.id, customer_id=customer.id or 0))
        batch.customer_tickets.setdefault(customer.id or 0, set()).add(ticket.id)
    if ticket.kind not in FIELD:
        return None
    original = find_duplicate(batch, ticket, customer, settings)
    if original is not None:
        mark_duplicate(session, ticket, original)
        return original
    if ticket.kind == TicketKind.FAULT_REPAIR:
        return group_into_incident(session, batch, ticket, customer, settings)
    return None


_TAKE_TURNS = text("SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT hashtext(current_schema() || :prefix || key) "
                   "AS k FROM unnest(CAST(:keys AS text[])) AS key ORDER BY 1) AS ordered")


def take_turns_with_same_reports(session: Session, tickets: list[Ticket], settings: CustomerSettings) -> None:
    """Two reports by one caller, or at one site, that arrive at the same moment must not both be dispatched:
    each would miss the other's uncommitted ticket. On PostgreSQL they take turns on transaction-scoped
    advisory locks (the caller's phone and account, and the grid cells that the duplicate distance around the
    site touches: a cell being twice that distance wide, at most 2 x 2 of them; a report within the distance
    lies in one of them and takes its own cell), so the second sees the first once it commits. SQLite
    serialises writers. A batch takes the keys of all its reports at once, in the one order every transaction
    uses.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys: set[str] = set()
    for ticket in tickets:
        if ticket.contact_phone:
            keys.add(f"phone:{ticket.contact_phone}")
        if ticket.account_number:
            keys.add(f"account:{ticket.account_number}")
        if ticket.lat is not None and ticket.lng is not None:
            keys.update(_site_cells(ticket.lat, ticket.lng, max(settings.duplicate_site_m, 1.0)))
    if keys:  # in one order everywhere, so two reports never wait on each other's locks
        session.execute(_TAKE_TURNS, {"prefix": ":intake:", "keys": sorted(keys)})


def _site_cells(lat: float, lng: float, distance_m: float) -> list[str]:
    """The grid cells (twice `distance_m` wide) that the circle of `distance_m` around the site touches. A cell's
    width in longitude follows the latitude of its row's centre, so every report computes the same cells."""
    reach = distance_m / 111_000  # in degrees of latitude
    cell = reach * 2
    cells = []
    for row in range(math.floor((lat - reach) / cell), math.floor((lat + reach) / cell) + 1):
        scale = max(math.cos(math.radians((row + 0.5) * cell)), 0.2)
        cell_lng, reach_lng = cell / scale, reach / scale * 1.01  # (a little wider: the circle's rows differ)
        cells += [f"site:{row}:{column}" for column in range(math.floor((lng - reach_lng) / cell_lng),
                                                              math.floor((lng + reach_lng) / cell_lng) + 1)]
    return cells


def _site_box(settings: CustomerSettings) -> float:
    return settings.duplicate_site_m / 111_000 * 2


@lru_cache(maxsize=512)
def _candidates_statement(accounts: bool, phones: bool, customers: bool, boxes: int) -> Select[Any]:
    """The query of `_read_candidates` for a batch's shape, built once (building it costs as much as running it):
    open field tickets of the batch's kinds and regions since `since`, by one of the callers (`accounts`,
    `phones`, linked to `customer_ids`), of the batch itself (`own`), or within one of the sites' boxes."""
    who = [col(Ticket.id).in_(id_list("own"))]
    if accounts:
        who.append(col(Ticket.account_number).in_(id_list("accounts")))
    if phones:
        who.append(col(Ticket.contact_phone).in_(id_list("phones")))
    if customers:
        who.append(col(Ticket.id).in_(select(TicketCustomer.ticket_id).where(
            col(TicketCustomer.customer_id).in_(id_list("customer_ids")))))
    return select(Ticket).where(
        col(Ticket.kind).in_(id_list("kinds")), col(Ticket.region).in_(id_list("regions")),
        col(Ticket.status).in_(OPEN), col(Ticket.duplicate_of_id).is_(None),
        col(Ticket.created_at) >= bindparam("since"), or_(*who, *_in_boxes(boxes)),
    ).order_by(col(Ticket.id))


def _in_boxes(boxes: int) -> list[ColumnElement[bool]]:
    """A ticket lies in box i: `_box(i, ...)` gives its bounds at execution."""
    return [col(Ticket.lat).between(bindparam(f"lat_lo{i}"), bindparam(f"lat_hi{i}"))
            & col(Ticket.lng).between(bindparam(f"lng_lo{i}"), bindparam(f"lng_hi{i}")) for i in range(boxes)]


def _box(i: int, lat: float, lng: float, half_lat: float, half_lng: float) -> dict[str, float]:
    return {f"lat_lo{i}": lat - half_lat, f"lat_hi{i}": lat + half_lat,
            f"lng_lo{i}": lng - half_lng, f"lng_hi{i}": lng + half_lng}


def _read_candidates(session: Session, batch: Batch, tickets: list[Ticket], settings: CustomerSettings) -> None:
    """Open field tickets that may be the original of one of `tickets`: by the same customer (account, phone or
    linked ticket) or at the same site, in one query for the batch; each report picks its own from them."""
    if not tickets:
        return
    accounts = sorted({t.account_number for t in tickets if t.account_number})
    phones = sorted({t.contact_phone for t in tickets if t.contact_phone})
    customer_ids = sorted({c.id for t in tickets if (c := batch.customers.get(t.id or 0)) is not None and c.id})
    located = [t for t in tickets if t.lat is not None and t.lng is not None]
    box = _site_box(settings)
    params: dict[str, Any] = {
        "kinds": sorted({t.kind for t in tickets}), "regions": sorted({t.region for t in tickets}),
        "since": min(t.created_at for t in tickets) - timedelta(hours=settings.duplicate_window_hours),
        "accounts": accounts, "phones": phones, "customer_ids": customer_ids,
        "own": sorted(batch.customers)}  # the batch's own (their links are not written yet)
    for i, t in enumerate(located):
        params.update(_box(i, t.lat, t.lng, box, box * 1.5))  # type: ignore[arg-type]
    statement = _candidates_statement(bool(accounts), bool(phones), bool(customer_ids), len(located))
    batch.candidates = list(session.exec(statement, params=params))
    if customer_ids and batch.candidates:
        for ticket_id, customer_id in session.exec(select(TicketCustomer.ticket_id, TicketCustomer.customer_id).where(
                col(TicketCustomer.customer_id).in_(customer_ids),
                col(TicketCustomer.ticket_id).in_([c.id for c in batch.candidates]))):
            batch.customer_tickets.setdefault(customer_id, set()).add(ticket_id)


def find_duplicate(batch: Batch, ticket: Ticket, customer: Customer | None,
                   settings: CustomerSettings) -> Ticket | None:
    """An open field ticket of the same kind by the same customer (account or phone) or at the same site."""
    since = ticket.created_at - timedelta(hours=settings.duplicate_window_hours)
    mine = batch.customer_tickets.get(customer.id or 0, set()) if customer is not None else set()
    for candidate in batch.candidates:  # oldest first; read as they are now (the batch may have changed them)
        if candidate.id == ticket.id or candidate.id in batch.waiting or candidate.kind != ticket.kind \
                or candidate.region != ticket.region or candidate.status not in OPEN \
                or candidate.duplicate_of_id is not None or candidate.created_at < since:
            continue
        same_person = (ticket.account_number and candidate.account_number == ticket.account_number) or \
            (ticket.contact_phone and candidate.contact_phone == ticket.contact_phone)
        same_site = ticket.lat is not None and candidate.lat is not None and haversine_km(
            ticket.lat, ticket.lng, candidate.lat, candidate.lng) * 1000 <= settings.duplicate_site_m
        if same_person or same_site or candidate.id in mine:
            return candidate
    return None


def mark_duplicate(session: Session, ticket: Ticket, original: Ticket) -> None:
    from dispatch.tickets import record_event

    # In the lock order of dispatch writes (dispatch/locks.py), before writing any of them.
    lock_rows(session, [original.id or 0])
    ticket.duplicate_of_id = original.id
    ticket.incident_id = original.incident_id
    session.add(ticket)
    record_event(session, ticket, "system", kind="DUPLICATE",
                 note=f"joined {original.number}: same customer or site; not dispatched again")
    record_event(session, original, "system", kind="NOTE", note=f"repeat report {ticket.number} joined this ticket")


def _read_calls(session: Session, batch: Batch, tickets: list[Ticket], settings: CustomerSettings) -> None:
    """The open fault reports within the incident window of `tickets`, around them (or on their feeders), in one
    light query for the batch: columns, not ORM objects, because every fault report needs them and in a storm
    the window holds many calls."""
    if not tickets:
        return
    window = timedelta(minutes=settings.incident_window_minutes)
    box = max(settings.incident_radius_km * 4, settings.incident_max_diameter_km) / 111.0
    on_feeder, boxes = False, 0
    params: dict[str, Any] = {
        "own": sorted(batch.customers), "regions": sorted({t.region for t in tickets}),
        "since": min(t.created_at for t in tickets) - window, "until": max(t.created_at for t in tickets) + window}
    for ticket in tickets:
        if _feeder_of(session, batch.customers.get(ticket.id or 0)) is not None:
            on_feeder = True  # on a known network: the feeder's calls from known customers (checked per report)
        elif ticket.lat is not None and ticket.lng is not None:
            # The report's group lies within the maximum diameter of it; a few radii around keep its neighbours.
            params.update(_box(boxes, ticket.lat, ticket.lng, box, box * 1.2))
            boxes += 1
    if not (on_feeder or boxes):
        return
    batch.calls = list(session.exec(_calls_statement(on_feeder, boxes), params=params))


@lru_cache(maxsize=64)
def _calls_statement(on_feeder: bool, boxes: int) -> Select[Any]:
    """The query of `_read_calls` for a batch's shape, built once: the open, unjoined fault reports of the
    regions created between `since` and `until` that are the batch's own, or of known customers (`on_feeder`),
    or within one of the boxes; with their customers' network placement."""
    where_ = [col(Ticket.id).in_(id_list("own"))]
    if on_feeder:
        where_.append(col(Customer.id).is_not(None))
    where_ += _in_boxes(boxes)
    return select(
        Ticket.id, Ticket.lat, Ticket.lng, Ticket.created_at, Ticket.region, Ticket.account_number,
        Ticket.contact_phone, Customer.account_number, Customer.transformer, Customer.feeder).select_from(
        Ticket).outerjoin(TicketCustomer, col(TicketCustomer.ticket_id) == Ticket.id).outerjoin(
        Customer, col(Customer.id) == TicketCustomer.customer_id).where(
        Ticket.kind == TicketKind.FAULT_REPAIR.value, col(Ticket.region).in_(id_list("regions")),
        col(Ticket.status).in_(OPEN), col(Ticket.duplicate_of_id).is_(None),
        col(Ticket.created_at) >= bindparam("since"), col(Ticket.created_at) <= bindparam("until"), or_(*where_))


def _feeder_of(session: Session, customer: Customer | None) -> str | None:
    if customer is None:
        return None
    if customer.feeder is None and customer.transformer:
        device = session.get(NetworkDevice, customer.transformer)
        return device.feeder if device is not None else None
    return customer.feeder


def _calls_of(session: Session, batch: Batch, ticket: Ticket, feeder: str | None,
              settings: CustomerSettings) -> list[Call]:
    """The calls `ticket`'s outage is predicted from: the window's open, unjoined fault reports of its region
    around it (or from its feeder's customers), as they are now in this transaction."""
    calls = []
    identity = session.identity_map  # (keys built here: identity_key() is slow for a loop over the window's calls)
    for t_id, lat, lng, at, _region, t_account, t_phone, c_account, c_transformer, c_feeder in _near(
            batch, ticket, feeder, settings):
        if t_id in batch.waiting:
            continue
        if t_id in batch.customers:  # a report of this batch: its customer link is not written yet
            linked = batch.customers[t_id]
            c_account, c_transformer, c_feeder = (linked.account_number, linked.transformer, linked.feeder) \
                if linked is not None else (None, None, None)
        known = c_account is not None
        if feeder is not None and (not known or (c_feeder and c_feeder != feeder)):
            continue  # another feeder's call (or unknown): not this network's business
        now = identity.get((Ticket, (t_id,), None))  # changed by this batch since it was read
        if now is not None and (now.duplicate_of_id is not None or now.status not in OPEN):
            continue
        calls.append(Call(id=t_id, lat=lat, lng=lng, at=at, customer=c_account if known else (t_account or t_phone),
                          transformer=c_transformer if known else None))
    return calls


def _near(batch: Batch, ticket: Ticket, feeder: str | None, settings: CustomerSettings) -> list[Any]:
    """The rows of the batch's calls that may be calls of `ticket`'s outage whatever the batch does: of its
    region and window, and around it (unless it is on a known feeder). Sorted out once a report: a report's
    outage is predicted twice, and the batch's calls are those of all its reports' boxes."""
    rows = batch.near.get(ticket.id or 0)
    if rows is None:
        window = timedelta(minutes=settings.incident_window_minutes)
        box = max(settings.incident_radius_km * 4, settings.incident_max_diameter_km) / 111.0
        region, at, lat, lng = ticket.region, ticket.created_at, ticket.lat, ticket.lng  # (read once, not per row)
        if feeder is not None:
            rows = [row for row in batch.calls if row[4] == region and abs(row[3] - at) <= window]
        elif lat is None or lng is None:
            rows = []
        else:
            rows = [row for row in batch.calls if row[4] == region and row[1] is not None and row[2] is not None
                    and abs(row[1] - lat) <= box and abs(row[2] - lng) <= box * 1.2 and abs(row[3] - at) <= window]
        batch.near[ticket.id or 0] = rows
    return rows


def _predicted_outage(session: Session, batch: Batch, ticket: Ticket, customer: Customer | None,
                      settings: CustomerSettings) -> Outage | None:
    """The outage the calls around `ticket` predict for it, if it is one of two calls or more."""
    feeder = _feeder_of(session, customer)
    if feeder is None and (ticket.lat is None or ticket.lng is None):
        return None
    calls = _calls_of(session, batch, ticket, feeder, settings)
    if len(calls) < 2:
        return None  # the only call around: nothing to group yet
    before = batch.predicted.get(ticket.id or 0)
    if before is not None and before[0] == calls:  # the same calls predict the same (a pure function of them)
        return before[1]
    network = load_network(session, feeder) if feeder is not None else None
    outage = outage_of(predict_outages(calls, network, thresholds(settings)), ticket.id or 0)
    outage = outage if outage is not None and len(outage.call_ids) >= 2 else None
    batch.predicted[ticket.id or 0] = (calls, outage)
    return outage


def _lock_likely_groups(session: Session, batch: Batch, tickets: list[Ticket], customers: list[Customer | None],
                        settings: CustomerSettings) -> None:
    """Lock at once, in the lock order, the reports each fault report of the batch is likely to be grouped with
    (predicted as if the reports before it had been grouped already): each report's own `lock_rows` then finds
    its rows held, instead of taking a savepoint and a dozen statements of its own. A report whose group turns
    out otherwise locks what is missing itself."""
    if len(tickets) < 2 or not is_postgresql(session):
        return
    waiting = set(batch.waiting)
    likely: set[int] = set()
    for ticket, customer in zip(tickets, customers, strict=True):
        batch.waiting.discard(ticket.id or 0)
        if ticket.kind == TicketKind.FAULT_REPAIR:
            outage = _predicted_outage(session, batch, ticket, customer, settings)
            likely.update(outage.call_ids if outage is not None else ())
    batch.waiting = waiting
    lock_rows(session, sorted(likely))  # (with their incidents and the incidents' scopes)


def group_into_incident(session: Session, batch: Batch, ticket: Ticket, customer: Customer | None,
                        settings: CustomerSettings) -> Ticket | None:
    """Predict outages over the open fault reports of the window; the new report's outage becomes (or joins)
    an incident. With a network prediction, reports not yet dispatched join the incident's lead ticket."""
    outage = _predicted_outage(session, batch, ticket, customer, settings)
    if outage is None:
        return None
    # From here on the reports, their incidents and the incidents' other reports are written: lock them first, in
    # the lock order of dispatch writes (dispatch/locks.py), as a plan commit does; they are read afresh.
    lock_rows(session, outage.call_ids)
    grouped = _tickets(session, outage.call_ids)
    open_incidents = sorted({t.incident_id for t in grouped if t.incident_id is not None})
    incident, too_wide = None, False
    for incident_id in open_incidents:
        found = session.get(Incident, incident_id)
        if found is None or found.status == "RESTORED":
            continue
        if outage.device is not None or _stays_within(session, found, grouped, settings):
            incident = found
            break
        too_wide = True
    if incident is None and too_wide:
        # No incident of the group can take it without growing wider than the bound: the reports already in
        # an incident stay there, the others make a new one (grouping by distance must not chain incidents).
        grouped = [t for t in grouped if t.incident_id is None]
        if len(grouped) < 2 or all(t is not ticket for t in grouped):
            return None
    new_incident = incident is None
    if incident is None:
        incident = Incident(created_at=ticket.created_at)  # (inserted below, once its values are known)
        scope = IncidentScope(incident_id=0)  # (a new incident has none yet: no look-up)
    else:
        scope = session.get(IncidentScope, incident.id) or IncidentScope(incident_id=incident.id or 0)
    crews = crews_when_locked(session, [t.id or 0 for t in grouped])
    assigned = {i for i, active in crews.items() if active} if crews is not None else \
        {a.ticket_id for a in session.exec(select(Assignment).where(
            col(Assignment.active).is_(True), col(Assignment.ticket_id).in_([t.id for t in grouped])))}
    lead = session.get(Ticket, scope.lead_ticket_id) if scope.lead_ticket_id else None
    if lead is None or lead.status not in OPEN:
        lead = min(grouped, key=lambda t: (t.id not in assigned, t.status == TicketStatus.NEW, t.id or 0))
    if scope.device is None or outage.device is not None:  # never trade a network placement for a guess
        scope.device, scope.device_kind = outage.device, outage.device_kind
        incident.cause = outage.cause
        incident.center_lat, incident.center_lng = outage.lat, outage.lng
    scope.lead_ticket_id = lead.id
    affected = outage.customers_affected if outage.device is not None or len(grouped) == len(outage.call_ids) \
        else len(grouped)
    incident.customers_affected = max(incident.customers_affected, affected)
    if incident.status == "SUSPECTED" and len(grouped) >= settings.confirm_calls:
        incident.status = "CONFIRMED"
    if new_incident:  # its id, without flushing all the batch has changed so far; written once, as it is now
        insert_as_loaded(session, [incident])
        scope.incident_id = incident.id or 0
    session.add(scope)
    session.add(incident)
    # The lead carries the incident's weight: customers affected and priority drive dispatch.
    lead.customers_affected = max(lead.customers_affected, incident.customers_affected)
    high = load_rules().high_customers_threshold
    if lead.customers_affected >= high and PRIORITY_ORDER.index(Priority(lead.priority)) > \
            PRIORITY_ORDER.index(Priority.HIGH):
        lead.priority = Priority.HIGH.value
    lead.incident_id = incident.id
    joined = None
    for member in grouped:
        member.incident_id = incident.id
        if outage.device is not None and member is not lead and member.status == TicketStatus.NEW \
                and member.id not in assigned:
            mark_duplicate(session, member, lead)
            if member is ticket:
                joined = lead
        session.add(member)
    session.add(lead)
    write_alike(session, incident, grouped)
    log.info("incident %s: %d reports, %s, %d customers", incident.id, len(grouped), outage.cause,
             incident.customers_affected)
    return joined


INCIDENT_COLUMNS = ("status", "cause", "center_lat", "center_lng", "customers_affected")
GROUPED_COLUMNS = ("incident_id", "customers_affected", "priority")


def write_alike(session: Session, incident: Incident, grouped: list[Ticket]) -> None:
    """Have every incident and grouped report that changed written with the same columns, whichever of them
    changed: the flush then updates each table with one statement for all of them (the session's unit of work
    makes one per combination of changed columns: half a dozen a batch). What did not change stays unwritten
    (and out of the change log)."""
    for row, names in [(incident, INCIDENT_COLUMNS), *((t, GROUPED_COLUMNS) for t in grouped)]:
        if session.is_modified(row, include_collections=False):
            for name in names:
                flag_modified(row, name)


def _tickets(session: Session, ids: list[int]) -> list[Ticket]:
    """The tickets of `ids` as this transaction has them: `lock_rows` has just read them afresh into the session
    (on PostgreSQL), so only the others are read."""
    found = {i: session.identity_map.get(identity_key(Ticket, i)) for i in ids}
    missing = [i for i, ticket in found.items() if ticket is None]
    if missing:
        found.update({t.id or 0: t for t in session.exec(select(Ticket).where(col(Ticket.id).in_(missing)))})
    return [t for t in (found[i] for i in sorted(found)) if t is not None]


def _stays_within(session: Session, incident: Incident, grouped: list[Ticket], settings: CustomerSettings) -> bool:
    """Whether the incident's reports and `grouped` together are no wider than the maximum incident diameter
    (each side is within it already: only the pairs across are measured)."""
    ids = {t.id for t in grouped}
    locked = tickets_of_locked_incident(session, incident.id or 0)
    rows = [(t.id, t.lat, t.lng) for t in locked if t.duplicate_of_id is None] if locked is not None else \
        session.exec(select(Ticket.id, Ticket.lat, Ticket.lng).where(
            Ticket.incident_id == incident.id, col(Ticket.duplicate_of_id).is_(None))).all()
    members = [(lat, lng) for t_id, lat, lng in rows if lat is not None and lng is not None and t_id not in ids]
    limit = settings.incident_max_diameter_km
    return all(haversine_km(lat, lng, t.lat, t.lng) <= limit
               for lat, lng in members for t in grouped if t.lat is not None and t.lng is not None)


def list_incidents(session: Session, statuses: list[str] | None = None) -> list[Incident]:
    """Incidents, newest first, optionally of some statuses only."""
    query = select(Incident).order_by(col(Incident.id).desc())
    if statuses:
        query = query.where(col(Incident.status).in_(statuses))
    return list(session.exec(query))
