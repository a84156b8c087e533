"""The direct executor's contract: it runs on the Strawberry and graphql-core versions its parity
tests ran on (pyproject.toml pins one minor version of each), and never on a schema running
extensions other than the ones it reproduces."""

from __future__ import annotations

import logging
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from strawberry.extensions import SchemaExtension
from strawberry.extensions.tracing import ApolloTracingExtension
from support import app_client

from modelql import app
from modelql.graph.direct import DirectExecutor
from modelql.graph.mutations import DIRECT_MUTATIONS
from modelql.graph.read_executor import ReadExecutor
from modelql.graph.schema import ModelQLSchema, build_schema
from modelql.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PINNED = ("strawberry-graphql", "graphql-core")
UPGRADE = "run tests/graph/test_direct_parity.py on the new version, then move the pin"
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
MODELS = "{ models { nodes { name } } }"
PREDICT = """mutation($features: JSON!) { createPrediction(input: {model: "iris-classifier",
  version: 1, features: $features}) { prediction { label } userErrors { code } } }"""


def _pins() -> dict[str, Requirement]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements = (Requirement(dependency) for dependency in dependencies)
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


@pytest.mark.parametrize("name", PINNED)
def test_the_installed_version_is_within_the_tested_minor_version(name: str):
    specifier = _pins()[name].specifier
    installed = Version(version(name))
    major, minor = installed.release[:2]

    assert installed in specifier, f"{name} {installed} is outside {specifier}: {UPGRADE}"
    assert Version(f"{major}.{minor + 1}") not in specifier, f"{name}: pin {specifier} to a minor"


class Recorded(SchemaExtension):
    """An extension the direct executor does not know (any schema extension added later)."""


def _schema(*extra: type[SchemaExtension]) -> ModelQLSchema:
    schema = build_schema()
    schema.extensions = (*schema.extensions, *extra)
    return schema


def _executor(*extra: type[SchemaExtension]) -> DirectExecutor:
    schema = _schema(*extra)
    return DirectExecutor(
        schema=schema, prepare=schema.documents, handlers=DIRECT_MUTATIONS, cache_size=8
    )


def _read_executor(*extra: type[SchemaExtension]) -> ReadExecutor:
    schema = _schema(*extra)
    return ReadExecutor(schema=schema, prepare=schema.documents, cache_size=8)


def test_a_schema_with_an_unknown_extension_is_never_planned(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="modelql.graph"):
        executors = [_executor(Recorded), _executor(Recorded)]
        readers = [_read_executor(Recorded), _read_executor(Recorded)]

    assert _executor().plan(PREDICT, None) is not None
    assert _read_executor().plan(MODELS, None) is not None
    assert [executor.plan(PREDICT, None) for executor in executors] == [None, None]
    assert [reader.plan(MODELS, None) for reader in readers] == [None, None]
    assert [record.getMessage() for record in caplog.records] == [
        "direct execution is off: the schema runs the extensions CachedDocuments, "
        "MaskUnexpectedErrors, Recorded, not exactly the ones it reproduces (CachedDocuments, "
        "MaskUnexpectedErrors); every operation runs on Strawberry's execution"
    ]


def _traced(*args: Any, **kwargs: Any) -> ModelQLSchema:
    """The app's schema, with Apollo tracing added (as a later change might add it)."""
    schema = build_schema(*args, **kwargs)
    schema.extensions = (*schema.extensions, ApolloTracingExtension)
    return schema


async def test_an_extension_added_later_runs_on_every_prediction(
    settings: Settings, demo_catalogue: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(app, "build_schema", _traced)
    async with app_client(settings) as http:
        answers = [
            (await http.post("/graphql", json={"query": PREDICT, "variables": variables})).json()
            for variables in ({"features": SETOSA}, {"features": {**SETOSA, "colour": 1}})
        ]

    assert [answer["data"]["createPrediction"] for answer in answers] == [
        {"prediction": {"label": "setosa"}, "userErrors": []},
        {"prediction": None, "userErrors": [{"code": "INVALID_FEATURES"}]},
    ]
    assert all("tracing" in answer["extensions"] for answer in answers)
