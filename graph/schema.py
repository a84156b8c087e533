"""Builds the Strawberry schema with its caches, limits and error masking."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import strawberry
from graphql import (
    ASTValidationRule,
    GraphQLError,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from modelql.graph.documents import CachedDocuments, Prepared, document_cache
from modelql.graph.errors import MaskUnexpectedErrors, mark_request_errors
from modelql.graph.executor_internals import alias_limit_rule, depth_limit_rule
from modelql.graph.mutations import Mutation
from modelql.graph.queries import Query
from modelql.graph.scalars import SCALARS
from modelql.graph.subscriptions import Subscription
from modelql.graph.types.nodes import ModelType, ModelVersionType, PredictionType


@dataclass(frozen=True)
class SchemaOptions:
    query_cache_size: int = 256
    max_query_depth: int = 15
    max_query_tokens: int = 3_000
    max_query_aliases: int = 50
    introspection: bool = True
    allowed_documents: frozenset[str] | None = None
    """SHA-256 hashes of the only documents that run (persisted-query allow-list)."""


class ModelQLSchema(strawberry.Schema):
    """Strawberry's schema, but errors are not all logged: MaskUnexpectedErrors logs the
    unexpected ones with their traceback; client mistakes are not server errors. `documents`
    is its parse-and-validate cache, shared with the direct executor."""

    documents: Callable[[str, GraphQLSchema], Prepared]

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        mark_request_errors(errors, execution_context.context if execution_context else None)


def build_schema(options: SchemaOptions | None = None) -> ModelQLSchema:
    """The public schema; the options change limits and caches, never the SDL."""
    options = options or SchemaOptions()
    # Rule classes built once, with the cache: documents are validated once per query text.
    rules: list[type[ASTValidationRule]] = [
        depth_limit_rule(options.max_query_depth, should_ignore=None),
        alias_limit_rule(options.max_query_aliases),
    ]
    if not options.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    prepare = document_cache(
        max_tokens=options.max_query_tokens,
        rules=rules,
        size=options.query_cache_size,
        allowed=options.allowed_documents,
    )
    extensions: list[Callable[[], SchemaExtension]] = [
        MaskUnexpectedErrors,
        lambda: CachedDocuments(prepare),
    ]
    schema = ModelQLSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[ModelType, ModelVersionType, PredictionType],
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=True, scalar_map=SCALARS),
    )
    schema.documents = prepare
    return schema
