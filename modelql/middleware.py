"""Pure ASGI middleware: request ids, one log line per request, and the request body cap."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uuid_utils.compat import uuid7

from modelql.graph.request_log import RequestLog
from modelql.settings import is_loopback

access_logger = logging.getLogger("modelql.access")
logger = logging.getLogger("modelql")
REQUEST_ID_HEADER = "x-request-id"
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,200}$")


RequestObserver = Callable[[Scope, RequestLog, str, float], None]


class RequestTrackingMiddleware:
    """Honours a sane `X-Request-ID` (else makes one) and echoes it; writes one log line per
    request with what the graph layer recorded in the request's `RequestLog`, and hands the
    same facts to `observe` (scope, log, outcome, seconds) for metrics."""

    def __init__(self, app: ASGIApp, *, observe: RequestObserver | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        # uuid_utils makes ids without a system call: uuid.uuid4 reads os.urandom, which gives
        # up the GIL on every request and stalls the loop behind the inference threads.
        request_id = given if _ACCEPTABLE_REQUEST_ID.match(given) else str(uuid7())
        request_log = RequestLog()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["request_log"] = request_log
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error in request %s", request_id)
            if status is not None:
                raise
            await _send_unexpected_error(send_with_id, request_id)
        finally:
            if scope["path"] not in QUIET_PATHS:
                seconds = time.perf_counter() - started
                outcome = _outcome(request_log, status or 500)
                _log_request(scope, request_id, request_log, status or 500, outcome, seconds)
                if self.observe is not None:
                    self.observe(scope, request_log, outcome, seconds)


def _outcome(log: RequestLog, status: int) -> str:
    """ok / error (GraphQL errors) / rejected (4xx) / failed (5xx) / unauthenticated / ..."""
    if status < 400 or log.outcome != "ok":
        return log.outcome
    return "rejected" if status < 500 else "failed"


def graphql_error_body(message: str, code: str, **extensions: object) -> dict[str, object]:
    """A GraphQL-shaped body for a request refused before GraphQL runs."""
    return {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": code, **extensions}}],
    }


async def _send_json(send: Send, status: int, payload: dict[str, object]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_unexpected_error(send: Send, request_id: str) -> None:
    """The masked answer to a failure no handler caught, with the request id to quote."""
    payload = graphql_error_body("Unexpected error.", "INTERNAL_SERVER_ERROR", requestId=request_id)
    await _send_json(send, 500, payload)


def _log_request(
    scope: Scope, request_id: str, log: RequestLog, status: int, outcome: str, seconds: float
) -> None:
    access_logger.info(
        "%s %s %s",
        scope["method"],
        scope["path"],
        status,
        extra={
            "request_id": request_id,
            "caller": log.caller,
            "operation_name": log.operation_name,
            "operation_type": log.operation_type,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "outcome": outcome,
            "predictions_stored": log.predictions_stored,
        },
    )


class BodySizeLimitMiddleware:
    """Answers 413 to a request body over `max_bytes` (`max_upload_bytes` for a multipart
    upload, whose file's own limit the use case then reports), declared or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int = 0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max(max_bytes, max_upload_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        upload = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        limit = self.max_upload_bytes if upload else self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLargeError:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        payload = graphql_error_body(
            f"Request body is larger than {limit} bytes.", "PAYLOAD_TOO_LARGE", maximum=limit
        )
        await _send_json(send, 413, payload)


class _BodyTooLargeError(Exception):
    """Raised inside the app's receive when the streamed body passes the cap."""


class LoopbackHostMiddleware:
    """Serves only requests addressed to a loopback host name (`localhost`, `127.0.0.1`,
    `[::1]`): with authentication off, a DNS-rebinding page must not reach the API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = dict(scope.get("headers", [])).get(b"host")
        if scope["type"] not in {"http", "websocket"} or host is None:
            await self.app(scope, receive, send)
            return
        name = host_name(host.decode("latin-1").lower())
        if is_loopback(name):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            payload = graphql_error_body(
                f"Host {name!r} is not served: with authentication disabled only loopback host "
                "names are (set MODELQL_AUTH_MODE=required to serve others).",
                "HOST_NOT_ALLOWED",
            )
            await _send_json(send, 400, payload)


def host_name(host: str) -> str:
    """The name in a Host header, without port or IPv6 brackets."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host
