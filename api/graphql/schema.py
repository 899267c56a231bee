"""The whole schema: every domain's queries and mutations joined into one graphene.Schema."""

from __future__ import annotations

from typing import Any

import graphene
from graphene import relay
from graphql import print_schema
from graphql_relay import from_global_id

from api.graphql.crews import CrewMutations, CrewQueries
from api.graphql.customers import CustomerMutations, CustomerQueries
from api.graphql.dispatch import DispatchMutations, DispatchQueries
from api.graphql.quality import QualityMutations, QualityQueries
from api.graphql.security import SecurityMutations
from api.graphql.subscriptions import Subscription
from api.graphql.sync import SyncMutations, SyncQueries
from api.graphql.tickets import TicketMutations, TicketQueries
from core.errors import DomainError, ErrorCode


class Me(graphene.ObjectType):
    role = graphene.String(required=True)
    crew_id = graphene.ID()
    device_id = graphene.ID()


class Query(TicketQueries, CrewQueries, DispatchQueries, SyncQueries, CustomerQueries, QualityQueries,
            graphene.ObjectType):
    node = graphene.Field(relay.Node, id=graphene.ID(required=True, description="The ID of the object"),
                          description="Fetches an object given its ID")
    me = graphene.Field(Me, required=True, description="who the token says you are")

    @staticmethod
    def resolve_node(_root: Any, info: Any, id: str) -> Any:  # noqa: A002
        # graphene's own resolver answers a malformed id with an exception (an INTERNAL error): NOT_FOUND here.
        try:
            type_name, raw = from_global_id(id)
        except Exception:  # noqa: BLE001  (any undecodable id is the caller's error)
            type_name, raw = "", ""
        found = info.schema.get_type(type_name) if type_name else None
        node_type = getattr(found, "graphene_type", None)
        is_node = node_type is not None and relay.Node in getattr(node_type._meta, "interfaces", ())
        if not is_node or not (raw.isascii() and raw.isdigit()):
            raise DomainError.one("id", f"'{str(id)[:60]}' is not the id of anything here", ErrorCode.NOT_FOUND)
        return node_type.get_node(info, raw)

    @staticmethod
    def resolve_me(_root: Any, info: Any) -> dict[str, Any]:
        principal = info.context.principal
        return {"role": principal.role.value, "crew_id": principal.crew_id, "device_id": principal.device_id}


class Mutation(TicketMutations, CrewMutations, DispatchMutations, SyncMutations, CustomerMutations, QualityMutations,
               SecurityMutations, graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query, mutation=Mutation, subscription=Subscription)


def schema_sdl() -> str:
    return print_schema(schema.graphql_schema)
