"""Crew-device sync in GraphQL: `syncPull`, `syncPush` and `registerDevice` (the protocol is mobile_sync)."""

from __future__ import annotations

from typing import Any

import anyio
import graphene

from api.auth import Role, issue_token
from api.graphql.core import (
    BaseMutation,
    GeoPointInput,
    TicketStatus,
    UserError,
    database_threads,
    decode_id,
    enum_value,
)
from api.permissions import require_crew_scope
from mobile_sync.protocol import MutationIn, PushSettings, pull, push, register_device, require_device


class ClientMutationKind(graphene.Enum):
    STATUS_CHANGE = "STATUS_CHANGE"
    LOCATION = "LOCATION"
    NOTE = "NOTE"


class ClientMutationInput(graphene.InputObjectType):
    client_mutation_id = graphene.ID(required=True, description="unique per device; a replay is applied once")
    kind = graphene.Field(ClientMutationKind, required=True)
    ticket_id = graphene.ID()
    status = graphene.Field(TicketStatus)
    note = graphene.String()
    location = graphene.Field(GeoPointInput)
    occurred_at = graphene.DateTime(required=True, description="device clock")


class SyncPushInput(graphene.InputObjectType):
    device_id = graphene.ID(required=True)
    mutations = graphene.List(graphene.NonNull(ClientMutationInput), required=True)


class ClientMutationResult(graphene.ObjectType):
    client_mutation_id = graphene.ID(required=True)
    applied = graphene.Boolean(required=True)
    duplicate = graphene.Boolean(required=True)
    error = graphene.Field(UserError)
    outcome = graphene.String(description="APPLIED, NO_CHANGE, HISTORY (late, or an assisting crew's status: "
                                          "kept in the ticket's history), "
                                          "RESOLVED_WINS, CONFLICT or REFUSED")


class SyncPushPayload(graphene.ObjectType):
    results = graphene.List(graphene.NonNull(ClientMutationResult), required=True, default_value=())
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class SyncPullResult(graphene.ObjectType):
    cursor = graphene.String(required=True, description="pass back as `since` on the next pull")
    has_more = graphene.Boolean(required=True)
    tickets = graphene.List(graphene.NonNull("api.graphql.tickets.Ticket"), required=True)
    assignments = graphene.List(graphene.NonNull("api.graphql.dispatch.Assignment"), required=True)
    removed_ticket_ids = graphene.List(graphene.NonNull(graphene.ID), required=True)


class SyncQueries(graphene.ObjectType):
    sync_pull = graphene.Field(SyncPullResult, required=True, device_id=graphene.ID(required=True),
                               since=graphene.String(), limit=graphene.Int(description="change rows per page"))

    @staticmethod
    async def resolve_sync_pull(_root: Any, info: Any, device_id: str, since: str | None = None,
                                limit: int | None = None) -> Any:
        session = info.context.session
        principal = info.context.principal

        def run() -> Any:
            device = require_device(session, device_id, principal.crew_id, principal.device_id)
            return pull(session, device.crew_id, since, limit or 200)

        # Database round trips off the event loop: other devices' requests go on meanwhile.
        return await anyio.to_thread.run_sync(run, limiter=database_threads())


class SyncPush(BaseMutation):
    class Arguments:
        input = SyncPushInput(required=True)

    Output = SyncPushPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        principal = info.context.principal
        mutations = [
            MutationIn(client_mutation_id=str(m.get("client_mutation_id") or ""), kind=enum_value(m.get("kind")),
                       occurred_at=m.get("occurred_at"), ticket_id=m.get("ticket_id"),
                       status=enum_value(m.get("status")), note=m.get("note"),
                       lat=(m.get("location") or {}).get("lat"), lng=(m.get("location") or {}).get("lng"))
            for m in input["mutations"]
        ]
        settings = PushSettings(max_batch=info.context.services.sync_max_batch)
        result = push(info.context.session, principal.crew_id, str(input["device_id"]), mutations,
                      token_device=principal.device_id, settings=settings)
        return {"results": result.results}


class RegisterDeviceInput(graphene.InputObjectType):
    device_id = graphene.ID(required=True, description="chosen by the device, e.g. a UUID")
    crew_id = graphene.ID(required=True)
    name = graphene.String()


class Device(graphene.ObjectType):
    id = graphene.ID(required=True)
    crew = graphene.Field("api.graphql.crews.Crew", required=True)
    name = graphene.String()
    registered_at = graphene.DateTime(required=True)
    last_seen_at = graphene.DateTime()

    @staticmethod
    def resolve_crew(root: Any, info: Any) -> Any:
        return info.context.loaders.crew.load(root.crew_id)


class RegisterDevicePayload(graphene.ObjectType):
    device = graphene.Field(Device)
    token = graphene.String(description="bearer token bound to the crew and this device")
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class RegisterDevice(BaseMutation):
    class Arguments:
        input = RegisterDeviceInput(required=True)

    Output = RegisterDevicePayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        crew_id = require_crew_scope(info.context.principal, decode_id(input["crew_id"], "Crew", "crewId"))
        device = register_device(info.context.session, crew_id, str(input["device_id"]), input.get("name"))
        token = issue_token(Role.CREW, subject=f"device:{device.id}", crew_id=device.crew_id, device_id=device.id,
                            settings=info.context.services.settings)
        return {"device": device, "token": token}


class SyncMutations(graphene.ObjectType):
    sync_push = SyncPush.Field(required=True)
    register_device = RegisterDevice.Field(required=True)
