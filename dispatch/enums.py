"""The vocabularies of tickets and plans: kinds, channels, priorities, statuses, area types."""

from __future__ import annotations

from enum import StrEnum


class TicketKind(StrEnum):
    FAULT_REPAIR = "FAULT_REPAIR"
    EMERGENCY = "EMERGENCY"
    COMPLAINT = "COMPLAINT"
    INQUIRY = "INQUIRY"
    REPORT = "REPORT"
    SUGGESTION = "SUGGESTION"


class Channel(StrEnum):
    HOTLINE = "HOTLINE"
    APP = "APP"
    WECHAT = "WECHAT"
    WEB = "WEB"
    SMS = "SMS"
    FIELD = "FIELD"


class Priority(StrEnum):
    EMERGENCY = "EMERGENCY"
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"


# Most urgent first; the index is the rank.
PRIORITY_ORDER: list[Priority] = list(Priority)


class TicketStatus(StrEnum):
    NEW = "NEW"
    ASSIGNED = "ASSIGNED"
    EN_ROUTE = "EN_ROUTE"
    ON_SITE = "ON_SITE"
    ON_HOLD = "ON_HOLD"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"


OPEN_STATUSES = frozenset(
    {TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.EN_ROUTE, TicketStatus.ON_SITE, TicketStatus.ON_HOLD}
)
IN_PROGRESS_STATUSES = frozenset({TicketStatus.EN_ROUTE, TicketStatus.ON_SITE})
# Kinds whose work is done in the field by a crew; the others are handled by the service centre.
FIELD_KINDS = frozenset({TicketKind.FAULT_REPAIR, TicketKind.EMERGENCY})


class AreaType(StrEnum):
    URBAN = "URBAN"
    RURAL = "RURAL"
    REMOTE = "REMOTE"


class IncidentStatus(StrEnum):
    SUSPECTED = "SUSPECTED"
    CONFIRMED = "CONFIRMED"
    RESTORING = "RESTORING"
    RESTORED = "RESTORED"


class PlanStatus(StrEnum):
    PROPOSED = "PROPOSED"
    COMMITTED = "COMMITTED"
    SUPERSEDED = "SUPERSEDED"
