"""Intake: every report, from any channel, becomes one validated, located, triaged ticket with deadlines."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.clock import utcnow
from core.db import insert_as_loaded, new_row
from core.errors import DomainError, ErrorCode, Problems
from dispatch.enums import AreaType, Channel, Priority, TicketKind, TicketStatus
from dispatch.models import Ticket, TicketEvent
from dispatch.rules import ServiceRules
from dispatch.triage import infer_priority, infer_skills
from geo.areas import RegionConfig, branch_for, classify_area
from geo.geocoding import critical_site_kinds, locate
from geo.points import validate_lat_lng
from mobile_sync.changes import note_new_tickets

log = logging.getLogger(__name__)

MAX_SUMMARY = 500
MAX_DESCRIPTION = 10_000
MAX_ADDRESS = 500
MAX_CUSTOMERS = 10_000_000
MAX_CREWS_NEEDED = 4  # crews that may be asked to work one job at the same time
SKILL_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Digits with optional +, spaces, dashes and brackets; 5 to 15 digits (E.164 at most 15).
PHONE_PATTERN = re.compile(r"^\+?[0-9 ()\-]{5,24}$")


@dataclass
class NewTicket:
    kind: str
    channel: str
    summary: str
    description: str | None = None
    address: str | None = None
    lat: float | None = None
    lng: float | None = None
    priority: str | None = None
    required_skills: list[str] | None = None
    needs_generator: bool | None = None
    critical_load_kw: float | None = None
    customers_affected: int | None = None
    crews_needed: int | None = None  # crews that must work the job together (default 1)
    account_number: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    preferred_channels: list[str] | None = None
    client_request_id: str | None = None
    reported_at: datetime | None = None
    region: str = "default"


@dataclass
class IntakeContext:
    """What intake needs besides the database: the rules, the region and a geocoder."""

    rules: ServiceRules
    region: RegionConfig
    geocoder: object
    unlocated_area: AreaType = AreaType.URBAN  # strictest deadline when we do not know where it is


@dataclass
class IntakeResult:
    ticket: Ticket
    created: bool  # False when the clientRequestId had been seen: the earlier ticket is returned
    warnings: list[str] = field(default_factory=list)
    duplicate_of: Ticket | None = None  # the ticket or incident lead this report joined, when it did


def normalise_phone(phone: str) -> str:
    return re.sub(r"[^0-9+]", "", phone)


def validate(report: NewTicket) -> None:
    problems = Problems()
    _enum(problems, "kind", report.kind, TicketKind)
    _enum(problems, "channel", report.channel, Channel)
    if report.priority is not None:
        _enum(problems, "priority", report.priority, Priority)
    for value in report.preferred_channels or []:
        _enum(problems, "preferredChannels", value, Channel)
    summary = (report.summary or "").strip()
    if not summary:
        problems.add("summary", "summary is required: say in a few words what is wrong", ErrorCode.REQUIRED)
    elif len(summary) > MAX_SUMMARY:
        problems.add("summary", f"summary may be at most {MAX_SUMMARY} characters (put details in description)")
    if report.description and len(report.description) > MAX_DESCRIPTION:
        problems.add("description", f"description may be at most {MAX_DESCRIPTION} characters")
    if report.address and len(report.address) > MAX_ADDRESS:
        problems.add("address", f"address may be at most {MAX_ADDRESS} characters")
    if (report.lat is None) != (report.lng is None):
        problems.add("location", "give both lat and lng")
    elif report.lat is not None and report.lng is not None:
        for message in validate_lat_lng(report.lat, report.lng):
            problems.add("location", message)
    if report.customers_affected is not None and not 0 <= report.customers_affected <= MAX_CUSTOMERS:
        problems.add("customersAffected", "customersAffected must be between 0 and 10 000 000")
    if report.crews_needed is not None and not 1 <= report.crews_needed <= MAX_CREWS_NEEDED:
        problems.add("crewsNeeded", f"crewsNeeded must be between 1 and {MAX_CREWS_NEEDED}")
    if report.critical_load_kw is not None and (
        not math.isfinite(report.critical_load_kw) or report.critical_load_kw <= 0 or report.critical_load_kw > 1e5
    ):
        problems.add("criticalLoadKw", "criticalLoadKw must be a positive number of kW (at most 100 000)")
    for skill in report.required_skills or []:
        if not SKILL_PATTERN.match(skill):
            problems.add("requiredSkills", f"'{skill[:40]}' is not a skill tag (lower case, digits, _)")
    if report.contact_phone is not None and (
        not PHONE_PATTERN.match(report.contact_phone)
        or not 5 <= len(re.sub(r"\D", "", report.contact_phone)) <= 15
    ):
        problems.add("contactPhone", "contactPhone must be a phone number: 5 to 15 digits, optional +")
    if report.contact_name and len(report.contact_name) > 200:
        problems.add("contactName", "contactName may be at most 200 characters")
    if report.account_number and len(report.account_number) > 64:
        problems.add("accountNumber", "accountNumber may be at most 64 characters")
    if report.client_request_id is not None and not 1 <= len(report.client_request_id) <= 200:
        problems.add("clientRequestId", "clientRequestId must have 1 to 200 characters")
    problems.raise_if_any()


def _enum(problems: Problems, name: str, value: str, enum: type) -> None:
    if value not in enum.__members__:
        allowed = ", ".join(enum.__members__)
        problems.add(name, f"'{str(value)[:40]}' is not a {enum.__name__}; use one of {allowed}")


def find_by_request_id(session: Session, client_request_id: str) -> Ticket | None:
    return session.exec(select(Ticket).where(Ticket.client_request_id == client_request_id)).first()


@dataclass
class Draft:
    """A validated, located and triaged report, ready to be written: no database work went into it, so it is
    made before a report joins the writer's queue (dispatch/intake_queue.py), outside the one writer's time."""

    report: NewTicket
    source: str
    fields: dict[str, Any]  # the new ticket's columns
    why: str  # why the ticket has its priority
    warnings: list[str]
    ticket: Ticket = field(init=False)

    def __post_init__(self) -> None:
        self.ticket = new_row(Ticket, self.fields)

    def again(self) -> Draft:
        """The same draft with a ticket object of its own: for another try at writing it (a failed
        transaction leaves its objects behind with whatever it had written into them)."""
        return Draft(self.report, self.source, self.fields, self.why, self.warnings)


def create_ticket(session: Session, context: IntakeContext, report: NewTicket, source: str) -> IntakeResult:
    """Validate, locate, triage and store a report; commits before returning (the write is durable)."""
    return write_ticket(session, draft_ticket(context, report, source))


def write_ticket(session: Session, draft: Draft) -> IntakeResult:
    """Store a drafted report; commits before returning (the write is durable).

    The same `client_request_id` always returns the first ticket, also when two retries race: the unique
    index decides and the loser reads the winner's ticket.
    """
    try:
        outcome = write_tickets(session, [draft])[0]
    except IntegrityError:
        session.rollback()
        request_id = draft.report.client_request_id
        if request_id and (existing := find_by_request_id(session, request_id)):
            return IntakeResult(existing, created=False)
        raise
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


def create_tickets(session: Session, context: IntakeContext, reports: Sequence[tuple[NewTicket, str]],
                   ) -> list[IntakeResult | DomainError]:
    """Validate, locate and triage many reports (each with its source), then store them together
    (`write_tickets`). A report that is wrong gets the DomainError that says why; the others are stored."""
    drafts: list[Draft | DomainError] = []
    for report, source in reports:
        try:
            drafts.append(draft_ticket(context, report, source))
        except DomainError as error:
            drafts.append(error)
    return write_tickets(session, drafts)


def write_tickets(session: Session, drafts: Sequence[Draft | DomainError]) -> list[IntakeResult | DomainError]:
    """Store many drafted reports in one transaction, in their order, and commit: what intake does with the
    reports that arrive together (dispatch/intake_queue.py). Each gets its own answer: its ticket, or (passed
    through) the DomainError of a report that could not be drafted.

    Each report is analysed as if the ones before it had come alone and first (duplicates, incidents). A
    `client_request_id` seen before (or earlier in the batch) answers the first ticket: the insert leaves out a
    report whose request id is stored already, or being stored by a concurrent transaction (it waits for that
    one), and the stored ticket is read for it.
    """
    outcomes: list[IntakeResult | DomainError | None] = [d if isinstance(d, DomainError) else None for d in drafts]
    good = [(index, d) for index, d in enumerate(drafts) if isinstance(d, Draft)]
    first: dict[str, Draft] = {}  # request id -> the batch's first report with it
    new: list[tuple[int, Draft]] = []
    for index, draft in good:
        request_id = draft.report.client_request_id
        if request_id is not None and request_id in first:
            continue  # a repeat within this batch answers the first one's ticket (below)
        if request_id is not None:
            first[request_id] = draft
        new.append((index, draft))
    inserted = _insert(session, [d for _i, d in new])
    created = {id(d) for d in inserted}
    known: dict[str, Ticket] = {}
    for index, draft in new:
        if id(draft) in created:
            outcomes[index] = IntakeResult(draft.ticket, created=True, warnings=draft.warnings)
        else:  # its request id was stored before (seldom: a client's retry)
            request_id = draft.report.client_request_id or ""
            existing = find_by_request_id(session, request_id)
            if existing is None:  # (tickets are never deleted)
                raise LookupError(f"the ticket of request {request_id!r} was present and is not")
            known[request_id] = existing
            outcomes[index] = IntakeResult(existing, created=False)
    if inserted:
        from customers.incidents import process_reports  # customer link, duplicates, incidents (issue 7)

        process_reports(session, [d.ticket for d in inserted])
    for index, draft in good:  # repeats of a request id within the batch
        if outcomes[index] is None:
            request_id = draft.report.client_request_id or ""
            outcomes[index] = IntakeResult(known.get(request_id) or first[request_id].ticket, created=False)
    for outcome in outcomes:  # (read in this session: the caller's answer needs no query of its own)
        if isinstance(outcome, IntakeResult) and outcome.ticket.duplicate_of_id is not None:
            outcome.duplicate_of = session.get(Ticket, outcome.ticket.duplicate_of_id)
    session.commit()
    for draft in inserted:
        ticket = draft.ticket
        log.info("ticket created", extra={"ticket": ticket.number, "kind": ticket.kind, "priority": ticket.priority})
    return [o for o in outcomes if o is not None]


_EVENTS = insert(TicketEvent.__table__)  # type: ignore[attr-defined]


def _insert(session: Session, drafts: list[Draft]) -> list[Draft]:
    """Insert the drafts' tickets and their first events with a statement each, not through the session's unit
    of work (which costs intake's one writer about twice the CPU for the same rows); what the trouble-call
    analysis changes on the tickets next is flushed as an update. The change log is told of them. A draft whose
    request id is stored already is left out; returns the drafts inserted."""
    tickets = insert_as_loaded(session, [d.ticket for d in drafts], unless_present="client_request_id")
    inserted = {id(t) for t in tickets}
    drafts = [d for d in drafts if id(d.ticket) in inserted]
    if not drafts:
        return []
    connection = session.connection()
    # A new report's events say nothing to its customers yet (dispatch.tickets.record_event would publish nothing).
    connection.execute(_EVENTS, [
        dict(ticket_id=d.ticket.id, at=d.ticket.created_at, status=d.ticket.status, kind=kind, note=note, source=source)
        for d in drafts for kind, note, source in [
            ("STATUS", f"reported via {d.report.channel}; priority {d.ticket.priority} ({d.why})", d.source),
            *(("WARNING", warning, "system") for warning in d.warnings)]])
    note_new_tickets(session, [d.ticket for d in drafts])
    return drafts


def draft_ticket(context: IntakeContext, report: NewTicket, source: str) -> Draft:
    """Validate, locate and triage one report into an unsaved ticket (no database work; the geocoder may be a
    remote server). Raises DomainError when the report is wrong."""
    validate(report)
    warnings: list[str] = []
    lat, lng, site_kind, place = report.lat, report.lng, None, None
    if lat is None and report.address:
        found = locate(context.geocoder, report.address)
        if found is None:
            warnings.append(f"address not found by the geocoder: '{report.address[:100]}'; location unknown")
        else:
            lat, lng, site_kind, place = found.lat, found.lng, found.kind, found.name
    elif lat is None:
        warnings.append("no address and no location given; location unknown")

    area = AreaType(classify_area(context.region, lat, lng)) if lat is not None and lng is not None \
        else context.unlocated_area
    kind = TicketKind(report.kind)
    text = " ".join(filter(None, [report.summary, report.description, report.address]))
    customers = report.customers_affected if report.customers_affected is not None else 1
    critical_site = f"{site_kind}: {place}" if site_kind in critical_site_kinds() else None
    triage = infer_priority(context.rules, kind, text, customers, critical_site, bool(report.needs_generator))
    priority = Priority(report.priority) if report.priority else triage.priority
    reported_at = report.reported_at or utcnow()
    respond_by, resolve_by = context.rules.deadlines(kind, priority, area, reported_at)
    skills = sorted(set(report.required_skills)) if report.required_skills is not None \
        else infer_skills(context.rules, kind, text)
    phone = normalise_phone(report.contact_phone) if report.contact_phone else None

    fields = dict(
        kind=kind.value, channel=report.channel, priority=priority.value, status=TicketStatus.NEW.value,
        summary=report.summary.strip(), description=report.description, address=report.address,
        lat=lat, lng=lng, area_type=area.value,
        branch=branch_for(context.region, lat, lng) if lat is not None and lng is not None else None,
        region=report.region, required_skills=skills, needs_generator=bool(report.needs_generator),
        critical_load_kw=report.critical_load_kw, customers_affected=customers,
        crews_needed=report.crews_needed or 1,
        account_number=report.account_number, contact_name=report.contact_name, contact_phone=phone,
        phone_last4=phone[-4:] if phone else None,
        preferred_channels=list(dict.fromkeys(report.preferred_channels or [report.channel])),
        client_request_id=report.client_request_id, created_at=reported_at, updated_at=reported_at,
        respond_by=respond_by, resolve_by=resolve_by,
    )
    why = "given" if report.priority else f"inferred: {triage.reason}"
    return Draft(report, source, fields, why, warnings)
