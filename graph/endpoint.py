"""The `/graphql` endpoint: Strawberry's ASGI view with a typed context and our GraphiQL."""

from __future__ import annotations

import asyncio
import json
from functools import cached_property
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from uuid_utils.compat import uuid7

from modelql.graph.context import GraphContext, GraphDependencies
from modelql.graph.direct import DirectExecutor
from modelql.graph.errors import (
    GRAPHQL_RESPONSE,
    AuthenticationError,
    DatabaseUnavailableError,
    ErrorCode,
    RateLimitedError,
    mark_request_errors,
    record_operation,
)
from modelql.graph.executor_internals import UNSET, UnsetType, core_schema
from modelql.graph.mutations import DIRECT_MUTATIONS
from modelql.graph.persisted_queries import PersistedQueries
from modelql.graph.read_executor import ReadExecutor
from modelql.graph.request_log import RequestLog
from modelql.graph.response_cache import ResponseCache
from modelql.graph.schema import ModelQLSchema
from modelql.graph.websocket_frames import CheckedFrames
from modelql.services.api_keys import Caller
from modelql.services.errors import is_connection_failure

NO_ACK_PAYLOAD: UnsetType = UNSET
"""What `on_ws_connect` returns to accept a socket with a bare connection_ack."""

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
_STRAWBERRY_ASSETS = "https://unpkg.com/"


class GraphQLEndpoint(GraphQL[GraphContext, None]):
    """Strawberry's ASGI view, mounted in FastAPI as a plain route (no per-request dependency
    solving): typed context, execution timeout, GraphQL-over-HTTP media types, our GraphiQL."""

    websocket_adapter_class = CheckedFrames  # a malformed frame closes the socket with 4400
    schema: ModelQLSchema  # what `endpoint` builds it with (Strawberry's view says BaseSchema)

    def __init__(
        self,
        *args: Any,
        execution_timeout_s: float,
        max_query_length: int,
        ide_assets_url: str,
        direct: DirectExecutor | None,
        reads: ReadExecutor | None,
        persisted: PersistedQueries,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.direct = direct
        self.reads = reads
        self.persisted = persisted
        self.responses: ResponseCache | None = None
        """Set once the runtime is built (it needs the process's generations)."""
        self.execution_timeout_s = execution_timeout_s
        self.max_query_length = max_query_length
        self.ide_assets_url = ide_assets_url

    async def run(
        self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> Any:
        """Strawberry's, with a refusal's reason made encodable: it may quote the client's
        text (an unknown `operationName`), which may hold a lone surrogate."""
        try:
            return await super().run(request, context, root_value)
        except HTTPException as error:
            error.reason = error.reason.encode("utf-8", "backslashreplace").decode()
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            context: GraphContext | None = scope.get("state", {}).pop("graph_context", None)
            if context is not None:
                await context.db.close()

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        """Strawberry's empty sub-response (no status yet, no headers), without building a
        header view to delete the content-length of an empty body: once per request."""
        response = Response()
        # Starlette types the status as int; Strawberry reads None as "no status set yet".
        response.status_code = None  # type: ignore[assignment]
        response.raw_headers = []
        return response

    async def get_context(self, request: Request | WebSocket, response: Any) -> GraphContext:
        """The request's context; `response` is the sub-response Strawberry sends headers from.
        A WebSocket is identified later, by `on_ws_connect`."""
        dependencies: GraphDependencies = request.app.state.graph_dependencies
        if isinstance(request, WebSocket):
            context = GraphContext(
                dependencies,
                request=request,
                response=None,
                request_id=f"ws-{uuid7().hex}",
                caller=None,
                request_log=RequestLog(),
                credential=_bearer_token(request.headers.get("authorization")),
            )
        else:
            context = await _http_context(request, response, dependencies)
        request.state.graph_context = context
        return context

    async def on_ws_connect(self, context: GraphContext) -> UnsetType | dict[str, object] | None:
        """Identify a WebSocket by the key in `connection_init` (else the upgrade's header);
        an unknown, revoked or (when auth is required) missing key closes it (4403)."""
        params = context.connection_params or {}
        credential = _bearer_token(params.get("authorization")) or context.credential
        dependencies = context.dependencies
        if not dependencies.auth_required:
            context.credential = None
            return NO_ACK_PAYLOAD
        if credential is None:
            raise ConnectionRejectionError({"message": "Send an API key in connection_init."})
        caller = await dependencies.keys.authenticate(credential)
        if caller is None:
            raise ConnectionRejectionError({"message": "The API key is unknown or revoked."})
        context.caller_identity = caller
        context.credential = credential
        return NO_ACK_PAYLOAD

    @cached_property
    def graphql_ide_html(self) -> str:
        """Strawberry's GraphiQL page with our example, loading its scripts and styles from
        this server (the same files, vendored) instead of a CDN."""
        html = super().graphql_ide_html.replace(_STRAWBERRY_ASSETS, self.ide_assets_url)
        start = html.index(_STRAWBERRY_EXAMPLE_START) + len(_STRAWBERRY_EXAMPLE_START)
        end = html.index("`", start)
        replacement = EXAMPLE_QUERY.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")
        return html[:start] + replacement + html[end:]

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        refusal = self._refuse_long_document(kwargs["request_data"], kwargs["context"])
        if refusal is not None:
            return refusal
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

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: GraphContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """A kept answer (or one kept now) for a query, the direct executors' answer when they
        can plan the document, else Strawberry's. A subscription is refused (400): it runs over
        WebSocket, and Strawberry would execute it once as a query, which fails."""

        async def execute() -> ExecutionResult:
            if self.reads is not None:
                result = await self.reads.execute(
                    request_data.query,
                    request_data.operation_name,
                    request_data.variables,
                    context,
                )
                if result is not None:
                    return result
                await context.release()  # Strawberry starts afresh: no row loaded, no session
            return await super(GraphQLEndpoint, self).execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )

        plan = (
            self.responses.plan(request_data.query, request_data.operation_name)
            if self.responses is not None and request_data.query
            else None
        )
        if plan is not None and self.responses is not None:
            record_operation(context, plan.operation_name, "query")
            result = await self.responses.answer(
                plan,
                request_data.variables,
                context.scopes,
                context.model_limit.key if context.model_limit else None,
                execute,
            )
            if request_adapter.method == "GET" and not result.errors:
                _let_caches_keep(sub_response, shared=not context.dependencies.auth_required)
            return result
        if self.direct is not None and request_adapter.method == "POST":
            direct = await self.direct.execute(
                request_data.query, request_data.operation_name, request_data.variables, context
            )
            if direct is not None:
                return direct
        if self._is_subscription(request_data):
            raise HTTPException(
                400, "Subscriptions run over WebSocket on /graphql (graphql-transport-ws)."
            )
        return await execute()

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Strawberry's, but not for a persisted query sent by hash (no `query` parameter)."""
        return (
            super().should_render_graphql_ide(request) and "extensions" not in request.query_params
        )

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Strawberry's, with a persisted query's document looked up by its hash. A multipart
        request (a file upload) must carry a header a plain HTML form cannot send, so that a
        page elsewhere cannot submit jobs through a browser (CSRF)."""
        if (request.content_type or "").startswith("multipart/") and not any(
            name in request.headers for name in PREFLIGHT_HEADERS
        ):
            raise HTTPException(
                400, "A multipart request needs a `GraphQL-Require-Preflight: 1` header."
            )
        data = await super().parse_http_body(request)
        return data if isinstance(data, list) else self.persisted.resolve(data)

    def _is_subscription(self, request_data: GraphQLRequestData) -> bool:
        """Whether the document's chosen operation is a subscription (from the cache of
        parsed documents; a document that does not parse is left to Strawberry)."""
        if not request_data.query:
            return False
        try:
            document, _ = self.schema.documents(request_data.query, core_schema(self.schema))
        except GraphQLError:
            return False
        operation = get_operation_ast(document, request_data.operation_name)
        return operation is not None and operation.operation is OperationType.SUBSCRIPTION

    def _refuse_long_document(
        self, request_data: GraphQLRequestData | list[GraphQLRequestData], context: Any
    ) -> ExecutionResult | None:
        """A document longer than the cap is refused before it is parsed: comments and
        whitespace cost parsing time but count no tokens."""
        query = getattr(request_data, "query", None) or ""
        if len(query) <= self.max_query_length:
            return None
        error = GraphQLError(
            f"The document is {len(query)} characters long; at most {self.max_query_length} "
            "are accepted.",
            extensions={"code": str(ErrorCode.QUERY_TOO_LONG), "maximum": self.max_query_length},
        )
        mark_request_errors([error], context)
        return ExecutionResult(data=None, errors=[error])

    def decode_json(self, data: str | bytes) -> object:
        """The fast decoder first; what it refuses (NaN, 1e999, integers past 64 bits, which
        validation then reports with their paths) goes to the standard one. Strawberry answers
        400 to malformed JSON; so to bodies that are not UTF-8, nest too deeply, or are a bare
        scalar (`null`, `5`, `"q"`) rather than an object. Bodies arrive as bytes; query
        parameters (`variables=null` is fine there) as text."""
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            try:
                decoded = super().decode_json(data)
            except (UnicodeDecodeError, RecursionError) as error:
                message = f"unreadable JSON: {type(error).__name__}"
                raise json.JSONDecodeError(message, "", 0) from error
        if isinstance(data, bytes) and not isinstance(decoded, dict | list):
            raise json.JSONDecodeError("the body must be a JSON object", "", 0)
        return decoded

    def encode_json(self, data: object) -> str:
        """Text: WebSocket messages must be text frames for graphql-transport-ws clients."""
        return dumps_json(data).decode()

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        """With application/graphql-response+json, a request error (HTTP 400: the document
        did not parse or validate) has no `data` entry at all."""
        if sub_response.media_type == GRAPHQL_RESPONSE and sub_response.status_code == 400:
            response_data = {key: value for key, value in response_data.items() if key != "data"}
        response = Response(
            dumps_json(response_data),
            status_code=sub_response.status_code or 200,
            media_type="application/json",
        )
        response.headers.raw.extend(sub_response.headers.raw)
        response.background = sub_response.background
        if sub_response.media_type == GRAPHQL_RESPONSE:
            response.headers["content-type"] = GRAPHQL_RESPONSE
        return response


def _let_caches_keep(response: Response, *, shared: bool) -> None:
    """A GET answer may be kept by HTTP caches for the freshness bound (1 s); by shared ones
    (a CDN) only when it does not depend on who asks (no authentication). Its media type
    follows the request's Accept."""
    response.headers["cache-control"] = f"{'public' if shared else 'private'}, max-age=1"
    response.headers["vary"] = "Accept"


def _bearer_token(header: object) -> str | None:
    """The key of an `Authorization: Bearer <key>` value."""
    scheme, _, token = (header if isinstance(header, str) else "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _wants_graphiql(request: Request) -> bool:
    return (
        request.method == "GET"
        and "text/html" in request.headers.get("accept", "")
        and "query" not in request.query_params
        and "extensions" not in request.query_params
    )


async def _identify(request: Request, dependencies: GraphDependencies) -> Caller | None:
    """The caller behind the bearer key; AuthenticationError when auth is required and absent."""
    if not dependencies.auth_required or _wants_graphiql(request):
        return None
    token = _bearer_token(request.headers.get("authorization"))
    if token is None:
        raise AuthenticationError("Send an API key: `Authorization: Bearer <key>`.")
    try:
        caller = await dependencies.keys.authenticate(token)
    except Exception as error:
        if is_connection_failure(error):
            raise DatabaseUnavailableError from error
        raise
    if caller is None:
        raise AuthenticationError("The API key is unknown or revoked.")
    return caller


async def _http_context(
    request: Request, response: Response, dependencies: GraphDependencies
) -> GraphContext:
    """An HTTP request's context: its caller (401 without a usable key when auth is required;
    429 over the key's rate), its request id and log line, and the media type it accepts."""
    request_log: RequestLog = request.state.request_log
    caller = await _identify(request, dependencies)
    request_log.caller = caller.name if caller else None
    if caller is not None and dependencies.rate_limiter is not None:
        retry_after_s = await dependencies.rate_limiter.retry_after(caller.name, caller.rate_limit)
        if retry_after_s is not None:
            raise RateLimitedError(retry_after_s)
    if GRAPHQL_RESPONSE in request.headers.get("accept", ""):
        response.media_type = GRAPHQL_RESPONSE
    return GraphContext(
        dependencies,
        request=request,
        response=response,
        request_id=request.state.request_id,
        caller=caller,
        request_log=request_log,
        credential=_bearer_token(request.headers.get("authorization")),
    )


PREFLIGHT_HEADERS = (
    "graphql-require-preflight",
    "apollo-require-preflight",
    "x-apollo-operation-name",
)
"""Headers a browser sends only after a CORS preflight; one is required on uploads."""


def create_graphql_endpoint(
    schema: ModelQLSchema,
    *,
    graphiql: bool,
    execution_timeout_s: float,
    max_query_length: int,
    ide_assets_url: str,
    max_subscriptions_per_connection: int = 10,
    persisted: PersistedQueries,
    direct_execution: bool = True,
    plan_cache_size: int = 256,
) -> GraphQLEndpoint:
    direct = (
        DirectExecutor(
            schema=schema,
            prepare=schema.documents,
            handlers=DIRECT_MUTATIONS,
            cache_size=plan_cache_size,
        )
        if direct_execution
        else None
    )
    reads = (
        ReadExecutor(schema=schema, prepare=schema.documents, cache_size=plan_cache_size)
        if direct_execution
        else None
    )
    return GraphQLEndpoint(
        schema,
        direct=direct,
        reads=reads,
        persisted=persisted,
        graphql_ide="graphiql" if graphiql else None,
        allow_queries_via_get=True,
        multipart_uploads_enabled=True,
        execution_timeout_s=execution_timeout_s,
        max_query_length=max_query_length,
        ide_assets_url=ide_assets_url,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        max_subscriptions_per_connection=max_subscriptions_per_connection,
    )


def dumps_json(data: object) -> bytes:
    """orjson's encoding; a text holding a lone surrogate (which a client may send, and an
    answer quote back) goes through the standard encoder, which escapes it (`\\ud800`)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data).encode()
