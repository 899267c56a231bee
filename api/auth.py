"""Signed bearer tokens (PyJWT, HS256) and the principal a request acts as."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

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
    # Why a presented token was refused (expired, bad signature); the caller then acts as PUBLIC.
    token_error: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.role != Role.PUBLIC

    @property
    def source(self) -> str:
        """How events written by this principal name their source."""
        return {Role.ADMIN: "dispatcher", Role.DISPATCHER: "dispatcher", Role.CREW: "crew device",
                Role.PUBLIC: "customer"}[self.role]


ANONYMOUS = Principal(Role.PUBLIC)


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
        "iat": int(now.timestamp()),
        "exp": int((now + (ttl or timedelta(hours=settings.token_ttl_hours))).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    if crew_id is not None:
        claims["crew"] = crew_id
    if device_id is not None:
        claims["dev"] = device_id
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


def principal_from_header(authorization: str | None, settings: Settings | None = None) -> Principal:
    """The principal of an `Authorization: Bearer <token>` header; anonymous when absent or invalid."""
    if not authorization:
        return ANONYMOUS
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Principal(Role.PUBLIC, token_error="use 'Authorization: Bearer <token>'")
    return principal_from_token(token.strip(), settings)


def principal_from_token(token: str, settings: Settings | None = None) -> Principal:
    settings = settings or get_settings()
    try:
        claims = jwt.decode(token, settings.secret_key, algorithms=[ALGORITHM], options={"require": ["exp"]})
        role = Role(claims["role"])
    except jwt.ExpiredSignatureError:
        return Principal(Role.PUBLIC, token_error="token expired")
    except (jwt.InvalidTokenError, KeyError, ValueError):
        return Principal(Role.PUBLIC, token_error="invalid token")
    return Principal(role=role, subject=str(claims.get("sub", "")), crew_id=claims.get("crew"),
                     device_id=claims.get("dev"))
