"""Helpers shared by tests: settings, an in-process app client and a GraphQL caller."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from modelql.app import create_app
from modelql.settings import Settings

BASE_URL = "http://127.0.0.1:8000"  # a loopback name: auth is off in most tests


def reachable_temp_dir(prefix: str) -> Path:
    """A short temporary directory under /tmp that PostgreSQL can enter: as root, the embedded
    server runs as an unprivileged user, and mkdtemp's 0700 would keep it out (the launcher
    never changes directories it does not own)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o711)
    return path


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "auto_migrate": False,
        "log_json": False,
        "gc_freeze": False,  # one test process starts hundreds of apps; see test_startup.py
        "job_workers": 0,  # tests of prediction jobs ask for a worker
        # Several apps run at once in some tests (two parity apps beside the session's): ten
        # kept connections each leave the server's 100 room, as 20 would not.
        "db_pool_size": 10,
        "db_max_overflow": 10,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the application, with its lifespan (engine, migrations check, model cache)."""
    app = create_app(settings, database_url=str(settings.database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield http


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Like `app_client`, but also yields the app, e.g. to reach `app.state.runtime.engine`."""
    app = create_app(settings, database_url=str(settings.database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield app, http


async def graphql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    """POST a GraphQL document; asserts HTTP 200 and returns the decoded body."""
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def libpq_url(url: str) -> str:
    """A URL asyncpg.connect understands (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(server: str) -> str:
    """A new, empty database on the server; returns its URL."""
    name = f"modelql_test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(libpq_url(server))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


async def drop_database(server: str, url: str) -> None:
    connection = await asyncpg.connect(libpq_url(server))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await connection.close()
