"""The whole schema: every domain's queries and mutations joined into one graphene.Schema."""

from __future__ import annotations

from typing import Any

import graphene
from graphene import relay
from graphql import print_schema

from api.graphql.crews import CrewMutations, CrewQueries
from api.graphql.customers import CustomerMutations, CustomerQueries
from api.graphql.dispatch import DispatchMutations, DispatchQueries
from api.graphql.quality import QualityMutations, QualityQueries
from api.graphql.subscriptions import Subscription
from api.graphql.sync import SyncMutations, SyncQueries
from api.graphql.tickets import TicketMutations, TicketQueries


class Me(graphene.ObjectType):
    role = graphene.String(required=True)
    crew_id = graphene.ID()
    device_id = graphene.ID()


class Query(TicketQueries, CrewQueries, DispatchQueries, SyncQueries, CustomerQueries, QualityQueries,
            graphene.ObjectType):
    node = relay.Node.Field()
    me = graphene.Field(Me, required=True, description="who the token says you are")

    @staticmethod
    def resolve_me(_root: Any, info: Any) -> dict[str, Any]:
        principal = info.context.principal
        return {"role": principal.role.value, "crew_id": principal.crew_id, "device_id": principal.device_id}


class Mutation(TicketMutations, CrewMutations, DispatchMutations, SyncMutations, CustomerMutations, QualityMutations,
               graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query, mutation=Mutation, subscription=Subscription)


def schema_sdl() -> str:
    return print_schema(schema.graphql_schema)
