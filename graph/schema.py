"""Builds the Strawberry schema with its caches, limits and error masking."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from graph.errors import MaskUnexpectedErrors, mark_request_errors
from graph.mutations import Mutation
from graph.queries import Query
from graph.types.catalogue import ModelType, ModelVersionType
from graph.types.predictions import PredictionType


@dataclass(frozen=True)
class SchemaOptions:
    query_cache_size: int = 256
    max_query_depth: int = 15
    max_query_tokens: int = 10_000
    max_query_aliases: int = 50
    introspection: bool = True


class ModelQLSchema(strawberry.Schema):
    """Strawberry's schema, but errors are not all logged: MaskUnexpectedErrors logs the
    unexpected ones with their traceback; client mistakes are not server errors."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        mark_request_errors(errors, execution_context.context if execution_context else None)


def build_schema(options: SchemaOptions | None = None) -> strawberry.Schema:
    """The public schema; the options change limits and caches, never the SDL."""
    options = options or SchemaOptions()
    extensions: list[Callable[[], SchemaExtension]] = [
        MaskUnexpectedErrors,
        lambda: MaxTokensLimiter(max_token_count=options.max_query_tokens),
        lambda: ParserCache(maxsize=options.query_cache_size),
        lambda: ValidationCache(maxsize=options.query_cache_size),
        lambda: QueryDepthLimiter(max_depth=options.max_query_depth),
        lambda: MaxAliasesLimiter(max_alias_count=options.max_query_aliases),
    ]
    if not options.introspection:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
    return ModelQLSchema(
        query=Query,
        mutation=Mutation,
        types=[ModelType, ModelVersionType, PredictionType],
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=True),
    )
