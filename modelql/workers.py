"""`serve --workers N`: the parent prepares the database and hands each worker process its
settings through the environment, with a private PROMETHEUS_MULTIPROC_DIR for the metrics."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from modelql.app import create_app
from modelql.logs import configure_logging
from modelql.metrics import MULTIPROCESS_ENV
from modelql.settings import Settings


@contextmanager
def worker_environment(settings: Settings, database_url: str) -> Iterator[None]:
    """Environment for spawned workers: the prepared (migrated) database, the options given on
    the command line, and a metrics directory private to this run, removed afterwards."""
    values = {
        "DATABASE_URL": database_url,
        "MODELQL_AUTO_MIGRATE": "false",
        "MODELQL_HOST": settings.host,
        "MODELQL_PORT": str(settings.port),
        "MODELQL_INSECURE": str(settings.insecure).lower(),
    }
    metrics_dir = tempfile.mkdtemp(prefix="modelql-metrics-") if settings.metrics else None
    if metrics_dir is not None:
        values[MULTIPROCESS_ENV] = metrics_dir
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def create_worker_app() -> FastAPI:
    """The application in one worker process (uvicorn factory), configured from the
    environment `worker_environment` prepared."""
    settings = Settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    assert settings.database_url is not None
    return create_app(settings, database_url=settings.database_url)
