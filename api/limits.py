"""Limits on what one request may ask: selection depth, query complexity, request body size.

* Depth and complexity are GraphQL validation rules (`limit_rules`), so a document over a limit is refused before
  anything runs, with status 400 and the code QUERY_TOO_COMPLEX. Depth counts nested selection sets through
  fragments; complexity counts the fields a document selects, fragments expanded and aliases counted, so alias
  bombs and fragment fan-outs are caught. Page sizes are bounded separately (MAX_PAGE_SIZE), so the rows one
  request can read stay bounded by page size × complexity. Introspection fields are left to the introspection
  switch (off in production).
* `BodySizeLimit` is an ASGI middleware refusing an HTTP body over `max_body_bytes` with 413 and a GraphQL-shaped
  error (code PAYLOAD_TOO_LARGE), whether the client announced its length or streamed it.
"""

from __future__ import annotations

import json
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import ErrorCode

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


def _measure(selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode],
             visiting: frozenset[str], memo: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """(depth, fields) of a selection set; fragment cycles are another rule's error, counted once here."""
    if selection_set is None:
        return 0, 0
    depth, fields = 0, 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value in INTROSPECTION_FIELDS:
                continue
            child_depth, child_fields = _measure(selection.selection_set, fragments, visiting, memo)
            depth = max(depth, child_depth + 1)
            fields += 1 + child_fields
        elif isinstance(selection, InlineFragmentNode):
            child_depth, child_fields = _measure(selection.selection_set, fragments, visiting, memo)
            depth, fields = max(depth, child_depth), fields + child_fields
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in visiting:
                continue
            if name not in memo:
                memo[name] = _measure(fragment.selection_set, fragments, visiting | {name}, memo)
            child_depth, child_fields = memo[name]
            depth, fields = max(depth, child_depth), fields + child_fields
    return depth, fields


def measure(operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]) -> tuple[int, int]:
    """Depth counted from the root (`{ a { b } }` is 2) and the number of fields selected."""
    return _measure(operation.selection_set, fragments, frozenset(), {})


def too_complex(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.QUERY_TOO_COMPLEX.value})


def limit_rules(max_depth: int, max_complexity: int) -> list[type[ValidationRule]]:
    """Validation rules refusing documents deeper than `max_depth` or selecting more than `max_complexity` fields."""

    class QueryLimits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
            depth, fields = measure(node, self.fragments)
            name = node.name.value if node.name else "the operation"
            if depth > max_depth:
                self.report_error(too_complex(f"{name} is nested {depth} levels deep; at most {max_depth} allowed"))
            if fields > max_complexity:
                self.report_error(too_complex(
                    f"{name} selects {fields} fields (fragments expanded, aliases counted); "
                    f"at most {max_complexity} allowed"))

    return [QueryLimits]


def graphql_error_body(message: str, code: ErrorCode) -> bytes:
    return json.dumps({"errors": [{"message": message, "extensions": {"code": code.value}}]}).encode()


class BodySizeLimit:
    """Refuses HTTP request bodies larger than `max_bytes` with 413 and a GraphQL error document."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        # Streamed (or understated) bodies: read up to the limit, then replay what was read to the app.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = graphql_error_body(f"request body larger than {self.max_bytes} bytes", ErrorCode.PAYLOAD_TOO_LARGE)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
