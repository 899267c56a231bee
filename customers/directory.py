"""Customers, their service points and the network they hang on: CSV imports with a per-row error report,
and the link from a ticket to its customer by account number or phone."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.db import id_list
from customers.models import Customer, NetworkDevice, TicketCustomer
from customers.prediction import Network
from geo.points import validate_lat_lng

NOTIFY_CHANNELS = ("SMS", "WECHAT", "APP", "EMAIL")
LANGUAGES = ("zh", "en")
DEVICE_KINDS = ("TRANSFORMER", "FUSE", "SECTION", "FEEDER")
QUIET_PATTERN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
PHONE_PATTERN = re.compile(r"^\+?[0-9 ()\-]{5,24}$")
CUSTOMER_COLUMNS = ("account_number", "name", "phone", "email", "lat", "lng", "feeder", "transformer", "critical",
                    "language", "preferred_channels", "quiet_hours")


@dataclass(frozen=True)
class RowError:
    line: int  # line of the CSV file (the header is line 1)
    column: str | None
    message: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({e.line for e in self.errors})

    def summary(self) -> str:
        return (f"{self.created} created, {self.updated} updated, {self.rejected_rows} rows rejected "
                f"({len(self.errors)} problems)")


def normalise_phone(phone: str) -> str:
    return re.sub(r"[^0-9+]", "", phone)


def _flag(value: str) -> bool | None:
    text = value.strip().lower()
    if text in {"", "0", "false", "no", "n", "否"}:
        return False
    if text in {"1", "true", "yes", "y", "是"}:
        return True
    return None


def parse_customer_row(row: dict[str, str | None], line: int) -> tuple[dict[str, object] | None, list[RowError]]:
    """One CSV row as Customer fields, or the problems that reject it (every problem of the row at once)."""
    errors: list[RowError] = []

    def value(name: str) -> str:
        return (row.get(name) or "").strip()

    def bad(column: str, message: str) -> None:
        errors.append(RowError(line, column, message))

    account = value("account_number")
    if not account:
        bad("account_number", "account_number is required")
    elif len(account) > 64:
        bad("account_number", "account_number may be at most 64 characters")
    phone = value("phone")
    if phone and (not PHONE_PATTERN.match(phone) or not 5 <= len(re.sub(r"\D", "", phone)) <= 15):
        bad("phone", f"'{phone[:30]}' is not a phone number (5 to 15 digits)")
    lat_text, lng_text = value("lat"), value("lng")
    lat = lng = None
    if lat_text or lng_text:
        problems = validate_lat_lng(lat_text or None, lng_text or None)
        if problems:
            bad("lat/lng", "; ".join(problems))
        else:
            lat, lng = float(lat_text), float(lng_text)
    critical = _flag(value("critical"))
    if critical is None:
        bad("critical", f"'{value('critical')[:20]}' is not yes/no")
    language = value("language").lower() or "zh"
    if language not in LANGUAGES:
        bad("language", f"'{language[:10]}' is not a language we write in ({', '.join(LANGUAGES)})")
    channels = [c.strip().upper() for c in re.split(r"[;|,\s]+", value("preferred_channels")) if c.strip()]
    unknown = [c for c in channels if c not in NOTIFY_CHANNELS]
    if unknown:
        bad("preferred_channels", f"unknown channels {unknown[:3]}; use {', '.join(NOTIFY_CHANNELS)}")
    quiet = value("quiet_hours")
    if quiet and quiet.lower() != "none" and not QUIET_PATTERN.match(quiet):
        bad("quiet_hours", "quiet_hours must look like 22:00-07:00 (or 'none')")
    for name in ("feeder", "transformer"):
        if len(value(name)) > 64:
            bad(name, f"{name} may be at most 64 characters")
    if errors:
        return None, errors
    return {
        "account_number": account, "name": value("name") or None, "phone": normalise_phone(phone) if phone else None,
        "email": value("email") or None, "lat": lat, "lng": lng, "feeder": value("feeder") or None,
        "transformer": value("transformer") or None, "critical": bool(critical), "language": language,
        "preferred_channels": list(dict.fromkeys(channels)) or (["SMS"] if phone else []),
        "quiet_hours": None if not quiet else ("" if quiet.lower() == "none" else quiet),
    }, []


def import_customers(session: Session, text: str | Iterable[str], now: datetime | None = None) -> ImportReport:
    """Create or update customers (by account number) from CSV text; broken rows are reported, the rest kept.

    Commits once at the end: a file is taken whole (minus its rejected rows) or, on a database error, not at all.
    """
    now = now or utcnow()
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text) if isinstance(text, str) else text)
    missing = [c for c in ("account_number",) if c not in (reader.fieldnames or [])]
    if missing:
        report.errors.append(RowError(1, None, f"the header lacks {missing}; columns: {', '.join(CUSTOMER_COLUMNS)}"))
        return report
    rows: dict[str, dict[str, object]] = {}
    for line, row in enumerate(reader, start=2):
        if None in row:  # more cells than header columns
            report.errors.append(RowError(line, None, "more cells than the header has columns"))
            continue
        parsed, errors = parse_customer_row(row, line)
        report.errors.extend(errors)
        if parsed is not None:
            if parsed["account_number"] in rows:
                report.errors.append(RowError(line, "account_number",
                                              f"account {parsed['account_number']} appears twice; the last row wins"))
            rows[str(parsed["account_number"])] = parsed
    existing = {}
    accounts = list(rows)
    for start in range(0, len(accounts), 500):
        for customer in session.exec(select(Customer).where(col(Customer.account_number).in_(accounts[start:
                                                                                                       start + 500]))):
            existing[customer.account_number] = customer
    fresh = [{**values, "created_at": now, "updated_at": now} for account, values in rows.items()
             if account not in existing]
    for start in range(0, len(fresh), 1000):  # new customers in bulk: files have tens of thousands of rows
        session.execute(insert(Customer), fresh[start:start + 1000])
    report.created = len(fresh)
    for account, values in rows.items():
        customer = existing.get(account)
        if customer is not None:
            for name, value in values.items():
                setattr(customer, name, value)
            customer.updated_at = now
            session.add(customer)
            report.updated += 1
    session.commit()
    clear_network_cache()
    return report


def import_network(session: Session, text: str) -> ImportReport:
    """Devices from CSV `device_id,kind,parent_id[,lat,lng]`: transformer -> fuse/section -> feeder."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text))
    if not {"device_id", "kind"} <= set(reader.fieldnames or []):
        report.errors.append(RowError(1, None, "the header needs device_id,kind,parent_id[,lat,lng]"))
        return report
    parsed: dict[str, dict[str, object]] = {}
    lines: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        device = (row.get("device_id") or "").strip()
        kind = (row.get("kind") or "").strip().upper()
        parent = (row.get("parent_id") or "").strip() or None
        problems = []
        if not device or len(device) > 64:
            problems.append(RowError(line, "device_id", "device_id is required (at most 64 characters)"))
        if kind not in DEVICE_KINDS:
            problems.append(RowError(line, "kind", f"'{kind[:20]}' is not one of {', '.join(DEVICE_KINDS)}"))
        if kind == "FEEDER" and parent:
            problems.append(RowError(line, "parent_id", "a feeder has no parent"))
        if kind and kind != "FEEDER" and kind in DEVICE_KINDS and not parent:
            problems.append(RowError(line, "parent_id", f"a {kind.lower()} needs its upstream device"))
        lat = lng = None
        if (row.get("lat") or "").strip():
            found = validate_lat_lng(row.get("lat"), row.get("lng"))
            if found:
                problems.append(RowError(line, "lat/lng", "; ".join(found)))
            else:
                lat, lng = float(row["lat"] or 0), float(row["lng"] or 0)
        if problems:
            report.errors.extend(problems)
            continue
        parsed[device] = {"kind": kind, "parent_id": parent, "lat": lat, "lng": lng}
        lines[device] = line
    known = {d.id: d for d in session.exec(select(NetworkDevice))}
    for device, values in list(parsed.items()):  # parents must exist (in the file or already imported)
        parent = values["parent_id"]
        if parent is not None and parent not in parsed and parent not in known:
            report.errors.append(RowError(lines[device], "parent_id", f"unknown upstream device '{parent}'"))
            del parsed[device]
    def feeder_of(device: str) -> str | None:
        seen: set[str] = set()
        current: str | None = device
        while current is not None and current not in seen:
            seen.add(current)
            values = parsed.get(current)
            kind = values["kind"] if values else (known[current].kind if current in known else None)
            if kind == "FEEDER":
                return current
            current = values["parent_id"] if values else (known[current].parent_id if current in known else None)  # type: ignore[assignment]
        return None
    for device, values in parsed.items():
        row = known.get(device) or NetworkDevice(id=device, kind=str(values["kind"]))
        report.updated += device in known
        report.created += device not in known
        row.kind = str(values["kind"])
        row.parent_id = values["parent_id"]  # type: ignore[assignment]
        row.lat, row.lng = values["lat"], values["lng"]  # type: ignore[assignment]
        row.feeder = feeder_of(device)
        session.add(row)
    session.commit()
    clear_network_cache()
    return report


_network_cache: dict[tuple[str, str | None], tuple[float, Network | None]] = {}
NETWORK_CACHE_SECONDS = 60.0


def clear_network_cache() -> None:
    _network_cache.clear()


def load_network(session: Session, feeder: str | None = None) -> Network | None:
    """The network (of one feeder, when given) with customer counts per transformer; None when none is known.

    Read at most once a minute per database and feeder (every fault report asks); imports clear the cache."""
    key = (str(session.get_bind().engine.url), feeder)
    cached = _network_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < NETWORK_CACHE_SECONDS:
        return cached[1]
    network = _read_network(session, feeder)
    _network_cache[key] = (time.monotonic(), network)
    return network


def _read_network(session: Session, feeder: str | None) -> Network | None:
    query = select(NetworkDevice)
    if feeder is not None:
        query = query.where(NetworkDevice.feeder == feeder)
    devices = list(session.exec(query))
    if not devices:
        return None
    transformers = [d.id for d in devices if d.kind == "TRANSFORMER"]
    counts: dict[str, int] = {}
    for start in range(0, len(transformers), 500):
        chunk = transformers[start:start + 500]
        for transformer, count in session.exec(
                select(Customer.transformer, func.count()).where(col(Customer.transformer).in_(chunk))
                .group_by(Customer.transformer)):
            counts[transformer or ""] = int(count)
    return Network(parent={d.id: d.parent_id for d in devices}, kind={d.id: d.kind for d in devices},
                   customers_on_transformer=counts)


_CUSTOMERS = select(Customer).where(col(Customer.account_number).in_(id_list("accounts"))
                                    | col(Customer.phone).in_(id_list("phones")))


def find_customers(session: Session, callers: list[tuple[str | None, str | None]]) -> list[Customer | None]:
    """The customer behind each report (account number, phone): by account number first, else by phone when it
    names one customer; one query for them all (intake reads a batch at once)."""
    wanted = [(account.strip() if account else None, normalise_phone(phone) if phone else None)
              for account, phone in callers]
    accounts = sorted({a for a, _ in wanted if a})
    numbers = sorted({n for _, n in wanted if n})
    if not (accounts or numbers):
        return [None] * len(callers)
    by_account: dict[str, Customer] = {}
    by_phone: dict[str, list[Customer]] = {}
    for customer in session.exec(_CUSTOMERS, params={"accounts": accounts, "phones": numbers}):
        by_account[customer.account_number] = customer
        if customer.phone:
            by_phone.setdefault(customer.phone, []).append(customer)
    found: list[Customer | None] = []
    for account, number in wanted:
        if account and account in by_account:
            found.append(by_account[account])
            continue
        same_phone = by_phone.get(number or "", [])
        found.append(same_phone[0] if len(same_phone) == 1 else None)  # a shared phone names nobody
    return found


def link_ticket(session: Session, ticket_id: int, customer: Customer) -> None:
    if session.get(TicketCustomer, ticket_id) is None:
        session.add(TicketCustomer(ticket_id=ticket_id, customer_id=customer.id or 0))


def customer_of_ticket(session: Session, ticket_id: int) -> Customer | None:
    link = session.get(TicketCustomer, ticket_id)
    return session.get(Customer, link.customer_id) if link is not None else None
