"""Parsing and validating a GraphQL document once: clients send the same few documents over and over."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, validate
from graphql.validation import ASTValidationRule

MAX_DOCUMENTS = 512
MAX_CACHED_LENGTH = 20_000  # longer documents are parsed every time rather than fill the cache


class DocumentCache:
    def __init__(self, size: int = MAX_DOCUMENTS) -> None:
        self.size = size
        self._parsed: OrderedDict[str, DocumentNode] = OrderedDict()
        # id(document) -> (document, rules, errors); the document is kept so a reused id can't match.
        self._validated: dict[int, tuple[DocumentNode, Any, list[GraphQLError]]] = {}

    def parse(self, _context: Any, data: dict[str, Any]) -> DocumentNode:
        query = data["query"]
        if len(query) > MAX_CACHED_LENGTH:
            return parse(query)
        document = self._parsed.get(query)
        if document is None:
            document = parse(query)
            self._parsed[query] = document
            if len(self._parsed) > self.size:
                _, evicted = self._parsed.popitem(last=False)
                self._validated.pop(id(evicted), None)
        else:
            self._parsed.move_to_end(query)
        return document

    def validate(self, schema: GraphQLSchema, document: DocumentNode,
                 rules: Collection[type[ASTValidationRule]] | None = None, max_errors: int | None = None,
                 **kwargs: Any) -> list[GraphQLError]:
        key = tuple(rules) if rules else None
        cached = self._validated.get(id(document))
        if cached is not None and cached[0] is document and cached[1] == key:
            return cached[2]
        errors = validate(schema, document, rules=rules, max_errors=max_errors, **kwargs)
        if len(self._validated) < self.size * 2:
            self._validated[id(document)] = (document, key, errors)
        return errors
