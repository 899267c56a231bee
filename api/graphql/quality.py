"""Service-quality GraphQL: repeat callers, hotspots, service statistics, supervision tasks, callbacks, handover."""

from __future__ import annotations

from typing import Any

import graphene

from api.graphql.core import (
    AreaType,
    BaseMutation,
    Channel,
    TicketKind,
    UserError,
    decode_id,
    enum_value,
    list_page,
    list_page_args,
)
from api.graphql.tickets import TicketPayload
from core.errors import DomainError
from core.settings import get_settings
from quality import models
from quality.callbacks import list_callback_tasks, record_callback
from quality.common import days_window
from quality.handover import handover_ticket
from quality.hotspots import hotspots, index_keywords
from quality.repeat_callers import repeat_callers
from quality.rules import QualitySettings, RiskRules, load_quality_settings, load_risk_rules
from quality.stats import service_stats
from quality.supervision import list_quality_tasks


def quality_config() -> tuple[RiskRules, QualitySettings]:
    settings = get_settings()
    return load_risk_rules(settings.risk_rules_file), load_quality_settings(settings.quality_settings_file)


class RiskLevel(graphene.Enum):
    RED = "RED"
    ORANGE = "ORANGE"
    YELLOW = "YELLOW"
    BLUE = "BLUE"


class RepeatCaller(graphene.ObjectType):
    phone_masked = graphene.String(required=True)
    ticket_count = graphene.Int(required=True)
    risk_level = graphene.Field(RiskLevel, required=True)
    tickets = graphene.List(graphene.NonNull("api.graphql.tickets.Ticket"), required=True)
    complaint_count = graphene.Int(required=True)
    trigger = graphene.String(required=True, description="why this level, e.g. '5 tickets in 30 days'")
    department = graphene.String(required=True, description="responsible department")
    required_action = graphene.String(required=True)
    deadline = graphene.DateTime(description="when the required action is due (none for the watch list)")
    unit = graphene.String(required=True, description="unit owning the caller's latest ticket")


class HotspotTrend(graphene.Enum):
    NEW = "NEW"
    RISING = "RISING"
    STEADY = "STEADY"
    FALLING = "FALLING"


class Hotspot(graphene.ObjectType):
    keyword = graphene.String(required=True)
    category = graphene.Field(TicketKind, required=True)
    branch = graphene.String()
    ticket_count = graphene.Int(required=True)
    weight = graphene.Float(required=True, description="weight of the keyword in the utility vocabulary")
    score = graphene.Float(required=True, description="ticketCount × weight: the ranking")
    previous_count = graphene.Int(required=True, description="tickets in the window before")
    trend = graphene.Field(HotspotTrend, required=True)

    @staticmethod
    def resolve_keyword(root: Any, _info: Any) -> str:
        return root.label


class KindCount(graphene.ObjectType):
    kind = graphene.Field(TicketKind, required=True)
    count = graphene.Int(required=True)


class ChannelCount(graphene.ObjectType):
    channel = graphene.Field(Channel, required=True)
    count = graphene.Int(required=True)


class AreaTypeStats(graphene.ObjectType):
    area_type = graphene.Field(AreaType, required=True)
    arrivals = graphene.Int(required=True)
    mean_arrival_minutes = graphene.Float()
    p90_arrival_minutes = graphene.Float()
    arrival_commitment_minutes = graphene.Int()
    arrival_within_sla_rate = graphene.Float()
    restorations = graphene.Int(required=True)
    mean_restoration_minutes = graphene.Float()
    p90_restoration_minutes = graphene.Float()
    restoration_commitment_minutes = graphene.Int()


class BranchStats(graphene.ObjectType):
    branch = graphene.String(required=True)
    manager = graphene.String()
    tickets = graphene.Int(required=True)
    overdue_count = graphene.Int(required=True)
    resolved_count = graphene.Int(required=True)
    one_time_resolution_rate = graphene.Float()
    mean_arrival_minutes = graphene.Float()
    arrival_within_sla_rate = graphene.Float()
    mean_restoration_minutes = graphene.Float()
    satisfaction_mean = graphene.Float()
    unlocated_count = graphene.Int(required=True, description="tickets without location counted here")
    flagged = graphene.Boolean(required=True)


class ServiceStats(graphene.ObjectType):
    tickets_by_kind = graphene.List(graphene.NonNull(KindCount), required=True)
    overdue_count = graphene.Int(required=True)
    one_time_resolution_rate = graphene.Float()
    mean_arrival_minutes = graphene.Float()
    arrival_within_sla_rate = graphene.Float()
    satisfaction_mean = graphene.Float()
    from_ = graphene.DateTime(required=True, name="from")
    to = graphene.DateTime(required=True)
    branch = graphene.String()
    ticket_count = graphene.Int(required=True)
    tickets_by_channel = graphene.List(graphene.NonNull(ChannelCount), required=True)
    resolved_count = graphene.Int(required=True)
    p90_arrival_minutes = graphene.Float()
    mean_restoration_minutes = graphene.Float()
    p90_restoration_minutes = graphene.Float()
    satisfaction_count = graphene.Int(required=True)
    unlocated_count = graphene.Int(required=True)
    by_area_type = graphene.List(graphene.NonNull(AreaTypeStats), required=True)
    by_branch = graphene.List(graphene.NonNull(BranchStats), required=True)

    @staticmethod
    def resolve_tickets_by_kind(root: Any, _info: Any) -> list[dict[str, Any]]:
        return [{"kind": k, "count": n} for k, n in sorted(root.tickets_by_kind.items())]

    @staticmethod
    def resolve_tickets_by_channel(root: Any, _info: Any) -> list[dict[str, Any]]:
        return [{"channel": k, "count": n} for k, n in sorted(root.tickets_by_channel.items())]

    @staticmethod
    def resolve_from_(root: Any, _info: Any) -> Any:
        return root.start

    @staticmethod
    def resolve_to(root: Any, _info: Any) -> Any:
        return root.end


class QualityTask(graphene.ObjectType):
    id = graphene.ID(required=True)
    kind = graphene.String(required=True, description="SUPERVISION_WARNING, SUPERVISION_OVERDUE, RISK_LEVEL")
    ticket = graphene.Field("api.graphql.tickets.Ticket")
    recipient_role = graphene.String(required=True, description="UNIT, MANAGER or DEPARTMENT")
    recipient = graphene.String(required=True)
    unit = graphene.String(required=True)
    step = graphene.String()
    level = graphene.String()
    message = graphene.String(required=True)
    due_at = graphene.DateTime()
    status = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_ticket(root: models.QualityTask, info: Any) -> Any:
        return info.context.loaders.ticket.load(root.ticket_id) if root.ticket_id else None


class CallbackTask(graphene.ObjectType):
    id = graphene.ID(required=True)
    ticket = graphene.Field("api.graphql.tickets.Ticket", required=True)
    reason = graphene.String(required=True, description="COMPLAINT or SAMPLE (of repairs)")
    due_at = graphene.DateTime(required=True)
    status = graphene.String(required=True, description="PENDING or DONE")
    reached = graphene.Boolean()
    score = graphene.Int()
    resolved = graphene.Boolean()
    note = graphene.String()
    done_at = graphene.DateTime()

    @staticmethod
    def resolve_ticket(root: models.CallbackTask, info: Any) -> Any:
        return info.context.loaders.ticket.load(root.ticket_id)


class QualityQueries(graphene.ObjectType):
    repeat_callers = graphene.List(graphene.NonNull(RepeatCaller), required=True, days=graphene.Int(),
                                   **list_page_args())
    hotspots = graphene.List(graphene.NonNull(Hotspot), required=True, days=graphene.Int(),
                             branch=graphene.String(), kind=graphene.List(graphene.NonNull(TicketKind)),
                             limit=graphene.Int(description="at most 200; default 20"))
    service_stats = graphene.Field(ServiceStats, required=True, **{"from": graphene.DateTime()},
                                   to=graphene.DateTime(), branch=graphene.String())
    quality_tasks = graphene.List(graphene.NonNull(QualityTask), required=True, open=graphene.Boolean(),
                                  unit=graphene.String(), first=graphene.Int(description="default 100"))
    callback_tasks = graphene.List(graphene.NonNull(CallbackTask), required=True, pending=graphene.Boolean(),
                                   first=graphene.Int(description="default 100"))

    @staticmethod
    def resolve_repeat_callers(_root: Any, info: Any, days: int | None = None, first: int | None = None,
                               offset: int | None = None) -> Any:
        risk_rules, settings = quality_config()
        return list_page(repeat_callers(info.context.session, risk_rules, settings, days=days), info, first, offset)

    @staticmethod
    def resolve_hotspots(_root: Any, info: Any, days: int | None = None, branch: str | None = None,
                         kind: list[Any] | None = None, limit: int | None = None) -> Any:
        _, settings = quality_config()
        session = info.context.session
        # Tickets of both windows reported since the scheduler's last pass get their keywords first.
        if index_keywords(session, since=days_window(days).previous().start):
            session.commit()
        return hotspots(session, info.context.services.intake.region, settings, days=days, branch=branch,
                        kinds=enum_value(kind), limit=20 if limit is None else limit)

    @staticmethod
    def resolve_service_stats(_root: Any, info: Any, to: Any = None, branch: str | None = None,
                              **args: Any) -> Any:
        _, settings = quality_config()
        intake = info.context.services.intake
        for name, value in (("from", args.get("from")), ("to", to)):
            if value is not None and not 1900 <= value.year <= 2999:  # windows are computed around them
                raise DomainError.one(name, f"{name} must be between the years 1900 and 2999")
        return service_stats(info.context.session, intake.rules, intake.region, settings, start=args.get("from"),
                             end=to, branch=branch)

    @staticmethod
    def resolve_quality_tasks(_root: Any, info: Any, open: bool | None = None, unit: str | None = None,  # noqa: A002
                              first: int | None = None) -> Any:
        return list_quality_tasks(info.context.session, open, unit, _page(first, info))

    @staticmethod
    def resolve_callback_tasks(_root: Any, info: Any, pending: bool | None = None, first: int | None = None) -> Any:
        return list_callback_tasks(info.context.session, pending, _page(first, info))


def _page(first: int | None, info: Any) -> int:
    limit = info.context.services.max_page_size
    first = 100 if first is None else first
    if not 0 <= first <= limit:
        raise DomainError.one("first", f"first must be between 0 and {limit}")
    return first


class RecordCallbackInput(graphene.InputObjectType):
    callback_id = graphene.ID(required=True)
    reached = graphene.Boolean(required=True)
    score = graphene.Int(description="1–5, when reached")
    resolved = graphene.Boolean(description="the customer considers it resolved (when reached); false reopens")
    note = graphene.String()


class CallbackPayload(graphene.ObjectType):
    callback = graphene.Field(CallbackTask)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class RecordCallback(BaseMutation):
    class Arguments:
        input = RecordCallbackInput(required=True)

    Output = CallbackPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        session = info.context.session
        task = record_callback(session, decode_id(input["callback_id"], "CallbackTask", "callbackId"),
                               input.get("reached"), input.get("score"), input.get("resolved"), input.get("note"),
                               source=info.context.principal.source)
        session.commit()
        return {"callback": task}


class HandoverTicketInput(graphene.InputObjectType):
    ticket_id = graphene.ID(required=True)
    to_unit = graphene.String(required=True, description="branch code (or the default unit) taking the ticket over")
    reason = graphene.String(required=True)


class HandoverTicket(BaseMutation):
    class Arguments:
        input = HandoverTicketInput(required=True)

    Output = TicketPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        _, settings = quality_config()
        session = info.context.session
        ticket = handover_ticket(session, decode_id(input["ticket_id"], "Ticket", "ticketId"), input["to_unit"],
                                 input["reason"], info.context.principal.source,
                                 info.context.services.intake.region, settings)
        session.commit()
        return {"ticket": ticket}


class QualityMutations(graphene.ObjectType):
    record_callback = RecordCallback.Field(required=True)
    handover_ticket = HandoverTicket.Field(required=True)
