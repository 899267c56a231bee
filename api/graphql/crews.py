"""Crews and mobile generators in GraphQL: types, `crews`/`mobileGenerators` queries, registration."""

from __future__ import annotations

from typing import Any

import graphene
from graphene import relay

from api.graphql.core import (
    BaseMutation,
    CrewStatus,
    GeneratorStatus,
    GeoPoint,
    GeoPointInput,
    UserError,
    decode_id,
    enum_value,
    list_page,
    list_page_args,
    point,
)
from api.permissions import may_read_crew_work, may_read_ticket
from crews import models
from crews.roster import (
    NewCrew,
    NewGenerator,
    create_crew,
    create_generator,
    crew_status,
    lend_crew,
    list_crews,
    list_generators,
)


class Crew(graphene.ObjectType):
    class Meta:
        interfaces = (relay.Node,)

    name = graphene.String(required=True)
    skills = graphene.List(graphene.NonNull(graphene.String), required=True)
    home = graphene.Field(GeoPoint, required=True)
    location = graphene.Field(GeoPoint)
    last_seen_at = graphene.DateTime()
    shift_start = graphene.DateTime()
    shift_end = graphene.DateTime()
    can_tow_generator = graphene.Boolean(required=True)
    status = graphene.Field(CrewStatus, required=True)
    region = graphene.String(required=True)
    branch = graphene.String()
    route = graphene.List(graphene.NonNull("api.graphql.dispatch.Assignment"), required=True)

    @classmethod
    def is_type_of(cls, root: Any, _info: Any) -> bool:
        return isinstance(root, models.Crew)

    @classmethod
    def get_node(cls, info: Any, id: str) -> Any:  # noqa: A002
        return info.context.loaders.crew.load(int(id))

    @staticmethod
    def resolve_home(root: models.Crew, _info: Any) -> dict[str, float] | None:
        return point(root.home_lat, root.home_lng)

    @staticmethod
    def resolve_location(root: models.Crew, _info: Any) -> dict[str, float] | None:
        return point(root.lat, root.lng)

    @staticmethod
    async def resolve_status(root: models.Crew, info: Any) -> str:
        busy = await info.context.loaders.crew_busy.load(root.id)
        return crew_status(root, busy).value

    @staticmethod
    def resolve_route(root: models.Crew, info: Any) -> Any:
        if not may_read_crew_work(info.context.principal, root.id):
            return []  # another crew's jobs (and their customers' addresses) are not a crew device's business
        return info.context.loaders.route.load(root.id)


class MobileGenerator(graphene.ObjectType):
    class Meta:
        interfaces = (relay.Node,)

    name = graphene.String(required=True)
    capacity_kw = graphene.Float(required=True)
    location = graphene.Field(GeoPoint, required=True)
    status = graphene.Field(GeneratorStatus, required=True)
    assigned_ticket = graphene.Field("api.graphql.tickets.Ticket")

    @classmethod
    def is_type_of(cls, root: Any, _info: Any) -> bool:
        return isinstance(root, models.MobileGenerator)

    @classmethod
    def get_node(cls, info: Any, id: str) -> Any:  # noqa: A002
        return info.context.loaders.generator.load(int(id))

    @staticmethod
    def resolve_location(root: models.MobileGenerator, _info: Any) -> dict[str, float] | None:
        return point(root.lat, root.lng)

    @staticmethod
    def resolve_assigned_ticket(root: models.MobileGenerator, info: Any) -> Any:
        if not root.assigned_ticket_id or not may_read_ticket(info.context, root.assigned_ticket_id):
            return None
        return info.context.loaders.ticket.load(root.assigned_ticket_id)


class CrewQueries(graphene.ObjectType):
    crews = graphene.List(graphene.NonNull(Crew), required=True, status=graphene.List(graphene.NonNull(CrewStatus)),
                          **list_page_args())
    mobile_generators = graphene.List(graphene.NonNull(MobileGenerator), required=True, **list_page_args())

    @staticmethod
    def resolve_crews(_root: Any, info: Any, status: list[Any] | None = None, first: int | None = None,
                      offset: int | None = None) -> list[models.Crew]:
        crews = [crew for crew, _ in list_crews(info.context.session, enum_value(status))]
        return list_page(crews, info, first, offset)

    @staticmethod
    def resolve_mobile_generators(_root: Any, info: Any, first: int | None = None,
                                  offset: int | None = None) -> list[models.MobileGenerator]:
        return list_page(list_generators(info.context.session), info, first, offset)


class CreateCrewInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    skills = graphene.List(graphene.NonNull(graphene.String), required=True)
    home = graphene.Field(GeoPointInput, required=True)
    shift_start = graphene.DateTime()
    shift_end = graphene.DateTime()
    can_tow_generator = graphene.Boolean()
    region = graphene.String()
    branch = graphene.String()


class CrewPayload(graphene.ObjectType):
    crew = graphene.Field(Crew)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class CreateCrew(BaseMutation):
    class Arguments:
        input = CreateCrewInput(required=True)

    Output = CrewPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        crew = create_crew(info.context.session, NewCrew(
            name=input["name"], skills=list(input["skills"]), home_lat=input["home"]["lat"],
            home_lng=input["home"]["lng"], shift_start=input.get("shift_start"), shift_end=input.get("shift_end"),
            can_tow_generator=bool(input.get("can_tow_generator")), region=input.get("region") or "default",
            branch=input.get("branch"),
        ))
        return {"crew": crew}


class CreateMobileGeneratorInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    capacity_kw = graphene.Float(required=True)
    location = graphene.Field(GeoPointInput, required=True)
    region = graphene.String()


class MobileGeneratorPayload(graphene.ObjectType):
    generator = graphene.Field(MobileGenerator)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class CreateMobileGenerator(BaseMutation):
    class Arguments:
        input = CreateMobileGeneratorInput(required=True)

    Output = MobileGeneratorPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        generator = create_generator(info.context.session, NewGenerator(
            name=input["name"], capacity_kw=input["capacity_kw"], lat=input["location"]["lat"],
            lng=input["location"]["lng"], region=input.get("region") or "default",
        ))
        return {"generator": generator}


class LendCrewInput(graphene.InputObjectType):
    crew_id = graphene.ID(required=True)
    region = graphene.String(required=True, description="the dispatch region that borrows the crew")


class LendCrew(BaseMutation):
    """Mutual aid: a dispatcher lends a crew to another region's board."""

    class Arguments:
        input = LendCrewInput(required=True)

    Output = CrewPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        crew_id = decode_id(input["crew_id"], "Crew", "crewId")
        return {"crew": lend_crew(info.context.session, crew_id, input["region"])}


class CrewMutations(graphene.ObjectType):
    create_crew = CreateCrew.Field(required=True)
    create_mobile_generator = CreateMobileGenerator.Field(required=True)
    lend_crew = LendCrew.Field(required=True)
