"""A nested catalogue query costs a fixed number of SQL statements, whatever the page size
(executed: the response cache is off here; tests/graph/test_response_cache.py covers it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from support import graphql, running_app

from modelql.settings import Settings

NESTED_QUERY = """
query($first: Int!) {
  models(first: $first, filter: {tag: "demo"}) {
    nodes {
      name
      versions {
        nodes {
          number
          aliases
          trainingArguments { name value }
          performance { slice metrics { name value } }
          model { name }
        }
      }
      aliases { alias version { number } }
      defaultVersion { number metric(name: "accuracy") }
    }
  }
}
"""

# Measured: the models page, the models' version pages, `version.model`, aliases, default
# versions and `alias.version` come from the in-memory catalogue (the model directory and the
# routes, kept fresh by the listener); the versions themselves, their training arguments and
# their performance metrics (also serving `metric`) are read once, in one batched statement
# each, by a process that has not read them yet (so at most that many, whatever the page size):
# they are immutable and kept in memory. The metrics may take two statements: those of the
# listed versions are asked for as soon as the versions' page is known, those of a default
# version looked up by id only once that version is read (the read executor starts each
# resolver at once instead of a loop turn later, as graphql-core does).
EXPECTED_STATEMENTS = 4
WARM_STATEMENTS = 0


@pytest.fixture(scope="module")
async def app_and_client(
    settings: Settings, demo_catalogue: None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(settings.model_copy(update={"response_cache": False})) as running:
        yield running


@contextmanager
def counting_statements(app: FastAPI) -> Iterator[list[str]]:
    """Every SQL statement the app's engine sends while the block runs."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sync_engine = app.state.runtime.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(sync_engine, "before_cursor_execute", count)


async def _run(app: FastAPI, http: httpx.AsyncClient, first: int) -> tuple[dict, list[str]]:
    with counting_statements(app) as statements:
        body = await graphql(http, NESTED_QUERY, {"first": first})
    assert "errors" not in body, body["errors"]
    return body, statements


async def test_nested_query_statement_count_does_not_grow_with_the_page(
    app_and_client: tuple[FastAPI, httpx.AsyncClient],
):
    app, http = app_and_client
    await _run(app, http, 1)  # warm: caches and pooled connections
    small, small_statements = await _run(app, http, 2)
    large, large_statements = await _run(app, http, 4)

    assert len(small["data"]["models"]["nodes"]) == 2
    models = large["data"]["models"]["nodes"]
    assert len(models) == 4
    assert sum(len(model["versions"]["nodes"]) for model in models) == 5
    iris = next(model for model in models if model["name"] == "iris-classifier")
    assert {a["alias"]: a["version"]["number"] for a in iris["aliases"]} == {
        "challenger": 2,
        "production": 1,
    }
    assert iris["defaultVersion"]["number"] == 1
    assert iris["defaultVersion"]["metric"] is not None
    for model in models:
        for version in model["versions"]["nodes"]:
            assert version["model"] == {"name": model["name"]}
            assert version["trainingArguments"]
            assert version["performance"]

    for statements in (small_statements, large_statements):
        listing = "\n---\n".join(statements)
        assert len(statements) <= EXPECTED_STATEMENTS, listing


async def test_repeating_the_query_reads_the_immutable_parts_from_memory(
    app_and_client: tuple[FastAPI, httpx.AsyncClient],
):
    """A repeat reads nothing, unless the catalogue changed meanwhile (a notification from
    another test's leftover work drops what memory holds, once in a full run): so of three
    repeats, at least one reads nothing and none reads more than a cold query."""
    app, http = app_and_client
    await _run(app, http, 4)
    repeats = [(await _run(app, http, 4))[1] for _ in range(3)]
    listing = "\n===\n".join("\n---\n".join(statements) for statements in repeats)
    assert min(map(len, repeats)) == WARM_STATEMENTS, listing
    assert max(map(len, repeats)) <= EXPECTED_STATEMENTS, listing
