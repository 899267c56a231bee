"""Dispatch in GraphQL: assignments and plans (with score by goal and KPIs), `dispatchPlan`, `explainDispatch`,
`optimizeDispatch`, `assignTicket`; appointment slots: `recommendSlots`, `bookSlot`; real-time events that re-plan
at once (dispatch/events.py): `reportOverrun`, `crewUnavailable`, `customerNotHome`, `crewsJoined`."""

from __future__ import annotations

from typing import Any

import anyio
import graphene
from graphene import relay

from api.graphql.core import BaseMutation, PlanStatus, Priority, UserError, decode_id
from api.permissions import require_crew_scope
from dispatch import events, models
from dispatch.explanation import TicketExplanation, explain_ticket
from dispatch.planning import (
    AssignRequest,
    assign_ticket,
    commit_proposed,
    get_plan,
    optimize_and_store,
    plan_assignments,
)
from dispatch.slots import Slot, book_slot, recommend_slots
from dispatch.tickets import set_crews_needed, set_dependency

AssignmentRole = graphene.Enum.from_enum(models.AssignmentRole, description=(
    "LEAD: the crew the ticket's status and ETA follow; ASSIST: another crew of a multi-crew job, starting with "
    "the lead"))


class Assignment(graphene.ObjectType):
    ticket = graphene.Field("api.graphql.tickets.Ticket", required=True)
    crew = graphene.Field("api.graphql.crews.Crew", required=True)
    role = graphene.Field(AssignmentRole, required=True)
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


class GoalCost(graphene.ObjectType):
    goal = graphene.String(required=True, description="lateness, customer_minutes, generators, travel, overtime, "
                           "fairness, reassignment, lending, unassigned")
    cost = graphene.Float(required=True)


class PriorityFigure(graphene.ObjectType):
    priority = graphene.Field(Priority, required=True)
    value = graphene.Float(description="null when there is nothing to measure")


def _by_priority(values: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [{"priority": p, "value": v} for p, v in (values or {}).items()]


class PlanScore(graphene.ObjectType):
    """The plan's objective split by goal (same costs the optimizer minimises)."""

    total = graphene.Float(required=True)
    by_goal = graphene.List(graphene.NonNull(GoalCost), required=True)
    lateness_by_priority = graphene.List(graphene.NonNull(PriorityFigure), required=True)
    unassigned_by_priority = graphene.List(graphene.NonNull(PriorityFigure), required=True)

    @staticmethod
    def resolve_by_goal(root: dict[str, Any], _info: Any) -> list[dict[str, Any]]:
        from dispatch.optimizer.explain import GOALS

        return [{"goal": g, "cost": root.get(g, 0)} for g in GOALS]

    @staticmethod
    def resolve_lateness_by_priority(root: dict[str, Any], _info: Any) -> list[dict[str, Any]]:
        return _by_priority(root.get("lateness_by_priority"))

    @staticmethod
    def resolve_unassigned_by_priority(root: dict[str, Any], _info: Any) -> list[dict[str, Any]]:
        return _by_priority(root.get("unassigned_by_priority"))


class CrewFigure(graphene.ObjectType):
    crew = graphene.Field("api.graphql.crews.Crew", required=True)
    utilisation = graphene.Float(required=True, description="share of the shift spent driving or working")
    overtime_minutes = graphene.Int(required=True)

    @staticmethod
    def resolve_crew(root: dict[str, Any], info: Any) -> Any:
        return info.context.loaders.crew.load(int(root["crew_id"]))


class OvertimeFairness(graphene.ObjectType):
    crews_with_overtime = graphene.Int(required=True)
    max_minutes = graphene.Int(required=True)
    mean_minutes_of_those = graphene.Float(required=True)
    stdev_minutes = graphene.Float(required=True)


class PlanKpis(graphene.ObjectType):
    on_time_rate_by_priority = graphene.List(graphene.NonNull(PriorityFigure), required=True)
    travel_share = graphene.Float(required=True, description="driving time / (driving + work) over all crews")
    mean_utilisation = graphene.Float(required=True)
    crews = graphene.List(graphene.NonNull(CrewFigure), required=True)
    overtime_fairness = graphene.Field(OvertimeFairness, required=True)

    @staticmethod
    def resolve_on_time_rate_by_priority(root: dict[str, Any], _info: Any) -> list[dict[str, Any]]:
        return _by_priority(root.get("on_time_rate_by_priority"))

    @staticmethod
    def resolve_crews(root: dict[str, Any], _info: Any) -> list[dict[str, Any]]:
        overtime = root.get("overtime_by_crew") or {}
        return [{"crew_id": cid, "utilisation": u, "overtime_minutes": int(overtime.get(cid, 0))}
                for cid, u in (root.get("utilisation_by_crew") or {}).items() if str(cid).isdigit()]


class DispatchExplanation(graphene.ObjectType):
    """Why a ticket has its crew (or none), and why another crew is not the one going."""

    ticket = graphene.Field("api.graphql.tickets.Ticket", required=True)
    crew = graphene.Field("api.graphql.crews.Crew", description="the crew planned for it, if any")
    reason = graphene.String(required=True, description="why that crew, or the constraint that blocks the ticket")
    other_crew = graphene.Field("api.graphql.crews.Crew")
    why_not_other_crew = graphene.String()

    @staticmethod
    def resolve_ticket(root: TicketExplanation, info: Any) -> Any:
        return info.context.loaders.ticket.load(root.ticket_id)

    @staticmethod
    def resolve_crew(root: TicketExplanation, info: Any) -> Any:
        return info.context.loaders.crew.load(root.crew_id) if root.crew_id else None

    @staticmethod
    def resolve_other_crew(root: TicketExplanation, info: Any) -> Any:
        return info.context.loaders.crew.load(root.other_crew_id) if root.other_crew_id else None

    @staticmethod
    def resolve_why_not_other_crew(root: TicketExplanation, _info: Any) -> str | None:
        return root.why_not_other


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
    unassigned = graphene.List(graphene.NonNull(UnassignedTicket), required=True,
                               description="each with the constraint that blocks it")
    score = graphene.Field(PlanScore, description="the objective by goal (null for plans made before it existed)")
    kpis = graphene.Field(PlanKpis, description="on-time rate by priority, travel share, utilisation per crew")

    explain = graphene.Field(
        DispatchExplanation, ticket_id=graphene.ID(required=True), crew_id=graphene.ID(),
        description="why is this crew (not) going to this ticket? Answered on the crews' current routes in the "
                    "plan's region")

    @staticmethod
    def resolve_explain(root: models.DispatchPlan, info: Any, ticket_id: str, crew_id: str | None = None) -> Any:
        return explain_ticket(info.context.session, decode_id(ticket_id, "Ticket", "ticketId"),
                              decode_id(crew_id, "Crew", "crewId") if crew_id else None)

    @staticmethod
    def resolve_score(root: models.DispatchPlan, _info: Any) -> dict[str, Any] | None:
        return (root.stats or {}).get("score")

    @staticmethod
    def resolve_kpis(root: models.DispatchPlan, _info: Any) -> dict[str, Any] | None:
        return (root.stats or {}).get("kpis")

    @classmethod
    def is_type_of(cls, root: Any, _info: Any) -> bool:
        return isinstance(root, models.DispatchPlan)

    @classmethod
    def get_node(cls, info: Any, id: str) -> Any:  # noqa: A002
        return get_plan(info.context.session, int(id))

    @staticmethod
    def resolve_assignments(root: models.DispatchPlan, info: Any) -> list[models.Assignment]:
        return plan_assignments(info.context.session, root.id or 0)


class TimeSlot(graphene.ObjectType):
    """A window a non-urgent ticket could be booked into, given the current plan."""

    start = graphene.DateTime(required=True)
    end = graphene.DateTime(required=True)
    crew = graphene.Field("api.graphql.crews.Crew", required=True, description="the crew the plan would send")
    planned_arrival = graphene.DateTime(required=True)
    added_cost = graphene.Float(required=True, description="what the visit adds to the plan's cost: lower fits better")

    @staticmethod
    def resolve_crew(root: Slot, info: Any) -> Any:
        return info.context.loaders.crew.load(root.crew_id)


class DispatchQueries(graphene.ObjectType):
    dispatch_plan = graphene.Field(DispatchPlan, id=graphene.ID(), description="latest when id is absent")
    recommend_slots = graphene.List(
        graphene.NonNull(TimeSlot), required=True, ticket_id=graphene.ID(required=True),
        count=graphene.Int(default_value=5), window_minutes=graphene.Int(default_value=120),
        description="the 3-5 best appointment windows for a non-urgent ticket, given the current plan")

    @staticmethod
    def resolve_recommend_slots(_root: Any, info: Any, ticket_id: str, count: int | None = 5,
                                window_minutes: int | None = 120) -> list[Slot]:
        # An explicit `null` (the fuzzer sends them) means the default, like an absent argument.
        return recommend_slots(info.context.session, decode_id(ticket_id, "Ticket", "ticketId"),
                               count=5 if count is None else count,
                               window_minutes=120 if window_minutes is None else window_minutes)

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
            return super(OptimizeDispatch, cls).mutate_now(root, info, input)

        return await anyio.to_thread.run_sync(run)

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        plan = optimize_and_store(
            info.context.session, time_limit_s=input.get("time_limit_seconds"), commit=bool(input.get("commit")),
            region=input.get("region") or "default", source=info.context.principal.source,
        )
        return {"plan": plan}


class CommitDispatchPlanInput(graphene.InputObjectType):
    plan_id = graphene.ID(required=True, description="a PROPOSED plan, from optimizeDispatch(commit: false)")


class CommitDispatchPlan(BaseMutation):
    """Commit the plan the dispatcher reviewed; CONFLICT when the board changed since it was proposed."""

    class Arguments:
        input = CommitDispatchPlanInput(required=True)

    Output = DispatchPlanPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        plan_id = decode_id(input["plan_id"], "DispatchPlan", "planId")
        return {"plan": commit_proposed(info.context.session, plan_id, source=info.context.principal.source)}


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


class BookSlotInput(graphene.InputObjectType):
    ticket_id = graphene.ID(required=True)
    start = graphene.DateTime(required=True)
    end = graphene.DateTime(required=True)


class BookSlotPayload(graphene.ObjectType):
    ticket = graphene.Field("api.graphql.tickets.Ticket")
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class BookSlot(BaseMutation):
    """Fix a ticket's appointment window: later plans send no crew before its start; its end is the deadline."""

    class Arguments:
        input = BookSlotInput(required=True)

    Output = BookSlotPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        ticket = book_slot(info.context.session, decode_id(input["ticket_id"], "Ticket", "ticketId"),
                           input["start"], input["end"], source=info.context.principal.source)
        return {"ticket": ticket}


class PlanChange(graphene.ObjectType):
    """One ticket's fate in an event's re-plan: MOVED, KEPT, NEW, DROPPED or RETIMED, with the crews and ETAs
    (minutes from the plan start) before and after, and the new plan's reason."""

    ticket_id = graphene.ID(required=True)
    kind = graphene.String(required=True)
    crew_before = graphene.ID()
    crew_after = graphene.ID()
    eta_before_minutes = graphene.Int()
    eta_after_minutes = graphene.Int()
    reason = graphene.String(required=True)


class DispatchEventPayload(graphene.ObjectType):
    plan = graphene.Field(DispatchPlan, description="the committed plan after the event")
    changes = graphene.List(graphene.NonNull(PlanChange), required=True, default_value=())
    errors = graphene.List(graphene.NonNull(UserError), required=True)


def _event_result(outcome: events.EventOutcome) -> dict[str, Any]:
    return {"plan": outcome.plan, "changes": [
        {"ticket_id": c.ticket_id, "kind": c.kind.upper(), "crew_before": c.crew_before, "crew_after": c.crew_after,
         "eta_before_minutes": c.eta_before, "eta_after_minutes": c.eta_after, "reason": c.reason}
        for c in outcome.changes if c.kind != "kept"]}


class ReportOverrunInput(graphene.InputObjectType):
    ticket_id = graphene.ID(required=True)
    expected_finish = graphene.DateTime(required=True, description="when the job on site is now expected to end")


class ReportOverrun(BaseMutation):
    """A job on site takes longer: the crew's later jobs move, those that would miss their deadline may go to
    other crews."""

    class Arguments:
        input = ReportOverrunInput(required=True)

    Output = DispatchEventPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        return _event_result(events.job_overran(
            info.context.session, decode_id(input["ticket_id"], "Ticket", "ticketId"), input["expected_finish"],
            source=info.context.principal.source))


class CrewUnavailableInput(graphene.InputObjectType):
    crew_id = graphene.ID(required=True)
    reason = graphene.String(required=True, description="ill, vehicle broken, …")


class CrewUnavailable(BaseMutation):
    """A crew drops out (the dispatcher's crew status change, or UNAVAILABLE reported by the crew's own device):
    its jobs are re-planned to the others and customers get revised ETAs."""

    class Arguments:
        input = CrewUnavailableInput(required=True)

    Output = DispatchEventPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        crew_id = require_crew_scope(info.context.principal, decode_id(input["crew_id"], "Crew", "crewId"))
        return _event_result(events.crew_unavailable(info.context.session, crew_id, input["reason"],
                                                     source=info.context.principal.source))


class CrewAvailableInput(graphene.InputObjectType):
    crew_id = graphene.ID(required=True)
    note = graphene.String(description="what changed: vehicle fixed, crew member back, …")


class CrewAvailable(BaseMutation):
    """A crew is back after crewUnavailable (from the dispatcher or its own device): it rejoins the plan and takes
    waiting work. CONFLICT when the crew was not unavailable."""

    class Arguments:
        input = CrewAvailableInput(required=True)

    Output = DispatchEventPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        crew_id = require_crew_scope(info.context.principal, decode_id(input["crew_id"], "Crew", "crewId"))
        return _event_result(events.crew_available(info.context.session, crew_id, source=info.context.principal.source,
                                                   note=input.get("note") or ""))


class MealBreakTakenInput(graphene.InputObjectType):
    crew_id = graphene.ID(required=True)
    at = graphene.DateTime(description="when the break was taken (default: now)")


class MealBreakTaken(BaseMutation):
    """The crew took its meal break (from the dispatcher or its own device): no later plan of this shift plans
    another, and the board is re-planned with the time it kept free."""

    class Arguments:
        input = MealBreakTakenInput(required=True)

    Output = DispatchEventPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        crew_id = require_crew_scope(info.context.principal, decode_id(input["crew_id"], "Crew", "crewId"))
        return _event_result(events.meal_break_taken(info.context.session, crew_id,
                                                     source=info.context.principal.source, at=input.get("at")))


class CustomerNotHomeInput(graphene.InputObjectType):
    ticket_id = graphene.ID(required=True)
    reason = graphene.String(required=True)
    retry_after_minutes = graphene.Int(description="the next window opens this many minutes from now (120)")
    window_minutes = graphene.Int(description="length of the next window (120)")


class CustomerNotHome(BaseMutation):
    """No-show: the job goes ON_HOLD with the reason and back to the pool with a later window."""

    class Arguments:
        input = CustomerNotHomeInput(required=True)

    Output = DispatchEventPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        given = {k: input[k] for k in ("retry_after_minutes", "window_minutes") if input.get(k) is not None}
        return _event_result(events.customer_not_home(  # the domain function owns the defaults
            info.context.session, decode_id(input["ticket_id"], "Ticket", "ticketId"), input["reason"],
            source=info.context.principal.source, **given))


class CrewsJoinedInput(graphene.InputObjectType):
    crew_ids = graphene.List(graphene.NonNull(graphene.ID), required=True)
    region = graphene.String(description="the board they join (default: the first crew's region)")


class CrewsJoined(BaseMutation):
    """New crews on shift or mutual-aid crews arrived: they join the plan and take waiting work."""

    class Arguments:
        input = CrewsJoinedInput(required=True)

    Output = DispatchEventPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        ids = [decode_id(c, "Crew", "crewIds") for c in input["crew_ids"]]
        return _event_result(events.crews_joined(info.context.session, ids, source=info.context.principal.source,
                                                 region=input.get("region")))


class SetCrewsNeededInput(graphene.InputObjectType):
    ticket_id = graphene.ID(required=True)
    crews_needed = graphene.Int(required=True, description="crews that must start the job together (1–4)")


class SetCrewsNeededPayload(graphene.ObjectType):
    ticket = graphene.Field("api.graphql.tickets.Ticket")
    crews_needed = graphene.Int()
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class SetCrewsNeeded(BaseMutation):
    """A job needing several crews at once (transformer swap, pole replacement): later plans send them together
    (synchronised start) or none."""

    class Arguments:
        input = SetCrewsNeededInput(required=True)

    Output = SetCrewsNeededPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        ticket = set_crews_needed(info.context.session, decode_id(input["ticket_id"], "Ticket", "ticketId"),
                                  int(input["crews_needed"]), source=info.context.principal.source)
        return {"ticket": ticket, "crews_needed": ticket.crews_needed}


class SetTicketDependencyInput(graphene.InputObjectType):
    ticket_id = graphene.ID(required=True)
    depends_on_id = graphene.ID(description="the job that must be finished first; null removes the dependency")
    gap_minutes = graphene.Int(description="minimum minutes between its finish and this job's start (0)")


class SetTicketDependencyPayload(graphene.ObjectType):
    ticket = graphene.Field("api.graphql.tickets.Ticket")
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class SetTicketDependency(BaseMutation):
    """Precedence with a minimum gap: isolation switching before the repair, restoration switching after it, tree
    trimming before line work. Later plans start the job after the other is finished (+ gap), and only with it."""

    class Arguments:
        input = SetTicketDependencyInput(required=True)

    Output = SetTicketDependencyPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        first = input.get("depends_on_id")
        ticket = set_dependency(info.context.session, decode_id(input["ticket_id"], "Ticket", "ticketId"),
                                decode_id(first, "Ticket", "dependsOnId") if first else None,
                                int(input.get("gap_minutes") or 0), source=info.context.principal.source)
        return {"ticket": ticket}


class DispatchMutations(graphene.ObjectType):
    optimize_dispatch = OptimizeDispatch.Field(required=True)
    commit_dispatch_plan = CommitDispatchPlan.Field(required=True)
    assign_ticket = AssignTicket.Field(required=True)
    book_slot = BookSlot.Field(required=True)
    report_overrun = ReportOverrun.Field(required=True)
    crew_unavailable = CrewUnavailable.Field(required=True)
    crew_available = CrewAvailable.Field(required=True)
    meal_break_taken = MealBreakTaken.Field(required=True)
    customer_not_home = CustomerNotHome.Field(required=True)
    crews_joined = CrewsJoined.Field(required=True)
    set_crews_needed = SetCrewsNeeded.Field(required=True)
    set_ticket_dependency = SetTicketDependency.Field(required=True)
