"""GraphQL subscriptions over graphql-transport-ws: `crewJobs`, `dispatchBoard`, `ticketUpdated`.

Each subscription checks the permission table itself (the HTTP permission middleware does not run for
subscriptions), then waits on this process's live-updates hub (mobile_sync.live) and answers from the
database: crewJobs pulls by cursor (so a missed or repeated notification never loses or repeats a change),
dispatchBoard reloads the changed tickets, ticketUpdated re-reads the public tracking view (no personal data).
Between two answers the operation's session and dataloaders are dropped, so every answer is fresh and no
transaction stays open while a subscriber waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import graphene
from graphql import GraphQLError
from sqlmodel import Session, col, select

from api.graphql.core import database_threads, decode_id
from api.permissions import crew_scope_problem, denial, rate_limit_problem
from core.errors import DomainError, ErrorCode, Problem
from customers.tracking import find_for_customer, track
from dispatch.models import Ticket
from mobile_sync.changes import TOPIC_BOARD, TOPIC_CREW, TOPIC_CUSTOMER
from mobile_sync.live import Change, LiveUpdates
from mobile_sync.protocol import pull


def _error(problem: Problem) -> GraphQLError:
    return GraphQLError(problem.message, extensions={"code": problem.code.value, "field": problem.field})


def _live(info: Any, key: str) -> LiveUpdates:
    problem = denial(info.context.principal, key) or rate_limit_problem(info.context, key)
    if problem is not None:
        raise _error(problem)
    live = info.context.services.live
    if live is None or not live.started:
        raise GraphQLError("live updates are not running in this process",
                           extensions={"code": ErrorCode.NOT_AVAILABLE.value})
    return live


def _fresh(context: Any) -> None:
    """Drop the operation's session and dataloader caches: the next answer reads the database anew."""
    context.close()
    context.__dict__.pop("loaders", None)


async def _changes(live: LiveUpdates, queue: Any, wanted: Callable[[Change], bool],
                   context: Any) -> AsyncIterator[list[Change]]:
    """Batches of wanted changes from `queue` (subscribed before the first answer was read: nothing between)."""
    try:
        while True:
            _fresh(context)
            batch = [c for c in await queue.get() if wanted(c)]
            if batch:
                yield batch
    finally:
        live.hub.unsubscribe(queue)
        _fresh(context)


def pull_alone(context: Any, crew: int, cursor: str) -> Any:
    """`pull` in a session of its own (worker threads never share the operation's session; see ticketUpdated).
    The tickets come back loaded and detached; their fields are resolved from loaded columns."""
    with Session(context.services.engine, expire_on_commit=False) as own:
        return pull(own, crew, cursor)


class Subscription(graphene.ObjectType):
    ticket_updated = graphene.Field("api.graphql.customers.TicketTracking", required=True,
                                    number=graphene.String(required=True),
                                    phone_last4=graphene.String(required=True),
                                    description="the public view now, then on every customer-visible change")
    crew_jobs = graphene.Field("api.graphql.sync.SyncPullResult", required=True, crew_id=graphene.ID(required=True),
                               since=graphene.String(description="a syncPull cursor; none: the current jobs first"),
                               description="the crew's jobs now (or the changes since `since`), then each change")
    dispatch_board = graphene.Field("api.graphql.tickets.Ticket", required=True,
                                    description="every ticket change, conflicts from the field included")

    @staticmethod
    async def subscribe_ticket_updated(_root: Any, info: Any, number: str, phone_last4: str) -> AsyncIterator[Any]:
        live = _live(info, "Subscription.ticketUpdated")
        context = info.context
        ticket = find_for_customer(context.session, number, phone_last4)
        if ticket is None:
            raise _error(Problem(["number"], "no ticket with that number and phone digits", ErrorCode.NOT_FOUND))
        ticket_id = ticket.id
        _fresh(context)
        queue = live.hub.subscribe(TOPIC_CUSTOMER, ticket_id)

        def read() -> Any:
            # A session of its own: the read runs in a worker thread and the operation's session may be closed
            # under it when the client goes away. The answer is plain data: nothing needs it open afterwards.
            with Session(context.services.engine, expire_on_commit=False) as own:
                return track(own, number, phone_last4)

        async def stream() -> AsyncIterator[Any]:
            yield await anyio.to_thread.run_sync(read, limiter=database_threads())
            async for _batch in _changes(live, queue, lambda c: c.topic == TOPIC_CUSTOMER and c.ticket_id == ticket_id,
                                         context):
                tracking = await anyio.to_thread.run_sync(read, limiter=database_threads())
                if tracking is not None:
                    yield tracking

        return stream()

    @staticmethod
    async def subscribe_crew_jobs(_root: Any, info: Any, crew_id: str, since: str | None = None) -> AsyncIterator[Any]:
        live = _live(info, "Subscription.crewJobs")
        context = info.context
        try:
            crew = decode_id(crew_id, "Crew", "crewId")
        except DomainError as error:
            raise _error(error.problems[0]) from error
        problem = crew_scope_problem(context.principal, crew)
        if problem is not None:
            raise _error(problem)
        queue = live.hub.subscribe(TOPIC_CREW, crew)
        try:
            first = pull(context.session, crew, since)
        except DomainError as error:
            live.hub.unsubscribe(queue)
            raise _error(error.problems[0]) from error

        async def stream() -> AsyncIterator[Any]:
            result = first
            yield result
            while result.has_more:
                _fresh(context)
                result = pull(context.session, crew, result.cursor)
                yield result
            cursor = result.cursor
            async for _batch in _changes(live, queue, lambda c: c.topic == TOPIC_CREW and c.crew_id == crew, context):
                while True:
                    result = await anyio.to_thread.run_sync(pull_alone, context, crew, cursor,
                                                            limiter=database_threads())
                    if result.cursor == cursor:
                        break
                    cursor = result.cursor
                    yield result
                    _fresh(context)
                    if not result.has_more:
                        break

        return stream()

    @staticmethod
    async def subscribe_dispatch_board(_root: Any, info: Any) -> AsyncIterator[Any]:
        live = _live(info, "Subscription.dispatchBoard")
        context = info.context
        queue = live.hub.subscribe(TOPIC_BOARD)

        async def stream() -> AsyncIterator[Any]:
            async for batch in _changes(live, queue, lambda c: c.topic == TOPIC_BOARD, context):
                ids = list(dict.fromkeys(c.ticket_id for c in batch if c.ticket_id is not None))
                tickets = {t.id: t for t in context.session.exec(select(Ticket).where(col(Ticket.id).in_(ids)))}
                for ticket_id in ids:
                    if ticket_id in tickets:
                        yield tickets[ticket_id]

        return stream()
