"""The architecture as tests: one installed namespace, layers that import downwards only, and
no import cycles between modules."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_archon import archrule
from pytest_archon.collect import collect_imports, walk_runtime

from modelql import services

LAYERS = ("graph", "services", "persistence", "models", "migrations")
COMPOSITION_ROOT = Path(__file__).resolve().parents[1] / "modelql"
ROOT_MODULES = tuple(  # the composition root's own modules: app, cli, settings, ...
    f"modelql.{path.stem}" for path in COMPOSITION_ROOT.glob("*.py") if path.stem != "__init__"
)
WEB_FRAMEWORKS = ("strawberry*", "fastapi*", "starlette*", "graphql*", "uvicorn*")


@pytest.mark.parametrize("layer", LAYERS)
def test_no_layer_is_installed_as_a_top_level_package(layer: str, tmp_path):
    script = (
        f"import modelql.{layer}\n"
        f"try:\n    import {layer}\nexcept ModuleNotFoundError:\n    pass\n"
        f"else:\n    raise SystemExit('a top-level {layer} package is installed')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_graph_depends_on_services_not_on_the_composition_root_or_storage():
    (
        archrule("graph layer", comment="graph -> services; persistence only for row types")
        .match("modelql.graph*")
        .should_not_import(*ROOT_MODULES, "modelql.migrations*", "modelql.persistence.*")
        .may_import("modelql.persistence.tables")
        .check("modelql.graph", only_direct_imports=True)
    )


PUBLIC_LIBRARY_MODULES = (
    "strawberry.asgi",
    "strawberry.dataloader",
    "strawberry.exceptions",
    "strawberry.extensions",
    "strawberry.file_uploads",
    "strawberry.http",
    "strawberry.permission",
    "strawberry.scalars",
    "strawberry.schema.config",
    "strawberry.subscriptions",
    "strawberry.types",
)
"""Strawberry's modules its documentation imports from (`strawberry` itself, and graphql-core's
top-level `graphql`, are public too)."""


def test_the_graph_layer_reaches_library_internals_through_one_module():
    (
        archrule("library internals", comment="internals: graph/executor_internals.py, pinned")
        .match("modelql.graph*")
        .exclude("modelql.graph.executor_internals")
        .should_not_import("strawberry.*", "graphql.*")
        .may_import(*PUBLIC_LIBRARY_MODULES)
        .check("modelql.graph", only_direct_imports=True)
    )


def test_services_pass_no_storage_function_up():
    """What graph calls in services is a use case of services: no persistence function is
    exported under a services name (mypy --strict refuses names a module does not export, and
    services export through `__all__`)."""
    modules = [
        importlib.import_module(info.name)
        for info in pkgutil.iter_modules(services.__path__, "modelql.services.")
    ]
    passed_on = [
        f"{module.__name__}.{name}"
        for module in modules
        for name in getattr(module, "__all__", ())
        if inspect.isfunction(value := getattr(module, name))
        and not value.__module__.startswith("modelql.services.")
    ]
    assert passed_on == []


def test_services_use_no_web_framework_and_nothing_above_them():
    (
        archrule("services layer", comment="use-cases: no web framework, nothing above them")
        .match("modelql.services*")
        .should_not_import(*WEB_FRAMEWORKS, "modelql.graph*", *ROOT_MODULES, "modelql.migrations*")
        .may_import("modelql.services*", "modelql.persistence*", "modelql.models*")
        .check("modelql.services", only_direct_imports=True)
    )


def test_persistence_imports_only_the_shared_vocabulary_of_the_project():
    (
        archrule("persistence layer", comment="tables, queries and writers; no use-cases")
        .match("modelql.persistence*")
        .should_not_import(
            *WEB_FRAMEWORKS,
            "modelql.graph*",
            "modelql.services*",
            "modelql.models.*",
            ROOT_MODULES,
            "modelql.migrations*",
        )
        .may_import("modelql.persistence*", "modelql.models.vocabulary")
        .check("modelql.persistence", only_direct_imports=True)
    )


def test_models_stand_apart_from_the_service():
    (
        archrule("models", comment="the scikit-learn side imports nothing of the service")
        .match("modelql.models*")
        .should_not_import(
            *WEB_FRAMEWORKS,
            "modelql.graph*",
            "modelql.services*",
            "modelql.persistence*",
            ROOT_MODULES,
            "modelql.migrations*",
            "sqlalchemy*",
        )
        .check("modelql.models", only_direct_imports=True)
    )


def test_migrations_read_only_the_tables():
    (
        archrule("migrations", comment="Alembic reads table metadata, nothing else")
        .match("modelql.migrations*")
        .should_not_import("modelql.graph*", "modelql.services*", *ROOT_MODULES)
        .check("modelql.migrations", only_direct_imports=True)
    )


def _project_imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports at run time (type-checking imports aside)."""
    imports: dict[str, set[str]] = {}
    for package in ("modelql", *(f"modelql.{layer}" for layer in LAYERS)):
        for module, imported in collect_imports(package, walk_runtime).items():
            imports.setdefault(module, set()).update(
                name for name in imported if name.startswith("modelql.")
            )
    return imports


def _cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                yield from visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                yield sorted(group)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def test_no_module_imports_itself_through_others():
    imports = _project_imports()
    assert "modelql.graph.types.nodes" in imports, "the import graph was not collected"
    assert list(_cycles(imports)) == []


def test_the_cycle_check_finds_a_cycle():
    assert list(_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})) == [["a", "b", "c"]]
