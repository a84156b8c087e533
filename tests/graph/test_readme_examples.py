"""Every GraphQL example in README.md works as pasted into GraphiQL, on the demo catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from support import graphql

from modelql.graph.endpoint import EXAMPLE_QUERY

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLES = re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_catalogue_mutation_and_audit_examples():
    assert len(EXAMPLES) >= 5
    assert any(example.lstrip().startswith("mutation") for example in EXAMPLES)
    assert any("predictionStats" in example for example in EXAMPLES)


@pytest.mark.parametrize("document", [*EXAMPLES, EXAMPLE_QUERY], ids=lambda d: d.split("\n")[1])
async def test_example_runs_without_errors(client: httpx.AsyncClient, document: str):
    body = await graphql(client, document)
    assert "errors" not in body, body
    payloads = [value for value in body["data"].values() if isinstance(value, dict)]
    for payload in payloads:
        assert payload.get("userErrors", []) == []
