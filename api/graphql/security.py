"""Security in GraphQL: `revokeToken`, for a lost device or a leaked token (the rules are api/revocation.py)."""

from __future__ import annotations

from typing import Any

import graphene

from api.graphql.core import BaseMutation, UserError
from api.revocation import revoke


class RevokeTokenInput(graphene.InputObjectType):
    device_id = graphene.ID(description="a lost device: every token it was given so far stops working")
    token_id = graphene.ID(description="one token, by its `jti` claim")
    reason = graphene.String()


class RevokeTokenPayload(graphene.ObjectType):
    revoked = graphene.Int(description="revocations recorded (device and/or token)")
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class RevokeToken(BaseMutation):
    """Refuse a device's tokens (registering it again gives it a new one) or a single token, before they expire."""

    class Arguments:
        input = RevokeTokenInput(required=True)

    Output = RevokeTokenPayload

    @classmethod
    def perform(cls, info: Any, input: Any) -> dict[str, Any]:  # noqa: A002
        rows = revoke(info.context.session, device_id=input.get("device_id"), token_id=input.get("token_id"),
                      reason=input.get("reason"), revoked_by=info.context.principal.subject)
        revocations = info.context.services.revocations
        if revocations is not None:
            revocations.invalidate()  # this process refuses them from the next request on
        return {"revoked": len(rows)}


class SecurityMutations(graphene.ObjectType):
    revoke_token = RevokeToken.Field(required=True)
