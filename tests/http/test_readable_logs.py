"""Logs people can read: one short line per request in a terminal, JSON lines elsewhere, and
never an API key."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import app_client, make_settings

from modelql.logs import ConsoleFormatter, RedactingJsonFormatter, configure_logging
from modelql.services import api_keys, catalogue
from modelql.services.api_keys import Scope
from modelql.settings import AuthMode

PREDICT = """mutation Score { createPredictions(input: {model: "iris-classifier", instances: [
  {sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2},
  {sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3}]}) {
  predictions { id } userErrors { code } } }"""


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("alembic", "uvicorn.error")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, previous in levels.items():
        logging.getLogger(name).setLevel(previous)


async def test_a_request_is_one_short_line_for_a_person(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="modelql.access")
    await client.post("/graphql", json={"query": PREDICT})
    [record] = [r for r in caplog.records if r.name == "modelql.access"]
    line = ConsoleFormatter(colour=False).format(record)
    clock, rest = line.split(" ", 1)
    assert len(clock) == len("12:01:02")
    assert rest.startswith("200 POST /graphql mutation Score ok ")
    assert rest.endswith(" ms 2 stored")
    assert "\n" not in line
    coloured = ConsoleFormatter(colour=True).format(record)
    assert "\033[32m200\033[0m" in coloured


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_when_not_a_terminal_and_text_in_one(restored_logging: None):
    piped = io.StringIO()
    configure_logging("INFO", json_lines=None, stream=piped)
    logging.getLogger("modelql").info("hello %s", "there", extra={"request_id": "r-1"})
    logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")
    entry, migration = (json.loads(line) for line in piped.getvalue().splitlines())
    assert migration["logger"] == "alembic.runtime.migration"  # kept for machines
    assert entry["message"] == "hello there"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "modelql"
    assert entry["request_id"] == "r-1"

    terminal = _FakeTerminal()
    configure_logging("INFO", json_lines=None, stream=terminal)
    logging.getLogger("modelql").info("hello")
    logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")
    logging.getLogger("uvicorn.error").info("Waiting for application startup.")
    [line] = terminal.getvalue().splitlines()
    assert line.endswith(" INFO hello")

    forced = _FakeTerminal()
    configure_logging("INFO", json_lines=True, stream=forced)
    logging.getLogger("modelql").info("hello")
    assert json.loads(forced.getvalue())["message"] == "hello"


async def test_an_api_key_never_appears_in_a_log_line(
    database_url: str,
    data_dir: Path,
    demo_catalogue: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    async with sessionmaker.begin() as session:
        _, key = await api_keys.create(session, name="log-key", scopes=frozenset({Scope.READ}))

    async def leaky(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"could not list models for {key}")

    monkeypatch.setattr(catalogue.Catalogue, "model_page", leaky)
    caplog.set_level(logging.DEBUG)
    settings = make_settings(database_url, data_dir, auth_mode=AuthMode.REQUIRED)
    async with app_client(settings) as http:
        response = await http.post(
            "/graphql",
            json={"query": "{ models { nodes { name } } }"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    secret = key.split("_", 2)[2]
    lines = [
        formatter.format(record)
        for record in caplog.records
        for formatter in (RedactingJsonFormatter(), ConsoleFormatter(colour=False))
    ]
    assert any("could not list models for mql_" in line for line in lines)
    assert not [line for line in lines if secret in line]
