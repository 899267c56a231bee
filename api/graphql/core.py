"""Shared GraphQL pieces: enums, UserError, GeoPoint, global ids and the base of every mutation."""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import graphene
from graphql import GraphQLError
from graphql_relay import from_global_id
from sqlalchemy.exc import DBAPIError

from core.errors import DomainError, Problem
from core.errors import ErrorCode as DomainErrorCode
from crews.models import CrewStatus as CrewStatusEnum
from crews.models import GeneratorStatus as GeneratorStatusEnum
from dispatch import enums

log = logging.getLogger(__name__)

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = \
    weakref.WeakKeyDictionary()
# Database work (mutations, pulls, subscriptions' reads) runs in worker threads, so one request's round trips
# don't stall the others. Fewer threads than the engine's pool has connections (10 + 20 overflow): under
# overload requests queue here instead of timing out on the pool, and subscriptions still get a connection.
DATABASE_THREADS = 16


def database_threads() -> anyio.CapacityLimiter:
    """The limiter of the worker threads that run database work off the event loop, one per event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _limiters:
        _limiters[loop] = anyio.CapacityLimiter(DATABASE_THREADS)
    return _limiters[loop]


ErrorCode = graphene.Enum.from_enum(DomainErrorCode)
TicketKind = graphene.Enum.from_enum(enums.TicketKind)
Channel = graphene.Enum.from_enum(enums.Channel)
Priority = graphene.Enum.from_enum(enums.Priority)
TicketStatus = graphene.Enum.from_enum(enums.TicketStatus)
AreaType = graphene.Enum.from_enum(enums.AreaType)
IncidentStatus = graphene.Enum.from_enum(enums.IncidentStatus)
PlanStatus = graphene.Enum.from_enum(enums.PlanStatus)
CrewStatus = graphene.Enum.from_enum(CrewStatusEnum)
GeneratorStatus = graphene.Enum.from_enum(GeneratorStatusEnum)


class UserError(graphene.ObjectType):
    """Something wrong with the input: the field path, a message for people, a code for programs."""

    field = graphene.List(graphene.NonNull(graphene.String))
    message = graphene.String(required=True)
    code = graphene.Field(ErrorCode, required=True)

    @staticmethod
    def resolve_code(root: Problem, _info: Any) -> str:
        return root.code.value


class GeoPoint(graphene.ObjectType):
    lat = graphene.Float(required=True)
    lng = graphene.Float(required=True)


class GeoPointInput(graphene.InputObjectType):
    lat = graphene.Float(required=True)
    lng = graphene.Float(required=True)


def point(lat: float | None, lng: float | None) -> dict[str, float] | None:
    return None if lat is None or lng is None else {"lat": lat, "lng": lng}


def enum_value(value: Any) -> Any:
    """Graphene hands enum arguments over as Python enum members; the domain speaks plain strings."""
    if isinstance(value, list):
        return [enum_value(v) for v in value]
    return getattr(value, "value", value)


def decode_id(value: str | None, type_name: str, field: str) -> int:
    """Accepts a global id ("Ticket:12" base64, as served) or a plain number."""
    if value is None or str(value).strip() == "":
        raise DomainError.one(field, f"{field} is required", DomainErrorCode.REQUIRED)
    text = str(value).strip()
    if text.isascii() and text.isdigit():  # str.isdigit() also takes '²', which int() refuses
        return int(text)
    try:
        found_type, raw = from_global_id(text)
        if found_type == type_name and raw.isascii() and raw.isdigit():
            return int(raw)
    except Exception:  # noqa: BLE001  (any malformed id is the caller's error, reported below)
        pass
    raise DomainError.one(field, f"'{text[:60]}' is not the id of a {type_name}", DomainErrorCode.NOT_FOUND)


def list_page_args() -> dict[str, graphene.Argument]:
    """`first`/`offset` of a plain list field: every item when `first` is left out (the board shows them all),
    else at most `first` (up to the server's page size) after skipping `offset`."""
    return {"first": graphene.Int(description="at most this many (up to the page size); default: all"),
            "offset": graphene.Int(description="skip this many first (default 0)")}


def list_page(items: list[Any], info: Any, first: int | None = None, offset: int | None = None) -> list[Any]:
    """The page of `items` that `first`/`offset` ask for; a clear error on a negative or oversized value."""
    limit = info.context.services.max_page_size
    if first is not None and not 0 <= first <= limit:
        raise DomainError.one("first", f"first must be between 0 and {limit}")
    if offset is not None and offset < 0:
        raise DomainError.one("offset", "offset must be 0 or more")
    start = offset or 0
    return items[start:] if first is None else items[start:start + first]


def not_available(capability: str) -> GraphQLError:
    """The answer of a contract field whose capability has not been built yet: a clear error, not a stub."""
    return GraphQLError(f"{capability} is not available yet in this version of gridcrew",
                        extensions={"code": DomainErrorCode.NOT_AVAILABLE.value})


def not_available_problem(capability: str) -> DomainError:
    return DomainError.one(None, f"{capability} is not available yet in this version of gridcrew",
                           DomainErrorCode.NOT_AVAILABLE)


# PostgreSQL's deadlock_detected and serialization_failure: the transaction lost a race and changed nothing.
RACE_SQLSTATES = frozenset({"40P01", "40001"})
RACE_RETRIES = 2


def lost_a_race(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in RACE_SQLSTATES


class BaseMutation(graphene.Mutation):
    """Every mutation takes one `input` and answers a payload whose `errors` lists what was wrong.

    Subclasses implement `perform(info, input) -> dict`; domain errors become `errors`, anything else is
    logged with a reference and answered as INTERNAL after rolling back, never as a traceback.
    """

    class Meta:
        abstract = True

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        raise NotImplementedError

    @classmethod
    async def mutate(cls, root: Any, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        # Off the event loop: while this mutation waits on the database, other requests go on.
        return await anyio.to_thread.run_sync(partial(cls.mutate_now, root, info, input), limiter=database_threads())

    @classmethod
    def mutate_now(cls, root: Any, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        return cls.guarded(info, partial(cls.perform, info, input))

    @classmethod
    def guarded(cls, info: Any, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run `work` (database work, in a worker thread) the way every mutation runs: a domain error becomes
        `errors`; a lost race runs it again; anything else is rolled back and answered as INTERNAL."""
        session = info.context.session
        for attempt in range(RACE_RETRIES + 1):
            try:
                result = work()
                result.setdefault("errors", [])
                return result
            except DomainError as error:
                session.rollback()
                return {"errors": error.problems}
            except DBAPIError as error:
                session.rollback()
                if attempt < RACE_RETRIES and lost_a_race(error):
                    continue  # the database undid all of it: run it again, as the client's retry would
                return cls.internal_error()
            except Exception:
                session.rollback()
                return cls.internal_error()
        raise AssertionError("unreachable")

    @classmethod
    def internal_error(cls) -> dict[str, Any]:
        """Logged with a reference and the trace (called while handling the exception); answered without it."""
        reference = uuid.uuid4().hex[:12]
        log.exception("mutation %s failed (reference %s)", cls.__name__, reference)
        return {"errors": [Problem(None, f"internal error, nothing was saved (reference {reference})",
                                   DomainErrorCode.INTERNAL)]}
