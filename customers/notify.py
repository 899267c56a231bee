"""The notification outbox: messages rendered from templates (Chinese and English), one row per recipient,
channel and change (the dedup key makes a change go out once), held back by quiet hours unless urgent."""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.clock import utcnow
from core.types import UTCDateTime
from customers.config import CustomerSettings, get_customer_settings
from customers.models import Customer, Notification

log = logging.getLogger(__name__)

# kind -> language -> template; {placeholders} are filled from the change (times are local HH:MM).
TEMPLATES: dict[str, dict[str, str]] = {
    "CREW_ASSIGNED": {
        "zh": "【供电服务】您的报修{number}已派出抢修人员，预计{eta}到达，预计{etr}恢复供电。",
        "en": "Power service: a repair crew is assigned to your report {number}, expected at {eta}; "
              "power expected back by {etr}.",
    },
    "ETA_CHANGED": {
        "zh": "【供电服务】您的报修{number}抢修人员到达时间调整为{eta}。",
        "en": "Power service: the crew for your report {number} is now expected at {eta}.",
    },
    "ON_SITE": {
        "zh": "【供电服务】抢修人员已到达现场处理您的报修{number}，预计{etr}恢复供电。",
        "en": "Power service: the crew is on site for your report {number}; power expected back by {etr}.",
    },
    "ETR": {
        "zh": "【供电服务】您所在区域停电，约{customers}户受影响，预计{etr}恢复供电。",
        "en": "Power service: there is an outage in your area ({customers} customers); power expected back by {etr}.",
    },
    "ETR_CHANGED": {
        "zh": "【供电服务】您所在区域的预计恢复供电时间调整为{etr}。",
        "en": "Power service: the estimated restoration time in your area is now {etr}.",
    },
    "RESTORED": {
        "zh": "【供电服务】您所在区域已恢复供电（{restored}）。如仍无电，请拨打95598。",
        "en": "Power service: power is restored in your area ({restored}). Still without power? Call 95598.",
    },
    "PLANNED_NOTICE": {
        "zh": "【供电服务】计划停电通知：{title}，{start}至{end}停电，请提前做好准备。",
        "en": "Power service: planned outage '{title}' from {start} to {end}. Please prepare.",
    },
    "PLANNED_START": {
        "zh": "【供电服务】计划停电现在开始：{title}，预计{end}恢复供电。",
        "en": "Power service: the planned outage '{title}' starts now; power expected back by {end}.",
    },
    "PLANNED_RESTORED": {
        "zh": "【供电服务】计划停电已结束：{title}，已恢复供电。",
        "en": "Power service: the planned outage '{title}' is over; power is restored.",
    },
}
URGENT_KINDS = frozenset({"PLANNED_START"})
DEFAULT_LANGUAGE = "zh"


class TemplateError(ValueError):
    """A template that can't be rendered: unknown kind or a placeholder the change does not provide."""


def placeholders(template: str) -> set[str]:
    return {name for _text, name, _spec, _conv in string.Formatter().parse(template) if name}


@lru_cache
def load_templates(path: str | None = None) -> dict[str, dict[str, str]]:
    """The shipped templates, with those of a JSON file (`templates_file`) laid over them."""
    templates = {kind: dict(by_language) for kind, by_language in TEMPLATES.items()}
    if path:
        for kind, by_language in json.loads(Path(path).read_text(encoding="utf-8")).items():
            templates.setdefault(kind, {}).update(by_language)
    return templates


def render(kind: str, language: str, values: dict[str, object],
           templates: dict[str, dict[str, str]] | None = None) -> str:
    """The message of `kind` in `language` (else Chinese); a missing variable is a TemplateError, not a blank."""
    templates = templates if templates is not None else load_templates(get_customer_settings().templates_file)
    by_language = templates.get(kind)
    if not by_language:
        raise TemplateError(f"no template for notification kind {kind}")
    template = by_language.get(language) or by_language.get(DEFAULT_LANGUAGE) or next(iter(by_language.values()))
    missing = sorted(placeholders(template) - set(values))
    if missing:
        raise TemplateError(f"template {kind}/{language} needs {', '.join(missing)}, which this change lacks")
    return template.format(**{k: "" if v is None else v for k, v in values.items()})


def local_time(value: datetime | None, settings: CustomerSettings | None = None, with_date: bool = False) -> str:
    if value is None:
        return "-"
    settings = settings or get_customer_settings()
    local = value + timedelta(hours=settings.local_utc_offset_hours)
    return local.strftime("%m-%d %H:%M" if with_date else "%H:%M")


@dataclass(frozen=True)
class Recipient:
    """Who hears: a key stable per person (customer id or phone), language, channels with addresses."""

    key: str
    language: str
    addresses: dict[str, str]  # channel -> address (phone, WeChat/app id, email)
    customer_id: int | None = None
    critical: bool = False
    quiet_hours: str | None = None  # None: the default; "": none


def recipient_of_customer(customer: Customer) -> Recipient:
    return recipient_from_fields(customer.id, customer.account_number, customer.phone, customer.email,
                                 customer.language, customer.preferred_channels, customer.critical,
                                 customer.quiet_hours)


def recipient_from_fields(customer_id: int | None, account_number: str, phone: str | None, email: str | None,
                          language: str | None, channels: Sequence[str], critical: bool,
                          quiet_hours: str | None) -> Recipient:
    """A customer's recipient from plain column values (fan-outs read rows, not ORM objects)."""
    addresses: dict[str, str] = {}
    for channel in channels:
        if channel == "EMAIL":
            if email:
                addresses[channel] = email
        elif channel == "SMS":
            if phone:
                addresses[channel] = phone
        elif channel in {"WECHAT", "APP"}:
            addresses[channel] = f"account:{account_number}"
    return Recipient(key=f"c{customer_id}", language=language or DEFAULT_LANGUAGE, addresses=addresses,
                     customer_id=customer_id, critical=critical, quiet_hours=quiet_hours)


def recipient_of_caller(phone: str | None, preferred_channels: Sequence[str]) -> Recipient | None:
    """A caller without a customer record: their phone, on the channels they asked for that can reach a phone."""
    if not phone:
        return None
    addresses = {c: phone if c == "SMS" else f"phone:{phone}" for c in preferred_channels if c in {"SMS", "WECHAT",
                                                                                                      "APP"}}
    return Recipient(key=f"p{phone}", language=DEFAULT_LANGUAGE, addresses=addresses) if addresses else None


def _parse_quiet(text: str) -> tuple[time, time] | None:
    try:
        start, end = text.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)
    except ValueError:
        return None


def quiet_until(at: datetime, quiet_hours: str | None, settings: CustomerSettings | None = None) -> datetime | None:
    """When quiet hours end, if `at` falls inside them (local time), else None."""
    settings = settings or get_customer_settings()
    text = settings.quiet_hours if quiet_hours is None else quiet_hours
    window = _parse_quiet(text) if text else None
    if window is None:
        return None
    offset = timedelta(hours=settings.local_utc_offset_hours)
    local = at + offset
    start, end = window
    now_t = local.time()
    inside = (start <= now_t < end) if start < end else (now_t >= start or now_t < end)
    if not inside:
        return None
    end_local = datetime.combine(local.date(), end, tzinfo=local.tzinfo)
    if end_local <= local:
        end_local += timedelta(days=1)
    return end_local - offset


@dataclass
class Change:
    """One change customers hear about: its kind, the scope it belongs to (for the dedup key) and values."""

    kind: str
    scope: str  # e.g. "t42" (ticket), "i7" (incident), "p3" (planned outage)
    stamp: str  # what makes this change distinct from earlier ones of the same kind, e.g. the new ETR
    values: dict[str, object] = field(default_factory=dict)
    ticket_id: int | None = None
    incident_id: int | None = None
    planned_outage_id: int | None = None


def enqueue(session: Session, change: Change, recipients: Iterable[Recipient], now: datetime | None = None,
            settings: CustomerSettings | None = None) -> int:
    """Add one outbox row per recipient and preferred channel; a row already there (same dedup key) is kept.

    Runs in the caller's transaction (the change and its notifications commit together). Returns rows offered.
    """
    return enqueue_many(session, [(change, recipients, now)], settings)


def enqueue_many(session: Session, changes: Iterable[tuple[Change, Iterable[Recipient], datetime | None]],
                 settings: CustomerSettings | None = None) -> int:
    """`enqueue` for several changes, each with its recipients and time (None: now), in one insert."""
    settings = settings or get_customer_settings()
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for change, recipients, at in changes:
        now = at or utcnow()
        bodies: dict[str, tuple[str, str | None]] = {}
        urgent_kind = change.kind in URGENT_KINDS
        for recipient in recipients:
            if recipient.language not in bodies:
                try:
                    bodies[recipient.language] = (render(change.kind, recipient.language, change.values), None)
                except TemplateError as error:
                    log.error("notification %s not rendered: %s", change.kind, error)
                    bodies[recipient.language] = ("", str(error)[:500])
            body, error = bodies[recipient.language]
            urgent = urgent_kind or recipient.critical
            held = None if urgent else quiet_until(now, recipient.quiet_hours, settings)
            for channel, address in recipient.addresses.items():
                key = f"{change.kind}:{change.scope}:{change.stamp}:{recipient.key}:{channel}"[:200]
                if key in seen:
                    continue
                seen.add(key)
                rows.append({
                    "dedup_key": key, "kind": change.kind, "channel": channel, "recipient": address[:200],
                    "customer_id": recipient.customer_id, "ticket_id": change.ticket_id,
                    "incident_id": change.incident_id, "planned_outage_id": change.planned_outage_id,
                    "language": recipient.language, "body": body, "urgent": urgent,
                    # A message that can't be rendered is kept, visibly FAILED, rather than sent blank or dropped.
                    "status": "FAILED" if error else "PENDING", "attempts": 0, "last_error": error,
                    "next_attempt_at": held or now, "created_at": now, "sent_at": None,
                })
    if rows:
        insert_ignoring_duplicates(session, rows)
    return len(rows)


def insert_ignoring_duplicates(session: Session, rows: list[dict[str, object]]) -> None:
    """INSERT ... ON CONFLICT (dedup_key) DO NOTHING for many rows, compiled once and run as one driver-level
    executemany (per-row parameter processing made a 10 000-customer fan-out too slow)."""
    table = Notification.__table__  # type: ignore[attr-defined]
    connection = session.connection()
    dialect = connection.dialect
    module = postgresql if dialect.name == "postgresql" else sqlite
    statement = module.insert(table).on_conflict_do_nothing(index_elements=["dedup_key"])
    keys = list(rows[0])
    compiled = statement.compile(dialect=dialect, column_keys=keys)
    stamps = [k for k in keys if isinstance(table.c[k].type, UTCDateTime)]
    converter = UTCDateTime()
    converted: dict[object, object] = {}  # the rows of one change share their timestamps: convert each once

    def stamp(value: object) -> object:
        if value not in converted:
            converted[value] = converter.process_bind_param(value, dialect)  # type: ignore[arg-type]
        return converted[value]

    prepared = [{**row, **{k: stamp(row[k]) for k in stamps}} for row in rows]
    if dialect.name == "postgresql":  # one round trip: the rows as column arrays, unnested
        _insert_unnest(connection, table, keys, prepared)
        return
    if compiled.positional:
        order = compiled.positiontup or []
        connection.exec_driver_sql(compiled.string, [tuple(row[k] for k in order) for row in prepared])
    else:
        connection.exec_driver_sql(compiled.string, prepared)  # type: ignore[arg-type]


def _pg_array_type(column: object) -> str:
    kind = getattr(column, "type", None)
    if isinstance(kind, UTCDateTime):
        return "timestamptz"
    name = type(kind).__name__.lower()
    return "bigint" if "integer" in name else "boolean" if "bool" in name else "text"


def _insert_unnest(connection: object, table: object, keys: list[str], rows: list[dict[str, object]]) -> None:
    """Columns that vary go as arrays (unnested), columns one change shares (kind, times, ids) as one value."""
    for start in range(0, len(rows), 20_000):
        chunk = rows[start:start + 20_000]
        varying = [k for k in keys if k == "dedup_key" or any(row[k] != chunk[0][k] for row in chunk)]
        types = {k: _pg_array_type(table.c[k]) for k in keys}  # type: ignore[attr-defined]
        select_list = ", ".join(f'u."{k}"' if k in varying else f"%({k})s::{types[k]}" for k in keys)
        arrays = ", ".join(f"%({k})s::{types[k]}[]" for k in varying)
        names = ", ".join(f'"{k}"' for k in varying)
        sql = (f'INSERT INTO {table.name} ({", ".join(chr(34) + k + chr(34) for k in keys)}) '  # type: ignore[attr-defined]
               f"SELECT {select_list} FROM unnest({arrays}) AS u({names}) ON CONFLICT (dedup_key) DO NOTHING")
        params = {k: [row[k] for row in chunk] if k in varying else chunk[0][k] for k in keys}
        connection.exec_driver_sql(sql, params)  # type: ignore[attr-defined]
