"""Tickets and incidents in GraphQL: types, the `ticket`/`tickets`/`incidents` queries, intake mutations."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import anyio
import graphene
from graphene import relay

from api.graphql.core import (
    AreaType,
    BaseMutation,
    Channel,
    GeoPoint,
    GeoPointInput,
    IncidentStatus,
    Priority,
    TicketKind,
    TicketStatus,
    UserError,
    database_threads,
    decode_id,
    enum_value,
    list_page,
    list_page_args,
    point,
)
from api.permissions import may_read_ticket
from core.errors import DomainError, ErrorCode
from customers.incidents import list_incidents
from dispatch import models
from dispatch.intake import IntakeResult, NewTicket, create_ticket
from dispatch.planning import dispatch_urgent, is_urgent
from dispatch.tickets import TicketFilter, cancel_ticket, get_ticket, is_overdue, list_tickets


class TicketEvent(graphene.ObjectType):
    at = graphene.DateTime(required=True)
    status = graphene.Field(TicketStatus, required=True)
    note = graphene.String()
    source = graphene.String(required=True)
    kind = graphene.String(required=True, description="STATUS, NOTE, WARNING, ASSIGNMENT, ...")


class Ticket(graphene.ObjectType):
    class Meta:
        interfaces = (relay.Node,)

    number = graphene.String(required=True)
    kind = graphene.Field(TicketKind, required=True)
    channel = graphene.Field(Channel, required=True)
    priority = graphene.Field(Priority, required=True)
    status = graphene.Field(TicketStatus, required=True)
    summary = graphene.String(required=True)
    description = graphene.String()
    address = graphene.String()
    location = graphene.Field(GeoPoint)
    area_type = graphene.Field(AreaType, required=True)
    branch = graphene.String(description="service unit (供电分局) responsible for the location")
    required_skills = graphene.List(graphene.NonNull(graphene.String), required=True)
    needs_generator = graphene.Boolean(required=True)
    critical_load_kw = graphene.Float()
    customers_affected = graphene.Int(required=True)
    crews_needed = graphene.Int(required=True, description="crews that must start the job together (1 = one crew)")
    depends_on = graphene.Field(lambda: Ticket, description="the job that must be finished before this one starts")
    depends_gap_minutes = graphene.Int(required=True, description="minimum minutes between that job's finish and "
                                       "this one's start")
    created_at = graphene.DateTime(required=True)
    respond_by = graphene.DateTime()
    resolve_by = graphene.DateTime()
    responded_at = graphene.DateTime()
    resolved_at = graphene.DateTime()
    overdue = graphene.Boolean(required=True)
    eta = graphene.DateTime()
    etr = graphene.DateTime()
    power_restored_at = graphene.DateTime()
    assignment = graphene.Field("api.graphql.dispatch.Assignment", description="the lead crew's active assignment")
    assignments = graphene.List(graphene.NonNull("api.graphql.dispatch.Assignment"), required=True,
                                description="every crew's active assignment: the lead first, then assisting crews")
    incident = graphene.Field(lambda: Incident)
    duplicate_of = graphene.Field(lambda: Ticket)
    events = graphene.List(graphene.NonNull(TicketEvent), required=True)

    @classmethod
    def is_type_of(cls, root: Any, _info: Any) -> bool:
        return isinstance(root, models.Ticket)

    @classmethod
    def get_node(cls, info: Any, id: str) -> Any:  # noqa: A002
        return info.context.loaders.ticket.load(int(id))

    @staticmethod
    def resolve_location(root: models.Ticket, _info: Any) -> dict[str, float] | None:
        return point(root.lat, root.lng)

    @staticmethod
    def resolve_overdue(root: models.Ticket, _info: Any) -> bool:
        return is_overdue(root)

    @staticmethod
    def resolve_events(root: models.Ticket, info: Any) -> Any:
        return info.context.loaders.events.load(root.id)

    @staticmethod
    def resolve_assignment(root: models.Ticket, info: Any) -> Any:
        return info.context.loaders.assignment.load(root.id)

    @staticmethod
    def resolve_assignments(root: models.Ticket, info: Any) -> Any:
        return info.context.loaders.crew_assignments.load(root.id)

    @staticmethod
    def resolve_depends_on(root: models.Ticket, info: Any) -> Any:
        return info.context.loaders.ticket.load(root.depends_on_id) if root.depends_on_id else None

    @staticmethod
    def resolve_incident(root: models.Ticket, info: Any) -> Any:
        return info.context.loaders.incident.load(root.incident_id) if root.incident_id else None

    @staticmethod
    def resolve_duplicate_of(root: models.Ticket, info: Any) -> Any:
        return info.context.loaders.ticket.load(root.duplicate_of_id) if root.duplicate_of_id else None


class TicketEdge(graphene.ObjectType):
    node = graphene.Field(Ticket, required=True)
    cursor = graphene.String(required=True)


class TicketConnection(graphene.ObjectType):
    edges = graphene.List(graphene.NonNull(TicketEdge), required=True)
    page_info = graphene.Field(relay.PageInfo, required=True)
    total_count = graphene.Int(required=True)


class Incident(graphene.ObjectType):
    class Meta:
        interfaces = (relay.Node,)

    status = graphene.Field(IncidentStatus, required=True)
    cause = graphene.String()
    center = graphene.Field(GeoPoint)
    customers_affected = graphene.Int(required=True)
    etr = graphene.DateTime()
    tickets = graphene.List(graphene.NonNull(Ticket), required=True)

    @classmethod
    def is_type_of(cls, root: Any, _info: Any) -> bool:
        return isinstance(root, models.Incident)

    @classmethod
    def get_node(cls, info: Any, id: str) -> Any:  # noqa: A002
        return info.context.loaders.incident.load(int(id))

    @staticmethod
    def resolve_center(root: models.Incident, _info: Any) -> dict[str, float] | None:
        return point(root.center_lat, root.center_lng)

    @staticmethod
    def resolve_tickets(root: models.Incident, info: Any) -> Any:
        return info.context.loaders.incident_tickets.load(root.id)


class TicketQueries(graphene.ObjectType):
    ticket = graphene.Field(Ticket, id=graphene.ID(), number=graphene.String())
    tickets = graphene.Field(
        TicketConnection, required=True,
        status=graphene.List(graphene.NonNull(TicketStatus)), kind=graphene.List(graphene.NonNull(TicketKind)),
        priority=graphene.List(graphene.NonNull(Priority)), overdue=graphene.Boolean(),
        first=graphene.Int(), after=graphene.String(),
        branch=graphene.String(), search=graphene.String(description="text in summary, number or address"),
    )
    incidents = graphene.List(graphene.NonNull(Incident), required=True,
                              status=graphene.List(graphene.NonNull(IncidentStatus)), **list_page_args())

    @staticmethod
    def resolve_ticket(_root: Any, info: Any, id: str | None = None, number: str | None = None) -> Any:  # noqa: A002
        if id is None and number is None:
            return None
        ticket_id = decode_id(id, "Ticket", "id") if id is not None else None
        ticket = get_ticket(info.context.session, ticket_id=ticket_id, number=number)
        if ticket is not None and not may_read_ticket(info.context, ticket.id):
            raise DomainError.one("id" if id is not None else "number",
                                  "a crew device reads its own crew's jobs only", ErrorCode.FORBIDDEN)
        return ticket

    @staticmethod
    def resolve_tickets(_root: Any, info: Any, first: int | None = None, after: str | None = None,
                        **filters: Any) -> dict[str, Any]:
        page = list_tickets(
            info.context.session,
            TicketFilter(status=enum_value(filters.get("status")), kind=enum_value(filters.get("kind")),
                         priority=enum_value(filters.get("priority")), overdue=filters.get("overdue"),
                         branch=filters.get("branch"), search=filters.get("search")),
            first=50 if first is None else first, after=after, max_page_size=info.context.services.max_page_size,
        )
        edges = [{"node": t, "cursor": page.cursor(t)} for t in page.tickets]
        return {
            "edges": edges, "total_count": page.total_count,
            "page_info": relay.PageInfo(has_next_page=page.has_next_page,
                                        has_previous_page=page.has_previous_page,
                                        start_cursor=edges[0]["cursor"] if edges else None,
                                        end_cursor=edges[-1]["cursor"] if edges else None),
        }

    @staticmethod
    def resolve_incidents(_root: Any, info: Any, status: list[Any] | None = None, first: int | None = None,
                          offset: int | None = None) -> list[models.Incident]:
        return list_page(list_incidents(info.context.session, enum_value(status)), info, first, offset)


class CreateTicketInput(graphene.InputObjectType):
    client_request_id = graphene.String(description="idempotency key: the same key returns the same ticket")
    kind = graphene.Field(TicketKind, required=True)
    channel = graphene.Field(Channel, required=True)
    summary = graphene.String(required=True)
    description = graphene.String()
    address = graphene.String()
    location = graphene.Field(GeoPointInput)
    priority = graphene.Field(Priority, description="inferred from kind, text and site when absent")
    required_skills = graphene.List(graphene.NonNull(graphene.String))
    needs_generator = graphene.Boolean()
    critical_load_kw = graphene.Float()
    customers_affected = graphene.Int()
    crews_needed = graphene.Int(description="crews that must start the job together (1–4; 1 when absent)")
    account_number = graphene.String()
    contact_name = graphene.String()
    contact_phone = graphene.String()
    preferred_channels = graphene.List(graphene.NonNull(Channel))


class CreateTicketPayload(graphene.ObjectType):
    ticket = graphene.Field(Ticket)
    duplicate_of = graphene.Field(Ticket, description="set when the report joined an existing ticket or incident")
    created = graphene.Boolean(description="false when clientRequestId had been seen: the earlier ticket")
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class CreateTicket(BaseMutation):
    class Arguments:
        input = CreateTicketInput(required=True)

    Output = CreateTicketPayload

    @classmethod
    async def mutate(cls, root: Any, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        queue = info.context.services.intake_queue
        if queue is None:  # no group commit (an app built without one): in a worker thread, as any mutation
            return await super().mutate(root, info, input)
        try:
            report = cls.report(input)
            # Drafted here, then written with the reports that arrive with it (dispatch/intake_queue.py); answered
            # after its COMMIT. A report to be geocoded is drafted in a worker thread: the geocoder may be a server.
            source = info.context.principal.source
            submitted = queue.submit(report, source) if report.lat is not None or not report.address else \
                await anyio.to_thread.run_sync(queue.submit, report, source)
            result = await asyncio.wrap_future(submitted)
        except DomainError as error:
            return {"errors": error.problems}
        except Exception:  # noqa: BLE001 - logged with a reference, never a traceback in the answer
            return cls.internal_error()
        if not (result.created and is_urgent(result.ticket)):
            return cls.payload(info, result)
        # An emergency is given a crew at once: database work, in a worker thread like every mutation's.
        return await anyio.to_thread.run_sync(partial(cls.guarded, info, partial(cls.dispatch, info, result)),
                                              limiter=database_threads())

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        services = info.context.services
        result = create_ticket(info.context.session, services.intake, cls.report(input),
                               source=info.context.principal.source)
        return cls.dispatch(info, result) if result.created and is_urgent(result.ticket) else cls.payload(info, result)

    @staticmethod
    def report(input: Any) -> NewTicket:  # noqa: A002
        location = input.get("location")
        return NewTicket(
            kind=enum_value(input["kind"]), channel=enum_value(input["channel"]), summary=input["summary"],
            description=input.get("description"), address=input.get("address"),
            lat=location["lat"] if location else None, lng=location["lng"] if location else None,
            priority=enum_value(input.get("priority")), required_skills=input.get("required_skills"),
            needs_generator=input.get("needs_generator"), critical_load_kw=input.get("critical_load_kw"),
            customers_affected=input.get("customers_affected"), crews_needed=input.get("crews_needed"),
            account_number=input.get("account_number"),
            contact_name=input.get("contact_name"), contact_phone=input.get("contact_phone"),
            preferred_channels=enum_value(input.get("preferred_channels")),
            client_request_id=input.get("client_request_id"),
        )

    @classmethod
    def dispatch(cls, info: Any, result: IntakeResult) -> dict[str, Any]:
        """Fast insertion of a new EMERGENCY/CRITICAL ticket, then a background re-plan of its region."""
        session = info.context.session
        # The ticket was written by the intake writer's session: this request's session takes it over as it is
        # (no query), so the fast insertion's fresh read updates the very object the answer shows.
        ticket = session.merge(result.ticket, load=False)
        replanner = info.context.services.replanner
        if dispatch_urgent(session, ticket) is not None and replanner is not None:
            replanner.request(ticket.region)
        return cls.payload(info, IntakeResult(ticket, result.created, result.warnings, result.duplicate_of))

    @staticmethod
    def payload(info: Any, result: IntakeResult) -> dict[str, Any]:
        duplicate_of = result.duplicate_of
        if duplicate_of is None and result.ticket.duplicate_of_id is not None:  # (a result from elsewhere)
            duplicate_of = get_ticket(info.context.session, result.ticket.duplicate_of_id)
        return {"ticket": result.ticket, "created": result.created, "duplicate_of": duplicate_of, "errors": []}


class CancelTicketInput(graphene.InputObjectType):
    ticket_id = graphene.ID(required=True)
    reason = graphene.String(required=True)


class TicketPayload(graphene.ObjectType):
    ticket = graphene.Field(Ticket)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class CancelTicket(BaseMutation):
    class Arguments:
        input = CancelTicketInput(required=True)

    Output = TicketPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        session = info.context.session
        ticket = cancel_ticket(session, decode_id(input["ticket_id"], "Ticket", "ticketId"), input["reason"],
                               source=info.context.principal.source)
        session.commit()
        return {"ticket": ticket}


class TicketMutations(graphene.ObjectType):
    create_ticket = CreateTicket.Field(required=True)
    cancel_ticket = CancelTicket.Field(required=True)
