"""graphql-transport-ws frames are checked before Strawberry reads them: a frame the protocol
does not define closes its socket with 4400 and a reason naming what is wrong, logs nothing,
and leaves every other socket alone; frames the protocol defines pass unchanged."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import example, given, settings
from hypothesis import strategies as st
from live_support import PROTOCOL, Served, Subscriptions, served
from support import make_settings
from websockets.asyncio.client import connect

from modelql.graph.websocket_frames import MAX_REASON_BYTES, frame_problem

NOT_JSON = "WebSocket message must be valid JSON"  # Strawberry's reasons, unchanged
NOT_TEXT = "WebSocket message type must be text"
QUERY = "{ __typename }"
SUBSCRIBE = {"id": "1", "type": "subscribe", "payload": {"query": QUERY}}
PREDICTIONS = "subscription { predictionsCreated { id requestId } }"
IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
PREDICT = """mutation($features: JSON!) {
  createPrediction(input: {model: "iris-classifier", features: $features}) { prediction { id } } }"""


class ErrorRecords(logging.Handler):
    """Every ERROR (or worse) record logged anywhere in the process, exceptions included."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass(frozen=True)
class Closing:
    """What the server sent on a socket after one frame, up to its close frame."""

    messages: list[dict[str, object]]
    code: int
    reason: str


@dataclass(frozen=True)
class Live:
    """The app on a real socket, on an event loop in a thread: callable from synchronous tests
    (Hypothesis drives its examples synchronously)."""

    portal: BlockingPortal
    server: Served
    errors: list[logging.LogRecord]

    def answer(self, frame: str | bytes, *, acknowledged: bool = True) -> Closing:
        """The server's answer to `frame`, sent after connection_ack or as the first frame."""
        return self.portal.call(answer_to, self.server.url, frame, acknowledged)

    def logged_errors(self) -> list[str]:
        return [f"{record.name}: {record.getMessage()}" for record in self.errors]


async def answer_to(base_url: str, frame: str | bytes, acknowledged: bool) -> Closing:
    url = base_url.replace("http", "ws", 1) + "/graphql"
    async with connect(url, subprotocols=[PROTOCOL]) as socket:
        connection = Subscriptions(socket)
        if acknowledged:
            await connection.send({"type": "connection_init"})
            await connection.acknowledged()
        await socket.send(frame)
        messages, close = await connection.until_closed()
    return Closing(messages, close.code, close.reason)


@pytest.fixture(scope="module")
def live_server(database_url: str, data_dir: Path, demo_catalogue: None) -> Iterator[Live]:
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    try:
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(
                served(make_settings(database_url, data_dir))
            ) as running,
        ):
            yield Live(portal, running, errors.records)
    finally:
        logging.getLogger().removeHandler(errors)


@pytest.fixture
def live(live_server: Live) -> Live:
    """The server, with no error logged yet in this test."""
    live_server.errors.clear()
    return live_server


def subscribe_with(**payload: object) -> str:
    return json.dumps({**SUBSCRIBE, "payload": {"query": QUERY, **payload}})


MALFORMED = [
    ("null", "Invalid message: expected a JSON object, got null"),
    ('[{"type": "ping"}]', "Invalid message: expected a JSON object, got an array"),
    ("42", "Invalid message: expected a JSON object, got a number"),
    ('"ping"', "Invalid message: expected a JSON object, got a string"),
    ("true", "Invalid message: expected a JSON object, got a boolean"),
    ('{"type": "ping"', NOT_JSON),
    (b'{"type": "ping"}', NOT_TEXT),
    ("{}", "Invalid message: 'type' must be a string, got nothing"),
    ('{"type": ["ping"]}', "Invalid message: 'type' must be a string, got an array"),
    ('{"type": "start"}', "Invalid message: unknown 'type'"),
    ('{"type": "\\ud800"}', "Invalid message: unknown 'type'"),
    ('{"type": "next", "id": "1", "payload": {}}', "Invalid message: 'next' is sent by servers, not clients"),
    ('{"type": "subscribe", "payload": {"query": "{ __typename }"}}', "Invalid subscribe message: 'id' must be a non-empty string, got nothing"),
    ('{"type": "subscribe", "id": 1, "payload": {"query": "{ __typename }"}}', "Invalid subscribe message: 'id' must be a non-empty string, got a number"),
    ('{"type": "subscribe", "id": "", "payload": {"query": "{ __typename }"}}', "Invalid subscribe message: 'id' must be a non-empty string, got an empty string"),
    ('{"type": "subscribe", "id": "1"}', "Invalid subscribe message: 'payload' must be an object, got nothing"),
    ('{"type": "subscribe", "id": "1", "payload": [{"query": "{ __typename }"}]}', "Invalid subscribe message: 'payload' must be an object, got an array"),
    ('{"type": "subscribe", "id": "1", "payload": "{ __typename }"}', "Invalid subscribe message: 'payload' must be an object, got a string"),
    ('{"type": "subscribe", "id": "1", "payload": {}}', "Invalid subscribe message: 'payload.query' must be a string, got nothing"),
    (subscribe_with(query=["{ __typename }"]), "Invalid subscribe message: 'payload.query' must be a string, got an array"),
    (subscribe_with(operationName=1), "Invalid subscribe message: 'payload.operationName' must be a string or null, got a number"),
    (subscribe_with(variables=[]), "Invalid subscribe message: 'payload.variables' must be an object or null, got an array"),
    (subscribe_with(variables="{}"), "Invalid subscribe message: 'payload.variables' must be an object or null, got a string"),
    (subscribe_with(extensions=True), "Invalid subscribe message: 'payload.extensions' must be an object or null, got a boolean"),
    ('{"type": "connection_init", "payload": []}', "Invalid connection_init message: 'payload' must be an object or null, got an array"),
    ('{"type": "connection_init", "payload": "Bearer key"}', "Invalid connection_init message: 'payload' must be an object or null, got a string"),
    ('{"type": "ping", "payload": 1}', "Invalid ping message: 'payload' must be an object or null, got a number"),
    ('{"type": "pong", "payload": []}', "Invalid pong message: 'payload' must be an object or null, got an array"),
    ('{"type": "complete"}', "Invalid complete message: 'id' must be a non-empty string, got nothing"),
    ('{"type": "complete", "id": ["1"]}', "Invalid complete message: 'id' must be a non-empty string, got an array"),
]  # fmt: skip


@pytest.mark.parametrize(("frame", "reason"), MALFORMED)
def test_a_malformed_first_frame_closes_the_socket_with_4400_saying_what_is_wrong(
    live: Live, frame: str | bytes, reason: str
):
    closing = live.answer(frame, acknowledged=False)

    assert (closing.code, closing.reason, closing.messages) == (4400, reason, [])
    assert live.logged_errors() == []


@pytest.mark.parametrize(
    "frame", ["null", "[]", '"subscribe"', subscribe_with(variables=[]), '{"id": "1", "type": "subscribe", "payload": []}', '{"type": "complete", "id": {}}']
)  # fmt: skip
def test_frames_that_broke_strawberrys_handler_close_cleanly_on_an_acknowledged_connection(
    live: Live, frame: str
):
    closing = live.answer(frame)

    assert (closing.code, closing.messages) == (4400, [])
    assert closing.reason == frame_problem(json.loads(frame))
    assert live.logged_errors() == []


VALID = [
    {"type": "connection_init"},
    {"type": "connection_init", "payload": {"authorization": "Bearer key"}},
    {"type": "connection_init", "payload": None},  # Strawberry refuses it (4400) by itself
    {"type": "ping"},
    {"type": "ping", "payload": {"at": 1}},
    {"type": "pong", "payload": None},
    SUBSCRIBE,
    {**SUBSCRIBE, "payload": {"query": "", "operationName": None, "variables": None, "extensions": None}},
    {**SUBSCRIBE, "payload": {"query": QUERY, "operationName": "Q", "variables": {}, "extensions": {}}},
    {**SUBSCRIBE, "payload": {"query": QUERY, "unknown": [1]}, "unknown": None},
    {"type": "complete", "id": "an id never used"},
]  # fmt: skip


@pytest.mark.parametrize("frame", VALID)
def test_frames_the_protocol_defines_pass_the_check(frame: dict[str, object]):
    assert frame_problem(frame) is None


def test_valid_frames_are_answered_as_before(live: Live):
    async def conversation() -> list[dict[str, object]]:
        async with Subscriptions.open(live.server.url) as connection:
            await connection.acknowledged()
            await connection.send({"type": "ping", "payload": {"at": 1}})
            await connection.send(
                {
                    **SUBSCRIBE,
                    "payload": {"query": QUERY, "operationName": None, "variables": None},
                    "extra": True,
                }
            )
            return [await connection.receive() for _ in range(3)]

    assert live.portal.call(conversation) == [
        {"type": "pong"},
        {"id": "1", "type": "next", "payload": {"data": {"__typename": "Query"}}},
        {"id": "1", "type": "complete"},
    ]
    assert live.logged_errors() == []


@pytest.mark.parametrize("name", ["x" * 300, "\ud800", "é" * 100])
def test_a_reason_quoting_the_client_is_cut_to_what_a_close_frame_holds(live: Live, name: str):
    """Strawberry's own 4400 for an unknown operation quotes its name; too long, or holding a
    lone surrogate, that reason could not be sent and the socket dropped with an exception."""
    closing = live.answer(subscribe_with(operationName=name))

    assert closing.code == 4400
    assert closing.reason.startswith('Unknown operation named "')
    assert len(closing.reason.encode()) <= MAX_REASON_BYTES
    assert live.logged_errors() == []


ABSENT = object()  # a corruption that removes the field
CLIENT_TYPES = {"connection_init", "ping", "pong", "subscribe", "complete"}
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["", "\ud800", "subscribe", "{ __typename }"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


def unlike(accepted: Callable[[object], bool], *, required: bool) -> st.SearchStrategy[object]:
    """JSON values a field must not hold (and its absence, when it is required)."""
    wrong = json_values.filter(lambda value: not accepted(value))
    return wrong | st.just(ABSENT) if required else wrong


def is_object(value: object) -> bool:
    return isinstance(value, dict)


def is_object_or_null(value: object) -> bool:
    return value is None or isinstance(value, dict)


def is_string(value: object) -> bool:
    return isinstance(value, str)


def is_string_or_null(value: object) -> bool:
    return value is None or isinstance(value, str)


def is_identifier(value: object) -> bool:
    return isinstance(value, str) and value != ""


FULL_SUBSCRIBE = {
    **SUBSCRIBE,
    "payload": {"query": QUERY, "operationName": None, "variables": {}, "extensions": {}},
}
CORRUPTIONS = [  # a valid message, the field to spoil, what to put there instead
    ({"type": "ping"}, ("type",), unlike(is_string, required=True)),
    ({"type": "ping"}, ("type",), st.sampled_from(["next", "error", "connection_ack", "start"])),
    ({"type": "ping"}, ("type",), st.text(max_size=12).filter(lambda kind: kind not in CLIENT_TYPES)),
    ({"type": "connection_init", "payload": {}}, ("payload",), unlike(is_object_or_null, required=False)),
    ({"type": "ping"}, ("payload",), unlike(is_object_or_null, required=False)),
    ({"type": "pong"}, ("payload",), unlike(is_object_or_null, required=False)),
    (FULL_SUBSCRIBE, ("id",), unlike(is_identifier, required=True)),
    (FULL_SUBSCRIBE, ("payload",), unlike(is_object, required=True)),
    (FULL_SUBSCRIBE, ("payload", "query"), unlike(is_string, required=True)),
    (FULL_SUBSCRIBE, ("payload", "operationName"), unlike(is_string_or_null, required=False)),
    (FULL_SUBSCRIBE, ("payload", "variables"), unlike(is_object_or_null, required=False)),
    (FULL_SUBSCRIBE, ("payload", "extensions"), unlike(is_object_or_null, required=False)),
    ({"type": "complete", "id": "1"}, ("id",), unlike(is_identifier, required=True)),
]  # fmt: skip


def spoiled(message: dict[str, object], path: tuple[str, ...], value: object) -> str:
    """`message` with the field at `path` replaced by `value` (or removed), as JSON text."""
    spoilt = copy.deepcopy(message)
    holder: Any = spoilt
    for key in path[:-1]:
        holder = holder[key]
    if value is ABSENT:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return json.dumps(spoilt)


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


malformed_frames = st.one_of(
    json_values.filter(lambda value: not isinstance(value, dict)).map(json.dumps),
    *(st.builds(spoiled, st.just(message), st.just(path), values) for message, path, values in CORRUPTIONS),
    st.text(max_size=12).filter(lambda text: not is_json(text)),
    st.binary(max_size=12),
)  # fmt: skip


def test_fuzzed_frames_all_close_with_4400_log_nothing_and_leave_a_live_subscription_working(
    live: Live,
):
    with live.portal.wrap_async_context_manager(Subscriptions.open(live.server.url)) as watcher:
        live.portal.call(watcher.acknowledged)
        operation = live.portal.call(watcher.subscribe, PREDICTIONS)

        @settings(max_examples=200, deadline=None)
        @given(frame=malformed_frames)
        @example(frame="null")
        @example(frame=subscribe_with(variables=[]))
        def each_malformed_frame_is_refused(frame: str | bytes) -> None:
            closing = live.answer(frame)
            assert (closing.code, closing.messages) == (4400, []), frame
            if isinstance(frame, bytes):
                assert closing.reason == NOT_TEXT
            else:
                expected = frame_problem(json.loads(frame)) if is_json(frame) else NOT_JSON
                assert closing.reason == expected, frame
            assert live.logged_errors() == [], frame

        each_malformed_frame_is_refused()

        response = httpx.post(
            f"{live.server.url}/graphql",
            json={"query": PREDICT, "variables": {"features": IRIS}},
            headers={"X-Request-ID": "after-the-fuzz"},
        )
        stored = response.json()["data"]["createPrediction"]["prediction"]["id"]
        message = live.portal.call(watcher.receive)
    assert message["id"] == operation
    assert message["payload"]["data"]["predictionsCreated"] == [
        {"id": stored, "requestId": "after-the-fuzz"}
    ]
    assert live.logged_errors() == []
