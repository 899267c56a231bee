"""Who may call what: one table of every root field and the roles allowed, checked in one middleware.

A root field missing from the table is refused for everyone, so a new field can't be published by accident.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from api.auth import Principal, Role
from api.ratelimit import client_ip
from core.errors import DomainError, ErrorCode, Problem

EVERYONE = frozenset(Role)
STAFF = frozenset({Role.ADMIN, Role.DISPATCHER})
STAFF_AND_CREW = frozenset({Role.ADMIN, Role.DISPATCHER, Role.CREW})
CREW_DEVICES = frozenset({Role.CREW})

ROOT_FIELDS: dict[str, frozenset[Role]] = {
    "Query.node": STAFF,
    "Query.ticket": STAFF_AND_CREW,
    "Query.tickets": STAFF,
    "Query.incidents": STAFF,
    "Query.crews": STAFF_AND_CREW,
    "Query.mobileGenerators": STAFF_AND_CREW,
    "Query.dispatchPlan": STAFF,
    "Query.recommendSlots": STAFF,
    "Query.syncPull": CREW_DEVICES,
    "Query.trackTicket": EVERYONE,
    "Query.outageSummary": EVERYONE,
    "Query.repeatCallers": STAFF,
    "Query.hotspots": STAFF,
    "Query.serviceStats": STAFF,
    "Query.qualityTasks": STAFF,
    "Query.callbackTasks": STAFF,
    "Query.me": EVERYONE,
    "Mutation.createTicket": STAFF_AND_CREW,
    "Mutation.cancelTicket": STAFF,
    "Mutation.createCrew": STAFF,
    "Mutation.createMobileGenerator": STAFF,
    "Mutation.lendCrew": STAFF,
    "Mutation.optimizeDispatch": STAFF,
    "Mutation.commitDispatchPlan": STAFF,
    "Mutation.assignTicket": STAFF,
    "Mutation.bookSlot": STAFF,
    "Mutation.reportOverrun": STAFF,
    "Mutation.crewUnavailable": STAFF_AND_CREW,  # the dispatcher, or the crew's own device (UNAVAILABLE)
    "Mutation.crewAvailable": STAFF_AND_CREW,  # ... and back again
    "Mutation.mealBreakTaken": STAFF_AND_CREW,
    "Mutation.customerNotHome": STAFF,
    "Mutation.crewsJoined": STAFF,
    "Mutation.setCrewsNeeded": STAFF,
    "Mutation.setTicketDependency": STAFF,
    "Mutation.syncPush": CREW_DEVICES,
    "Mutation.registerDevice": STAFF_AND_CREW,
    "Mutation.submitFeedback": EVERYONE,
    "Mutation.recordCallback": STAFF,
    "Mutation.handoverTicket": STAFF,
    "Mutation.importCustomers": STAFF,
    "Mutation.importNetwork": STAFF,
    "Mutation.planOutage": STAFF,
    "Mutation.restorePlannedOutage": STAFF,
    "Mutation.revokeToken": STAFF,
    "Subscription.ticketUpdated": EVERYONE,
    "Subscription.crewJobs": STAFF_AND_CREW,
    "Subscription.dispatchBoard": STAFF,
}


# Per-object rules on top of the roles: a CREW token acts only for its own crew on these fields (the crew named by
# the `crewId`/`deviceId` argument; see crew_scope_problem and mobile_sync.protocol.require_device).
CREW_SCOPED: frozenset[str] = frozenset({
    "Query.syncPull", "Mutation.syncPush", "Mutation.registerDevice", "Subscription.crewJobs",
    "Mutation.crewUnavailable", "Mutation.crewAvailable", "Mutation.mealBreakTaken",
    "Query.ticket",  # a crew device reads its own crew's jobs (api.permissions.may_read_ticket)
})
# Fields a crew may use only with a device's own token (from registerDevice): a crew token not bound to a
# device may register one, not pull or push as any of its crew's devices.
DEVICE_BOUND: frozenset[str] = frozenset({"Query.syncPull", "Mutation.syncPush"})
# Public fields limited per client IP and minute (api/ratelimit.py) for everyone but staff.
RATE_LIMITED: frozenset[str] = frozenset({
    "Query.trackTicket", "Query.outageSummary", "Mutation.submitFeedback", "Subscription.ticketUpdated",
})


def rate_limit_problem(context: Any, key: str) -> Problem | None:
    """RATE_LIMITED when a non-staff caller of a public field has used up its minute (see api/ratelimit.py)."""
    limiter = context.services.rate_limiter
    if key not in RATE_LIMITED or limiter is None or context.principal.role in STAFF:
        return None
    if limiter.allow(client_ip(context.request)):
        return None
    return Problem(None, f"too many requests from this address; at most {limiter.per_minute} a minute",
                   ErrorCode.RATE_LIMITED)


def denial(principal: Principal, key: str) -> Problem | None:
    """Why `principal` may not call root field `key`, or None when it may."""
    allowed = ROOT_FIELDS.get(key, frozenset())
    if principal.role in allowed:
        if principal.role == Role.CREW and key in DEVICE_BOUND and not principal.device_id:
            return Problem(None, f"{key.split('.')[1]} needs the device's own token (registerDevice gives it); "
                           "this crew token is not bound to a device", ErrorCode.FORBIDDEN)
        return None
    if not principal.authenticated:
        reason = principal.token_error or "sign in: send 'Authorization: Bearer <token>'"
        return Problem(None, f"{key.split('.')[1]} needs a signed-in user ({reason})", ErrorCode.UNAUTHENTICATED)
    return Problem(None, f"the {principal.role.value} role may not use {key.split('.')[1]}", ErrorCode.FORBIDDEN)


def may_read_ticket(context: Any, ticket_id: int | None) -> bool:
    """Staff read every ticket; a crew device only its own crew's jobs, past and present (loaded once a request)."""
    principal = context.principal
    if principal.role != Role.CREW:
        return principal.role in STAFF
    return ticket_id in context.crew_jobs


def may_read_crew_work(principal: Principal, crew_id: int | None) -> bool:
    """Whose routes (and so whose tickets) a caller sees: staff every crew's, a crew device its own."""
    return principal.role in STAFF or (principal.role == Role.CREW and principal.crew_id == crew_id)


def crew_scope_problem(principal: Principal, crew_id: int | None) -> Problem | None:
    """A CREW token sees its own crew only; staff see every crew."""
    if principal.role == Role.CREW and principal.crew_id != crew_id:
        return Problem(["crewId"], "a crew device may only act for its own crew", ErrorCode.FORBIDDEN)
    return None


def require_crew_scope(principal: Principal, crew_id: int) -> int:
    """`crew_id` when `principal` may act for that crew; a FORBIDDEN DomainError otherwise."""
    problem = crew_scope_problem(principal, crew_id)
    if problem is not None:
        raise DomainError([problem])
    return crew_id


class PermissionMiddleware:
    """graphql-core middleware: checks root fields against ROOT_FIELDS before they resolve."""

    def resolve(self, next_: Any, root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        if info.path.prev is None and not info.field_name.startswith("__"):
            key = f"{info.parent_type.name}.{info.field_name}"
            problem = denial(info.context.principal, key) or rate_limit_problem(info.context, key)
            if problem is not None:
                if info.parent_type.name == "Mutation":
                    return {"errors": [problem]}  # mutations answer in their payload, like other user errors
                raise GraphQLError(problem.message, extensions={"code": problem.code.value})
        return next_(root, info, **args)
