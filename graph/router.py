"""The `/graphql` endpoint: Strawberry's FastAPI router with a typed context and our GraphiQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

import strawberry
from fastapi import Request, Response
from graphql import GraphQLError
from strawberry.fastapi import GraphQLRouter
from strawberry.types import ExecutionResult

from graph.context import GraphContext, GraphDependencies
from graph.errors import (
    GRAPHQL_RESPONSE,
    AuthenticationError,
    DatabaseUnavailableError,
    ErrorCode,
)
from graph.request_log import RequestLog
from services import api_keys
from services.api_keys import Caller
from services.errors import is_connection_failure

EXAMPLE_QUERY = """# ModelQL: the model catalogue and its predictions. Press the run button.
{
  models(first: 10) {
    nodes {
      name
      task
      defaultVersion {
        number
        algorithm
        aliases
        f1: metric(name: "f1_macro")
        inputSchema { name type minimum maximum }
        performance(split: TEST, slice: "overall") {
          numSamples
          metrics { name value }
        }
      }
    }
  }
}
"""

_STRAWBERRY_EXAMPLE_START = "const EXAMPLE_QUERY = `"


class ModelQLRouter(GraphQLRouter):
    """Adds an execution timeout, GraphQL-over-HTTP media types and our GraphiQL example."""

    def __init__(self, *args: Any, execution_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execution_timeout_s = execution_timeout_s

    @cached_property
    def graphql_ide_html(self) -> str:
        html = super().graphql_ide_html
        start = html.index(_STRAWBERRY_EXAMPLE_START) + len(_STRAWBERRY_EXAMPLE_START)
        end = html.index("`", start)
        replacement = EXAMPLE_QUERY.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")
        return html[:start] + replacement + html[end:]

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self.execution_timeout_s):
                return await super().execute_operation(*args, **kwargs)
        except TimeoutError:
            message = (
                f"The operation took longer than {self.execution_timeout_s:g} s and was stopped. "
                "A mutation may still have completed: retry it with the same idempotencyKey."
            )
            error = GraphQLError(message, extensions={"code": str(ErrorCode.TIMEOUT)})
            return ExecutionResult(data=None, errors=[error])

    def decode_json(self, data: str | bytes) -> object:
        """Strawberry answers 400 to malformed JSON; so to bodies that are not UTF-8 or nest
        too deeply for the decoder (a few KB of brackets would otherwise be a 500)."""
        try:
            return super().decode_json(data)
        except (UnicodeDecodeError, RecursionError) as error:
            raise json.JSONDecodeError(f"unreadable JSON: {type(error).__name__}", "", 0) from error

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        if sub_response.media_type == GRAPHQL_RESPONSE:
            response.headers["content-type"] = GRAPHQL_RESPONSE
        return response


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _wants_graphiql(request: Request) -> bool:
    return (
        request.method == "GET"
        and "text/html" in request.headers.get("accept", "")
        and "query" not in request.query_params
    )


async def _identify(request: Request, dependencies: GraphDependencies) -> Caller | None:
    """The caller behind the bearer key; AuthenticationError when auth is required and absent."""
    if not dependencies.auth_required or _wants_graphiql(request):
        return None
    token = _bearer_token(request)
    if token is None:
        raise AuthenticationError("Send an API key: `Authorization: Bearer <key>`.")
    try:
        async with dependencies.sessionmaker() as session:
            caller = await api_keys.authenticate(session, token)
    except Exception as error:
        if is_connection_failure(error):
            raise DatabaseUnavailableError from error
        raise
    if caller is None:
        raise AuthenticationError("The API key is unknown or revoked.")
    return caller


async def _context(request: Request, response: Response) -> AsyncIterator[GraphContext]:
    """The request's context; `response` is the sub-response Strawberry sends headers from."""
    dependencies: GraphDependencies = request.app.state.graph_dependencies
    request_log: RequestLog = request.state.request_log
    caller = await _identify(request, dependencies)
    request_log.caller = caller.name if caller else None
    context = GraphContext(
        dependencies, request_id=request.state.request_id, caller=caller, request_log=request_log
    )
    if GRAPHQL_RESPONSE in request.headers.get("accept", ""):
        response.media_type = GRAPHQL_RESPONSE
    try:
        yield context
    finally:
        await context.db.close()


def create_graphql_router(
    schema: strawberry.Schema, *, graphiql: bool, execution_timeout_s: float
) -> ModelQLRouter:
    return ModelQLRouter(
        schema,
        graphql_ide="graphiql" if graphiql else None,
        context_getter=_context,
        allow_queries_via_get=True,
        execution_timeout_s=execution_timeout_s,
    )
