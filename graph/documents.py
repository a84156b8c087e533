"""GraphQL documents parsed and validated once: one bounded cache, keyed by the query text,
holds each document with its validation errors under ModelQL's limits (token count, depth,
aliases, introspection). One schema extension instead of four: every hook costs each request."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    SelectionSetNode,
    Visitor,
    parse,
    specified_rules,
    visit,
)
from strawberry.extensions import SchemaExtension

from modelql.graph.errors import ErrorCode
from modelql.graph.executor_internals import core_schema, validate_document
from modelql.graph.persisted_queries import document_hash

Prepared = tuple[DocumentNode, list[GraphQLError]]


def document_cache(
    *,
    max_tokens: int,
    rules: Sequence[type[ASTValidationRule]],
    size: int,
    allowed: frozenset[str] | None = None,
) -> Callable[[str, GraphQLSchema], Prepared]:
    """A bounded LRU of (document, validation errors) by query text and schema. ModelQL's
    limit rules run only on documents the spec's rules accept: Strawberry's depth limit raises
    (instead of reporting) on an unknown fragment or an empty selection set. With `allowed`
    (SHA-256 hashes), any other document is refused before it is parsed, on every transport."""
    limits = tuple(rules)

    @lru_cache(maxsize=size)
    def prepare(query: str, schema: GraphQLSchema) -> Prepared:
        if allowed is not None and document_hash(query) not in allowed:
            raise GraphQLError(
                "This server runs only the documents of its allow-list; this one is not in it.",
                extensions={"code": str(ErrorCode.PERSISTED_QUERY_NOT_IN_LIST)},
            )
        document = parse(query, max_tokens=max_tokens)
        errors = _empty_selection_sets(document) or validate_document(
            schema, document, specified_rules
        )
        return document, errors or validate_document(schema, document, limits)

    return prepare


class _EmptySelectionSets(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[GraphQLError] = []

    def enter_selection_set(self, node: SelectionSetNode, *_: object) -> None:
        if not node.selections:
            self.errors.append(
                GraphQLError("Empty selection set: select at least one field inside `{ }`.", node)
            )


def _empty_selection_sets(document: DocumentNode) -> list[GraphQLError]:
    """graphql-core 3.3 parses `{}`, which the GraphQL spec does not allow (nor does any of
    its rules refuse it): refused here, before the validation rules run."""
    finder = _EmptySelectionSets()
    visit(document, finder)
    return finder.errors


class CachedDocuments(SchemaExtension):
    """Parses and validates from the shared cache; a document's errors are reported as its
    validation errors."""

    def __init__(self, prepare: Callable[[str, GraphQLSchema], Prepared]) -> None:
        self._prepare = prepare
        self._errors: list[GraphQLError] = []

    def on_parse(self) -> Iterator[None]:
        """A document that does not parse (or has too many tokens) keeps its error for
        validation to report: raised here, it would escape Strawberry's streaming path
        (subscriptions over WebSocket), which reports only the errors of its own parse."""
        context = self.execution_context
        if context.query is not None:
            try:
                context.graphql_document, self._errors = self._prepare(
                    context.query, core_schema(context.schema)
                )
            except GraphQLError as error:
                self._errors = [error]
        yield

    def on_validate(self) -> Iterator[None]:
        self.execution_context.pre_execution_errors = list(self._errors)
        yield
