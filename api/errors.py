"""How errors leave the API: domain problems with their code, anything unexpected as a reference, never a trace."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from graphql import GraphQLError

from api.metrics import count_error
from core.errors import DomainError, ErrorCode

log = logging.getLogger("gridcrew.api")


def format_error(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if isinstance(original, DomainError):
        problem = original.problems[0] if original.problems else None
        formatted["message"] = str(original)
        formatted["extensions"] = {"code": problem.code.value if problem else ErrorCode.INVALID.value,
                                   "field": problem.field if problem else None}
    elif original is not None and not isinstance(original, GraphQLError):
        reference = uuid.uuid4().hex[:12]
        log.error("resolver failed (reference %s)", reference, exc_info=original)
        formatted["message"] = f"internal error (reference {reference})"
        formatted["extensions"] = {"code": ErrorCode.INTERNAL.value, "reference": reference}
    count_error((formatted.get("extensions") or {}).get("code"))
    return formatted
