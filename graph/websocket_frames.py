"""graphql-transport-ws frames checked before Strawberry's handler reads them: a frame the
protocol does not define closes the socket with 4400 and what is wrong with it (Strawberry's
handler raises on some, e.g. `null`, or a `subscribe` whose payload is a list)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from modelql.graph.executor_internals import ASGIWebSocketAdapter

BAD_REQUEST = 4400
MAX_REASON_BYTES = 123  # a close frame carries at most 125 bytes, the code's 2 included
SERVER_MESSAGES = frozenset({"connection_ack", "next", "error"})
_MISSING = object()


@dataclass(frozen=True)
class _Shape:
    """What a field must hold, as a reason names it."""

    name: str
    accepts: Callable[[object], bool]


_IDENTIFIER = _Shape("a non-empty string", lambda value: isinstance(value, str) and value != "")
_STRING = _Shape("a string", lambda value: isinstance(value, str))
_OPTIONAL_STRING = _Shape("a string or null", lambda value: value is None or isinstance(value, str))
_OBJECT = _Shape("an object", lambda value: isinstance(value, dict))
_OPTIONAL_OBJECT = _Shape(
    "an object or null", lambda value: value is None or isinstance(value, dict)
)
_SUBSCRIBE_PAYLOAD = {
    "query": _STRING,
    "operationName": _OPTIONAL_STRING,
    "variables": _OPTIONAL_OBJECT,
    "extensions": _OPTIONAL_OBJECT,
}


def frame_problem(frame: object) -> str | None:
    """Why a decoded client frame is not a graphql-transport-ws message; None when it is.
    Only shapes are checked (graphql-ws's `validateMessage`, an array being no object); other
    keys are allowed."""
    if not isinstance(frame, dict):
        return f"Invalid message: expected a JSON object, got {_kind(frame)}"
    kind = frame.get("type", _MISSING)
    if not isinstance(kind, str):
        return f"Invalid message: 'type' must be a string, got {_kind(kind)}"
    if kind in {"connection_init", "ping", "pong"}:
        return _field_problem(kind, frame, "payload", _OPTIONAL_OBJECT)
    if kind == "complete":
        return _field_problem(kind, frame, "id", _IDENTIFIER)
    if kind == "subscribe":
        return _subscribe_problem(frame)
    if kind in SERVER_MESSAGES:
        return f"Invalid message: '{kind}' is sent by servers, not clients"
    return "Invalid message: unknown 'type'"


def _subscribe_problem(frame: dict[str, object]) -> str | None:
    """The first wrong shape of: its id, its payload, the payload's fields."""
    problem = _field_problem("subscribe", frame, "id", _IDENTIFIER)
    problem = problem or _field_problem("subscribe", frame, "payload", _OBJECT)
    payload = frame.get("payload")
    if problem is None and isinstance(payload, dict):
        for field, shape in _SUBSCRIBE_PAYLOAD.items():
            problem = problem or _field_problem("subscribe", payload, f"payload.{field}", shape)
    return problem


def _field_problem(
    message: str, holder: dict[str, object], field: str, shape: _Shape
) -> str | None:
    """None when the field has the shape (a missing optional field counts as null), else why.
    `field` may name a nested one (`payload.query`): its last part is looked up."""
    value = holder.get(field.rpartition(".")[2], _MISSING)
    if shape.accepts(value) or (value is _MISSING and shape.accepts(None)):
        return None
    return f"Invalid {message} message: '{field}' must be {shape.name}, got {_kind(value)}"


def _kind(value: object) -> str:
    """How a JSON value is named in a reason: by its type, never quoting the client's text."""
    if value is _MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    return "an array" if isinstance(value, list) else "an object"


def sendable_reason(reason: str) -> str:
    """`reason` as a close frame can carry it: valid UTF-8 (a lone surrogate, which a client's
    text may hold, is escaped), cut to 123 bytes."""
    encoded = reason.encode("utf-8", "backslashreplace")[:MAX_REASON_BYTES]
    return encoded.decode("utf-8", "ignore")


class CheckedFrames(ASGIWebSocketAdapter):
    """Strawberry's WebSocket adapter for graphql-transport-ws (the one protocol /graphql speaks):
    4400 at the first frame that is not a client message, and reasons a close frame can hold."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        """Strawberry's frames (text, JSON: else it closes with 4400), each checked first; the
        loop ends once the socket is closed."""
        async for frame in super().iter_json(ignore_parsing_errors=ignore_parsing_errors):
            problem = frame_problem(frame)
            if problem is None:
                yield frame
            else:
                await self.close(BAD_REQUEST, problem)

    async def close(self, code: int, reason: str) -> None:
        """Strawberry's close, with a reason a close frame can carry: Strawberry's may quote the
        client's text (an unknown `operationName`), however long."""
        await super().close(code, sendable_reason(reason))
