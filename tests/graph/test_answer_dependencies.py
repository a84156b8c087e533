"""Every field of the schema says what its answers read (an allow-list), and a document reads
the union of its fields' datasets: a field without a decision fails here, not silently stale."""

from __future__ import annotations

import pytest
from graphql import GraphQLInterfaceType, GraphQLObjectType, parse

from modelql.graph.answer_dependencies import FIELD_READS, TYPE_READS, datasets_read, field_reads
from modelql.graph.schema import build_schema
from modelql.services.generations import Dataset

SCHEMA = build_schema()._schema
CATALOGUE = (Dataset.CATALOGUE,)
STORE = (Dataset.CATALOGUE, Dataset.STORE)


def _fields() -> list[tuple[str, str]]:
    return [
        (name, field)
        for name, graphql_type in SCHEMA.type_map.items()
        if isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType)
        and not name.startswith("__")
        and name not in ("Mutation", "Subscription")
        for field in graphql_type.fields
    ]


@pytest.mark.parametrize(("parent", "field"), _fields())
def test_every_field_has_a_decision(parent: str, field: str):
    assert field_reads(parent, field) is not None, (
        f"{parent}.{field} has no entry in graph/answer_dependencies.py: say whether its "
        "answers read the catalogue or the store, or the response cache may serve it stale"
    )


def test_the_decisions_name_only_what_the_schema_has():
    named = {(parent, field) for parent, fields in FIELD_READS.items() for field in fields}
    assert named <= set(_fields())
    assert set(TYPE_READS) <= set(SCHEMA.type_map)


@pytest.mark.parametrize(
    ("document", "datasets"),
    [
        ("{ __typename }", ()),
        ("{ models { nodes { name defaultVersion { number inputSchema { name } } } } }", CATALOGUE),
        ('{ modelVersion(model: "m") { metric(name: "f1") } }', CATALOGUE),
        ('{ modelVersion(model: "m") { metric(name: "f1", split: TRAIN) } }', CATALOGUE),
        ('{ modelVersion(model: "m") { metric(name: "f1", split: LIVE) } }', STORE),
        (
            "query($s: DataSplit) { models { nodes { defaultVersion { performance(split: $s) "
            "{ slice } } } } }",
            STORE,
        ),
        ('{ modelVersion(model: "m") { inputDrift { sampleSize } } }', STORE),
        ("{ predictionStats { count } }", STORE),
        ('{ node(id: "x") { id } }', STORE),
        (
            "{ models { nodes { ...Recent } } } fragment Recent on Model "
            "{ predictions(first: 1) { nodes { id } } }",
            STORE,
        ),
    ],
)
def test_a_document_reads_what_its_fields_read(document: str, datasets: tuple[Dataset, ...]):
    assert datasets_read(SCHEMA, parse(document)) == datasets
