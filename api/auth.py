"""Signed bearer tokens (PyJWT, HS256) and the principal a request acts as.

Tokens are signed with SECRET_KEY (never the development default in production: core.settings refuses to
start), expire (`exp` is required; TOKEN_TTL_HOURS), and carry an id (`jti`) and their issue instant (`iat`, to the
millisecond) so that a revoked token or every token of a lost device is refused (api/revocation.py).
gridcrew keeps no passwords: people and devices get tokens from an operator (`gridcrew token`,
`registerDevice`), so there is nothing to hash.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import jwt

from core.clock import utcnow
from core.settings import Settings, get_settings

ALGORITHM = "HS256"


class Role(StrEnum):
    ADMIN = "ADMIN"
    DISPATCHER = "DISPATCHER"
    CREW = "CREW"
    PUBLIC = "PUBLIC"  # anonymous: customers tracking a ticket


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str = "anonymous"
    crew_id: int | None = None
    device_id: str | None = None
    # Why a presented token was refused (expired, bad signature, revoked); the caller then acts as PUBLIC.
    token_error: str | None = None
    token_id: str | None = None  # the token's `jti`
    issued_at: float | None = None  # the token's `iat` (epoch seconds)

    @property
    def authenticated(self) -> bool:
        return self.role != Role.PUBLIC

    @property
    def source(self) -> str:
        """How events written by this principal name their source."""
        return {Role.ADMIN: "dispatcher", Role.DISPATCHER: "dispatcher", Role.CREW: "crew device",
                Role.PUBLIC: "customer"}[self.role]


ANONYMOUS = Principal(Role.PUBLIC)
# Answers whether (token id, device id, issued at) was revoked: api.revocation.Revocations.is_revoked.
RevocationCheck = Callable[[str | None, str | None, float | None], bool]


def issue_token(
    role: Role, subject: str | None = None, crew_id: int | None = None, device_id: str | None = None,
    ttl: timedelta | None = None, settings: Settings | None = None,
) -> str:
    settings = settings or get_settings()
    if role == Role.CREW and crew_id is None:
        raise ValueError("a CREW token is bound to one crew: give crew_id")
    now = utcnow()
    claims: dict[str, object] = {
        "sub": subject or role.value.lower(),
        "role": role.value,
        "iat": round(now.timestamp(), 3),
        "exp": int((now + (ttl or timedelta(hours=settings.token_ttl_hours))).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    if crew_id is not None:
        claims["crew"] = crew_id
    if device_id is not None:
        claims["dev"] = device_id
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


def principal_from_header(authorization: str | None, settings: Settings | None = None,
                          revoked: RevocationCheck | None = None) -> Principal:
    """The principal of an `Authorization: Bearer <token>` header; anonymous when absent, invalid or revoked."""
    if not authorization:
        return ANONYMOUS
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Principal(Role.PUBLIC, token_error="use 'Authorization: Bearer <token>'")
    return principal_from_token(token.strip(), settings, revoked)


@lru_cache(maxsize=4096)
def _verified_claims(token: str, secret: str) -> Mapping[str, Any]:
    """The claims of a token whose signature is good and that is valid now (raises otherwise: nothing is kept
    then). Kept, because checking the signature costs more than the rest of a small request's authentication,
    and callers send the same token again and again; its expiry is checked again at every use."""
    claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    return MappingProxyType(claims)


def principal_from_token(token: str, settings: Settings | None = None,
                         revoked: RevocationCheck | None = None) -> Principal:
    settings = settings or get_settings()
    try:
        claims = _verified_claims(token, settings.secret_key)
        if claims["exp"] <= time.time():  # (checked on every use: a verified token is kept, not its validity)
            raise jwt.ExpiredSignatureError("expired")
        role = Role(claims["role"])
        crew_id = claims.get("crew")
        if crew_id is not None and not isinstance(crew_id, int):
            raise ValueError("crew claim")
        if role == Role.CREW and crew_id is None:
            raise ValueError("a CREW token names its crew")
        issued_at = float(claims["iat"]) if "iat" in claims else None
    except jwt.ExpiredSignatureError:
        return Principal(Role.PUBLIC, token_error="token expired")
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        return Principal(Role.PUBLIC, token_error="invalid token")
    token_id, device_id = claims.get("jti"), claims.get("dev")
    if revoked is not None and revoked(token_id, device_id, issued_at):
        return Principal(Role.PUBLIC, token_error="token revoked")
    return Principal(role=role, subject=str(claims.get("sub", "")), crew_id=crew_id, device_id=device_id,
                     token_id=token_id, issued_at=issued_at)
