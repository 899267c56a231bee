"""Trouble-call analysis at intake: link the report to its customer, join a repeat report to the open ticket
of the same customer or site (`duplicateOf`), and group fault reports into incidents by network prediction
(or by distance and time where the network is unknown)."""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from sqlalchemy import or_, text
from sqlmodel import Session, col, select

from customers.config import CustomerSettings, get_customer_settings
from customers.directory import find_customer, load_network
from customers.models import Customer, IncidentScope, NetworkDevice, TicketCustomer
from customers.prediction import Call, Thresholds, outage_of, predict_outages
from dispatch.enums import OPEN_STATUSES, PRIORITY_ORDER, Priority, TicketKind, TicketStatus
from dispatch.locks import lock_rows
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


def process_report(session: Session, ticket: Ticket, settings: CustomerSettings | None = None) -> Ticket | None:
    """Run at intake on a new, flushed ticket (same transaction). Returns the ticket it joined, if any."""
    settings = settings or get_customer_settings()
    if ticket.kind in FIELD:
        take_turns_with_same_reports(session, ticket, settings)
    customer = find_customer(session, ticket.account_number, ticket.contact_phone)
    if customer is not None and ticket.id is not None:  # a new ticket: no link yet
        session.add(TicketCustomer(ticket_id=ticket.id, customer_id=customer.id or 0))
    if ticket.kind not in FIELD:
        return None
    original = find_duplicate(session, ticket, customer, settings)
    if original is not None:
        mark_duplicate(session, ticket, original)
        return original
    if ticket.kind == TicketKind.FAULT_REPAIR:
        return group_into_incident(session, ticket, customer, settings)
    return None


def take_turns_with_same_reports(session: Session, ticket: Ticket, settings: CustomerSettings) -> None:
    """Two reports by one caller, or at one site, that arrive at the same moment must not both be dispatched:
    each would miss the other's uncommitted ticket. On PostgreSQL they take turns on transaction-scoped
    advisory locks (the caller's phone and account, and the grid cells around the site, a cell being twice
    the duplicate distance wide), so the second sees the first once it commits. SQLite serialises writers.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = [f"phone:{ticket.contact_phone}"] if ticket.contact_phone else []
    if ticket.account_number:
        keys.append(f"account:{ticket.account_number}")
    if ticket.lat is not None and ticket.lng is not None:
        cell = max(settings.duplicate_site_m, 1.0) * 2 / 111_000
        cell_lng = cell / max(math.cos(math.radians(ticket.lat)), 0.2)
        row, column = math.floor(ticket.lat / cell), math.floor(ticket.lng / cell_lng)
        keys += [f"site:{row + dr}:{column + dc}" for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
    if keys:  # in one order everywhere, so two reports never wait on each other's locks
        session.execute(text(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT hashtext(current_schema() || :prefix || key) "
            "AS k FROM unnest(CAST(:keys AS text[])) AS key ORDER BY 1) AS ordered"),
            {"prefix": ":intake:", "keys": sorted(set(keys))})


def find_duplicate(session: Session, ticket: Ticket, customer: Customer | None,
                   settings: CustomerSettings) -> Ticket | None:
    """An open field ticket of the same kind by the same customer (account or phone) or at the same site."""
    since = ticket.created_at - timedelta(hours=settings.duplicate_window_hours)
    who = []
    if ticket.account_number:
        who.append(col(Ticket.account_number) == ticket.account_number)
    if ticket.contact_phone:
        who.append(col(Ticket.contact_phone) == ticket.contact_phone)
    if customer is not None:
        who.append(col(Ticket.id).in_(select(TicketCustomer.ticket_id).where(
            TicketCustomer.customer_id == customer.id)))
    if ticket.lat is not None and ticket.lng is not None:
        box = settings.duplicate_site_m / 111_000 * 2
        who.append((col(Ticket.lat).between(ticket.lat - box, ticket.lat + box))
                   & (col(Ticket.lng).between(ticket.lng - box * 1.5, ticket.lng + box * 1.5)))
    if not who:
        return None
    candidates = list(session.exec(select(Ticket).where(
        Ticket.id != ticket.id, Ticket.kind == ticket.kind, Ticket.region == ticket.region,
        col(Ticket.status).in_(OPEN), col(Ticket.duplicate_of_id).is_(None), col(Ticket.created_at) >= since,
        or_(*who)).order_by(col(Ticket.id))))
    mine = set(session.exec(select(TicketCustomer.ticket_id).where(
        TicketCustomer.customer_id == customer.id,
        col(TicketCustomer.ticket_id).in_([c.id for c in candidates])))) if customer is not None and candidates \
        else set()
    for candidate in candidates:
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


def group_into_incident(session: Session, ticket: Ticket, customer: Customer | None,
                        settings: CustomerSettings) -> Ticket | None:
    """Predict outages over the open fault reports of the window; the new report's outage becomes (or joins)
    an incident. With a network prediction, reports not yet dispatched join the incident's lead ticket."""
    window = timedelta(minutes=settings.incident_window_minutes)
    feeder = customer.feeder if customer is not None else None
    if customer is not None and customer.transformer and feeder is None:
        device = session.get(NetworkDevice, customer.transformer)
        feeder = device.feeder if device is not None else None
    # One light query for the calls of the window with their customers: columns, not ORM objects, because
    # every fault report runs this and in a storm the window holds many calls.
    query = select(Ticket.id, Ticket.lat, Ticket.lng, Ticket.created_at, Ticket.account_number,
                   Ticket.contact_phone, Customer.account_number, Customer.transformer, Customer.feeder).select_from(
        Ticket).outerjoin(TicketCustomer, col(TicketCustomer.ticket_id) == Ticket.id).outerjoin(
        Customer, col(Customer.id) == TicketCustomer.customer_id).where(
        Ticket.kind == TicketKind.FAULT_REPAIR.value, Ticket.region == ticket.region, col(Ticket.status).in_(OPEN),
        col(Ticket.duplicate_of_id).is_(None), col(Ticket.created_at) >= ticket.created_at - window,
        col(Ticket.created_at) <= ticket.created_at + window)
    if feeder is None:
        if ticket.lat is None or ticket.lng is None:
            return None
        # The report's group lies within the maximum diameter of it; a few radii around it keep its neighbours.
        box = max(settings.incident_radius_km * 4, settings.incident_max_diameter_km) / 111.0
        query = query.where(col(Ticket.lat).between(ticket.lat - box, ticket.lat + box),
                            col(Ticket.lng).between(ticket.lng - box * 1.2, ticket.lng + box * 1.2))
    calls = []
    for t_id, lat, lng, at, t_account, t_phone, c_account, c_transformer, c_feeder in session.exec(query):
        known = c_account is not None
        if feeder is not None and (not known or (c_feeder and c_feeder != feeder)):
            continue  # another feeder's call (or unknown): not this network's business
        calls.append(Call(id=t_id, lat=lat, lng=lng, at=at, customer=c_account if known else (t_account or t_phone),
                          transformer=c_transformer if known else None))
    if len(calls) < 2:
        return None  # the only call around: nothing to group yet
    network = load_network(session, feeder) if feeder is not None else None
    outage = outage_of(predict_outages(calls, network, thresholds(settings)), ticket.id or 0)
    if outage is None or len(outage.call_ids) < 2:
        return None
    # From here on the reports, their incidents and the incidents' other reports are written: lock them first, in
    # the lock order of dispatch writes (dispatch/locks.py), as a plan commit does; they are read afresh.
    lock_rows(session, outage.call_ids)
    members = list(session.exec(select(Ticket).where(col(Ticket.id).in_(outage.call_ids))))
    grouped = [t for t in members if (t.id or 0) in set(outage.call_ids)]
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
    if incident is None:
        incident = Incident(created_at=ticket.created_at)
        session.add(incident)
        session.flush()
    scope = session.get(IncidentScope, incident.id) or IncidentScope(incident_id=incident.id or 0)
    assigned = {a.ticket_id for a in session.exec(select(Assignment).where(
        col(Assignment.active).is_(True), col(Assignment.ticket_id).in_([t.id for t in grouped])))}
    lead = session.get(Ticket, scope.lead_ticket_id) if scope.lead_ticket_id else None
    if lead is None or lead.status not in OPEN:
        lead = min(grouped, key=lambda t: (t.id not in assigned, t.status == TicketStatus.NEW, t.id or 0))
    if scope.device is None or outage.device is not None:  # never trade a network placement for a guess
        scope.device, scope.device_kind = outage.device, outage.device_kind
        incident.cause = outage.cause
        incident.center_lat, incident.center_lng = outage.lat, outage.lng
    scope.lead_ticket_id = lead.id
    session.add(scope)
    affected = outage.customers_affected if outage.device is not None or len(grouped) == len(outage.call_ids) \
        else len(grouped)
    incident.customers_affected = max(incident.customers_affected, affected)
    if incident.status == "SUSPECTED" and len(grouped) >= settings.confirm_calls:
        incident.status = "CONFIRMED"
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
    log.info("incident %s: %d reports, %s, %d customers", incident.id, len(grouped), outage.cause,
             incident.customers_affected)
    return joined


def _stays_within(session: Session, incident: Incident, grouped: list[Ticket], settings: CustomerSettings) -> bool:
    """Whether the incident's reports and `grouped` together are no wider than the maximum incident diameter
    (each side is within it already: only the pairs across are measured)."""
    ids = {t.id for t in grouped}
    members = [(lat, lng) for t_id, lat, lng in session.exec(select(Ticket.id, Ticket.lat, Ticket.lng).where(
        Ticket.incident_id == incident.id, col(Ticket.duplicate_of_id).is_(None)))
        if lat is not None and lng is not None and t_id not in ids]
    limit = settings.incident_max_diameter_km
    return all(haversine_km(lat, lng, t.lat, t.lng) <= limit
               for lat, lng in members for t in grouped if t.lat is not None and t.lng is not None)


def list_incidents(session: Session, statuses: list[str] | None = None) -> list[Incident]:
    """Incidents, newest first, optionally of some statuses only."""
    query = select(Incident).order_by(col(Incident.id).desc())
    if statuses:
        query = query.where(col(Incident.status).in_(statuses))
    return list(session.exec(query))
