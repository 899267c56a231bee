"""Errors that domain functions raise for bad input; the API turns them into `UserError`s."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    DUPLICATE = "DUPLICATE"
    CONFLICT = "CONFLICT"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INFEASIBLE = "INFEASIBLE"
    RATE_LIMITED = "RATE_LIMITED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"  # deeper or larger than the limits of api/limits.py
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"  # request body over MAX_BODY_BYTES
    NOT_AVAILABLE = "NOT_AVAILABLE"  # a capability that is not built yet
    INTERNAL = "INTERNAL"  # our fault; nothing was saved


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: which field (a path), what, and a machine-readable code."""

    field: list[str] | None
    message: str
    code: ErrorCode = ErrorCode.INVALID


@dataclass
class DomainError(Exception):
    """Raised with every problem found, so a caller fixes them all in one go."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(p.message for p in self.problems)

    @classmethod
    def one(cls, field_name: str | None, message: str, code: ErrorCode = ErrorCode.INVALID) -> DomainError:
        return cls([Problem([field_name] if field_name else None, message, code)])


class Problems:
    """Collects problems during validation; `raise_if_any()` raises them together."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, field_name: str | None, message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        self.items.append(Problem([field_name] if field_name else None, message, code))

    def raise_if_any(self) -> None:
        if self.items:
            raise DomainError(list(self.items))
