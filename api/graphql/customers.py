"""Customer-facing GraphQL: `trackTicket` and `submitFeedback` (public, rate-limited, no personal data), the
public `outageSummary`, and the staff mutations importing customers and the network and planning outages."""

from __future__ import annotations

from typing import Any

import graphene
from graphql import GraphQLError

from api.graphql.core import BaseMutation, GeoPoint, TicketStatus, UserError, decode_id
from core.errors import DomainError
from customers.directory import import_customers, import_network
from customers.feedback import submit_feedback
from customers.outage_map import OutageArea as OutageAreaData
from customers.outage_map import outage_map_for
from customers.planned import NewPlannedOutage, affected_customers, create_planned_outage, restore_planned_outage
from customers.tracking import Tracking, track_guarded


def client_of(info: Any) -> str | None:
    request = info.context.request
    client = getattr(request, "client", None)
    return getattr(client, "host", None)


class TrackingEvent(graphene.ObjectType):
    at = graphene.DateTime(required=True)
    message = graphene.String(required=True)


class TicketTracking(graphene.ObjectType):
    """Public view of a ticket: no personal data."""

    number = graphene.String(required=True)
    status = graphene.Field(TicketStatus, required=True)
    eta = graphene.DateTime()
    etr = graphene.DateTime()
    power_restored_at = graphene.DateTime()
    timeline = graphene.List(graphene.NonNull(TrackingEvent), required=True)


class OutageArea(graphene.ObjectType):
    """Active outages in one grid cell: counts only, never a customer."""

    cell = graphene.String(required=True)
    center = graphene.Field(GeoPoint, required=True)
    incidents = graphene.Int(required=True)
    customers_affected = graphene.Int(required=True)
    causes = graphene.List(graphene.NonNull(graphene.String), required=True)
    etr = graphene.DateTime()

    @staticmethod
    def resolve_center(root: OutageAreaData, _info: Any) -> dict[str, float]:
        return {"lat": root.lat, "lng": root.lng}


class CustomerQueries(graphene.ObjectType):
    track_ticket = graphene.Field(TicketTracking, number=graphene.String(required=True),
                                  phone_last4=graphene.String(required=True))
    outage_summary = graphene.List(graphene.NonNull(OutageArea), required=True,
                                   description="active outages aggregated to grid cells (cached)")

    @staticmethod
    def resolve_track_ticket(_root: Any, info: Any, number: str, phone_last4: str) -> Tracking | None:
        try:
            return track_guarded(info.context.session, number, phone_last4, client_of(info))
        except DomainError as error:
            problem = error.problems[0]
            raise GraphQLError(problem.message, extensions={"code": problem.code.value}) from error

    @staticmethod
    def resolve_outage_summary(_root: Any, info: Any) -> list[OutageAreaData]:
        return outage_map_for(info.context.services.engine).areas()


class SubmitFeedbackInput(graphene.InputObjectType):
    ticket_number = graphene.String(required=True)
    phone_last4 = graphene.String(required=True)
    score = graphene.Int(required=True, description="1..5")
    comment = graphene.String()


class FeedbackPayload(graphene.ObjectType):
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class SubmitFeedback(BaseMutation):
    class Arguments:
        input = SubmitFeedbackInput(required=True)

    Output = FeedbackPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        submit_feedback(info.context.session, input["ticket_number"], input["phone_last4"], input["score"],
                        input.get("comment"), client=client_of(info))
        return {}


class RowError(graphene.ObjectType):
    line = graphene.Int(required=True, description="line of the file; the header is line 1")
    column = graphene.String()
    message = graphene.String(required=True)


class ImportInput(graphene.InputObjectType):
    csv = graphene.String(required=True, description="the CSV text, header first")


class ImportPayload(graphene.ObjectType):
    created = graphene.Int(description="rows that made new records (null when nothing ran)")
    updated = graphene.Int()
    row_errors = graphene.List(graphene.NonNull(RowError), description="every rejected row with its line")
    errors = graphene.List(graphene.NonNull(UserError), required=True)


def _report(report: Any) -> dict[str, Any]:
    return {"created": report.created, "updated": report.updated, "row_errors": report.errors}


class ImportCustomers(BaseMutation):
    """Customers by account number (created or updated); broken rows come back with their line and reason."""

    class Arguments:
        input = ImportInput(required=True)

    Output = ImportPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        return _report(import_customers(info.context.session, input["csv"]))


class ImportNetwork(BaseMutation):
    """Network devices `device_id,kind,parent_id[,lat,lng]`: transformer -> fuse/section -> feeder."""

    class Arguments:
        input = ImportInput(required=True)

    Output = ImportPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        return _report(import_network(info.context.session, input["csv"]))


class PlannedOutage(graphene.ObjectType):
    id = graphene.ID(required=True)
    title = graphene.String(required=True)
    feeder = graphene.String()
    start_at = graphene.DateTime(required=True)
    end_at = graphene.DateTime(required=True)
    restored_at = graphene.DateTime()
    customers_affected = graphene.Int(required=True)

    @staticmethod
    def resolve_customers_affected(root: Any, info: Any) -> int:
        return len(affected_customers(info.context.session, root))


class PlanOutageInput(graphene.InputObjectType):
    title = graphene.String(required=True)
    start_at = graphene.DateTime(required=True)
    end_at = graphene.DateTime(required=True)
    feeder = graphene.String()
    polygon = graphene.List(graphene.NonNull(graphene.List(graphene.NonNull(graphene.Float))),
                            description="[[lat, lng], ...]")
    reason = graphene.String()


class PlannedOutagePayload(graphene.ObjectType):
    planned_outage = graphene.Field(PlannedOutage)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class PlanOutage(BaseMutation):
    class Arguments:
        input = PlanOutageInput(required=True)

    Output = PlannedOutagePayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        outage = create_planned_outage(info.context.session, NewPlannedOutage(
            title=input["title"], start_at=input["start_at"], end_at=input["end_at"], feeder=input.get("feeder"),
            polygon=input.get("polygon"), reason=input.get("reason")))
        return {"planned_outage": outage}


class RestorePlannedOutageInput(graphene.InputObjectType):
    id = graphene.ID(required=True)


class RestorePlannedOutage(BaseMutation):
    class Arguments:
        input = RestorePlannedOutageInput(required=True)

    Output = PlannedOutagePayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        outage_id = decode_id(input["id"], "PlannedOutage", "id")
        return {"planned_outage": restore_planned_outage(info.context.session, outage_id)}


class CustomerMutations(graphene.ObjectType):
    submit_feedback = SubmitFeedback.Field(required=True)
    import_customers = ImportCustomers.Field(required=True)
    import_network = ImportNetwork.Field(required=True)
    plan_outage = PlanOutage.Field(required=True)
    restore_planned_outage = RestorePlannedOutage.Field(required=True)
