"""The direct executor answers generated prediction requests exactly as Strawberry does.

Each generated request (tests/prediction_documents.py), with a generated fault injected where
both executors call the use case (tests/prediction_faults.py), is sent to the app with the direct
executor and to the same app with MODELQL_DIRECT_EXECUTION off (Strawberry's own execution):
their status, headers and body must be the same, byte for byte. Both carry
one X-Request-ID, so request ids agree. ONLY the values that two executions cannot share are
masked in both bodies before comparing: prediction ids, creation times and latencies (the
response keys `id`, `createdAt`, `latencyMs` and their generated aliases); content-length is
then compared as the length of each response's own body. A request with a valid idempotency key
is sent once beforehand, so that both compared answers replay the same stored predictions.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from hypothesis import given
from parity_support import EXAMPLES, answers_counted, on_loop, parity_settings
from prediction_documents import KEY_MARK, VARYING_FIELDS, prediction_requests
from prediction_faults import Fault, FaultyCreate, faults
from support import app_client, make_settings

from modelql.graph import mutations
from modelql.graph.direct import DirectExecutor
from modelql.settings import Settings

MIN_DIRECT_SHARE = 0.4
"""Of the generated requests, the share the direct executor must answer itself."""
_VARYING_KEYS = "|".join(sorted({*VARYING_FIELDS, *VARYING_FIELDS.values()}))
VARYING_VALUES = re.compile(rf'("(?:{_VARYING_KEYS})":)("[^"]*"|[-+.0-9eE]+)'.encode())


@pytest.fixture(scope="module")
async def general(settings: Settings, demo_catalogue: None) -> AsyncIterator[httpx.AsyncClient]:
    """The same application with the direct executor switched off."""
    general_settings = make_settings(
        str(settings.database_url), Path(settings.data_dir), direct_execution=False
    )
    async with app_client(general_settings) as http:
        yield http


def _mask(match: re.Match[bytes]) -> bytes:
    """A varying value replaced, keeping whether it was a string or a number."""
    return match[1] + (b'"~"' if match[2].startswith(b'"') else b"0")


def _comparable(
    response: httpx.Response,
) -> tuple[int, list[tuple[str, str]], int, bytes]:
    """Status, every header but content-length, content-length less the body's length, and
    the masked body."""
    body = response.content
    length = int(response.headers.get("content-length", -1)) - len(body)
    masked = VARYING_VALUES.sub(_mask, body)
    headers = sorted(item for item in response.headers.multi_items() if item[0] != "content-length")
    return response.status_code, headers, length, masked


def _with_unique_keys(body: dict[str, Any]) -> tuple[bytes, bool]:
    """The JSON body with its valid idempotency keys made unique to this run, and whether it
    has any."""
    text = json.dumps(body)
    return text.replace(KEY_MARK, f"{uuid.uuid4().hex}-").encode(), KEY_MARK in text


async def test_the_direct_answer_is_strawberrys_on_generated_requests(
    client: httpx.AsyncClient, general: httpx.AsyncClient
):
    """Hypothesis draws in a worker thread; the requests run on this test's event loop, where
    the session's apps live. At least MIN_DIRECT_SHARE of them must be answered directly."""
    run = on_loop(asyncio.get_running_loop())
    examples: list[None] = []

    @parity_settings
    @given(body=prediction_requests(), fault=faults())
    def check(body: dict[str, Any], fault: Fault | None) -> None:
        examples.append(None)
        content, replayed = _with_unique_keys(body)
        headers = {"content-type": "application/json", "x-request-id": uuid.uuid4().hex}
        faulty = FaultyCreate(mutations._create, fault)
        answers = []
        with patch.object(mutations, "_create", faulty):
            for http in [general] * replayed + [client, general]:
                faulty.reset()
                answers.append(run(http.post("/graphql", content=content, headers=headers)))
        direct, strawberry = answers[-2:]
        assert _comparable(direct) == _comparable(strawberry), (direct.text, strawberry.text)

    with answers_counted(DirectExecutor) as answered:
        await asyncio.to_thread(check)

    assert len(examples) >= EXAMPLES
    assert sum(answered) >= MIN_DIRECT_SHARE * len(examples)
