"""Dispatch in GraphQL: assignments and plans, `dispatchPlan`, `optimizeDispatch`, `assignTicket`."""

from __future__ import annotations

from typing import Any

import anyio
import graphene
from graphene import relay

from api.graphql.core import BaseMutation, PlanStatus, UserError, decode_id
from dispatch import models
from dispatch.planning import (
    AssignRequest,
    assign_ticket,
    get_plan,
    optimize_and_store,
    plan_assignments,
)


class Assignment(graphene.ObjectType):
    ticket = graphene.Field("api.graphql.tickets.Ticket", required=True)
    crew = graphene.Field("api.graphql.crews.Crew", required=True)
    generator = graphene.Field("api.graphql.crews.MobileGenerator")
    sequence = graphene.Int(required=True)
    planned_arrival = graphene.DateTime(required=True)
    planned_finish = graphene.DateTime(required=True)
    pinned = graphene.Boolean(required=True)
    reason = graphene.String(description="why this crew: skills, distance, deadline")

    @staticmethod
    def resolve_ticket(root: models.Assignment, info: Any) -> Any:
        return info.context.loaders.ticket.load(root.ticket_id)

    @staticmethod
    def resolve_crew(root: models.Assignment, info: Any) -> Any:
        return info.context.loaders.crew.load(root.crew_id)

    @staticmethod
    def resolve_generator(root: models.Assignment, info: Any) -> Any:
        return info.context.loaders.generator.load(root.generator_id) if root.generator_id else None


class UnassignedTicket(graphene.ObjectType):
    ticket = graphene.Field("api.graphql.tickets.Ticket", required=True)
    reason = graphene.String(required=True)

    @staticmethod
    def resolve_ticket(root: dict[str, Any], info: Any) -> Any:
        return info.context.loaders.ticket.load(root["ticket_id"])


class DispatchPlan(graphene.ObjectType):
    class Meta:
        interfaces = (relay.Node,)

    created_at = graphene.DateTime(required=True)
    status = graphene.Field(PlanStatus, required=True)
    region = graphene.String(required=True)
    trigger = graphene.String(required=True, description="what started this plan: manual, emergency, ...")
    solve_seconds = graphene.Float(required=True)
    late_tickets = graphene.Int(required=True)
    total_travel_minutes = graphene.Float(required=True)
    objective = graphene.Float(required=True)
    stats = graphene.JSONString(description="figures of the plan: late tickets by priority, customer-minutes, ...")
    assignments = graphene.List(graphene.NonNull(Assignment), required=True)
    unassigned = graphene.List(graphene.NonNull(UnassignedTicket), required=True)

    @classmethod
    def is_type_of(cls, root: Any, _info: Any) -> bool:
        return isinstance(root, models.DispatchPlan)

    @classmethod
    def get_node(cls, info: Any, id: str) -> Any:  # noqa: A002
        return get_plan(info.context.session, int(id))

    @staticmethod
    def resolve_assignments(root: models.DispatchPlan, info: Any) -> list[models.Assignment]:
        return plan_assignments(info.context.session, root.id or 0)


class DispatchQueries(graphene.ObjectType):
    dispatch_plan = graphene.Field(DispatchPlan, id=graphene.ID(), description="latest when id is absent")

    @staticmethod
    def resolve_dispatch_plan(_root: Any, info: Any, id: str | None = None) -> Any:  # noqa: A002
        plan_id = decode_id(id, "DispatchPlan", "id") if id is not None else None
        return get_plan(info.context.session, plan_id)


class OptimizeDispatchInput(graphene.InputObjectType):
    time_limit_seconds = graphene.Float()
    commit = graphene.Boolean(description="false: propose only")
    region = graphene.String()


class DispatchPlanPayload(graphene.ObjectType):
    plan = graphene.Field(DispatchPlan)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class OptimizeDispatch(BaseMutation):
    class Arguments:
        input = OptimizeDispatchInput(required=True)

    Output = DispatchPlanPayload

    @classmethod
    async def mutate(cls, root: Any, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        # The solver runs for seconds: off the event loop, so other requests go on meanwhile.
        def run() -> dict[str, Any]:
            return super(OptimizeDispatch, cls).mutate(root, info, input)

        return await anyio.to_thread.run_sync(run)

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        plan = optimize_and_store(
            info.context.session, time_limit_s=input.get("time_limit_seconds"), commit=bool(input.get("commit")),
            region=input.get("region") or "default", source=info.context.principal.source,
        )
        return {"plan": plan}


class AssignTicketInput(graphene.InputObjectType):
    ticket_id = graphene.ID(required=True)
    crew_id = graphene.ID(required=True)
    generator_id = graphene.ID()
    pin = graphene.Boolean(description="pinned assignments are kept by every later optimization")


class AssignmentPayload(graphene.ObjectType):
    assignment = graphene.Field(Assignment)
    warnings = graphene.List(graphene.NonNull(graphene.String), required=True, default_value=())
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class AssignTicket(BaseMutation):
    class Arguments:
        input = AssignTicketInput(required=True)

    Output = AssignmentPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        generator = input.get("generator_id")
        result = assign_ticket(info.context.session, AssignRequest(
            ticket_id=decode_id(input["ticket_id"], "Ticket", "ticketId"),
            crew_id=decode_id(input["crew_id"], "Crew", "crewId"),
            generator_id=decode_id(generator, "MobileGenerator", "generatorId") if generator else None,
            pin=bool(input.get("pin")),
        ), source=info.context.principal.source)
        return {"assignment": result.assignment, "warnings": result.warnings}


class DispatchMutations(graphene.ObjectType):
    optimize_dispatch = OptimizeDispatch.Field(required=True)
    assign_ticket = AssignTicket.Field(required=True)
