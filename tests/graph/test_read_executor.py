"""The read executor, on a small schema of its own: it answers what Strawberry answers, keeps
DataLoader batching, and gives back (None) every query that meets an error, a refused permission
or a null where none may be, after finishing the work it started."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import Enum
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from graphql import specified_rules
from strawberry.dataloader import DataLoader
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission

from modelql.graph.documents import CachedDocuments, document_cache
from modelql.graph.errors import MaskUnexpectedErrors
from modelql.graph.read_executor import ReadExecutor


@dataclass
class Context:
    scopes: frozenset[str]
    loads: list[list[int]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    squares: DataLoader[int, int] = field(init=False)
    locked_squares: DataLoader[int, int] = field(init=False)

    def __post_init__(self) -> None:
        async def load(keys: list[int]) -> list[int]:
            self.loads.append(list(keys))
            return [key * key for key in keys]

        async def load_locked(keys: list[int]) -> list[int]:
            async with self.lock:  # as a request's shared database session is
                return await load(keys)

        self.squares = DataLoader(load_fn=load)
        self.locked_squares = DataLoader(load_fn=load_locked)


class CanSeeSecrets(BasePermission):
    message = "no"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return "secrets" in info.context.scopes


@strawberry.enum
class Shape(Enum):
    ROUND = "round"
    SQUARE = "square"


@strawberry.type
class Item:
    number: int

    @strawberry.field
    async def square(self, info: strawberry.Info) -> int:
        return await info.context.squares.load(self.number)

    @strawberry.field
    async def again(self, info: strawberry.Info) -> int:
        """The same key as `square`: two fields awaiting one pending future."""
        return await info.context.squares.load(self.number)

    @strawberry.field
    def plus(self, amount: int = 1) -> int:
        return self.number + amount

    @strawberry.field
    def shaped(self, shape: Shape, shapes: list[Shape] | None = None) -> str:
        return f"{shape.value}:{','.join(s.value for s in shapes or [])}"

    @strawberry.field(permission_classes=[CanSeeSecrets])
    def secret(self) -> str:
        return f"secret {self.number}"

    @strawberry.field
    async def slow(self, info: strawberry.Info) -> int:
        info.context.started.append(f"slow {self.number}")
        await asyncio.sleep(0.01)
        info.context.finished.append(f"slow {self.number}")
        return self.number

    @strawberry.field
    async def locked(self, info: strawberry.Info) -> int:
        async with info.context.lock:
            await asyncio.sleep(0.01)
        return self.number

    @strawberry.field
    async def broken(self) -> int:
        raise ValueError("broken")

    @strawberry.field
    def missing(self) -> int:
        return None  # type: ignore[return-value]  # a null where none may be

    @strawberry.field
    def maybe(self) -> int | None:
        return None


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Thing(Named):
    pass


@strawberry.type
class Other(Named):
    size: int


@strawberry.interface
class Tagged:
    tag: str

    @classmethod
    def resolve_type(cls, obj: Any, info: Any, type_: Any) -> str:
        return "Label"


@strawberry.type
class Label(Tagged):
    pass


@strawberry.type
class Query:
    @strawberry.field
    def items(self, first: int = 3) -> list[Item]:
        return [Item(number=n) for n in range(1, first + 1)]

    @strawberry.field
    async def item(self, number: int) -> Item | None:
        return Item(number=number) if number > 0 else None

    @strawberry.field
    async def later_items(self, first: int = 2) -> list[Item]:
        await asyncio.sleep(0)
        return [Item(number=n) for n in range(1, first + 1)]

    @strawberry.field
    async def later_square(self, info: strawberry.Info, number: int) -> int:
        await asyncio.sleep(0)
        return await info.context.locked_squares.load(number)

    @strawberry.field
    def named(self) -> Named:
        return Thing(name="thing")

    @strawberry.field
    def others(self) -> list[Named]:
        return [Other(name="other", size=2), Thing(name="thing")]

    @strawberry.field
    def cast_named(self) -> Named:
        return strawberry.cast(Thing, SimpleNamespace(name="cast"))

    @strawberry.field
    def tagged(self) -> Tagged:
        return Label(tag="label")


def _schema(*extensions: type[SchemaExtension] | Any) -> tuple[strawberry.Schema, Any]:
    prepare = document_cache(max_tokens=10_000, rules=specified_rules, size=64)
    chosen = extensions or (MaskUnexpectedErrors, lambda: CachedDocuments(prepare))
    return strawberry.Schema(
        query=Query, types=[Thing, Other, Label], extensions=list(chosen)
    ), prepare


SCHEMA, PREPARE = _schema()


def _executor(schema: strawberry.Schema = SCHEMA) -> ReadExecutor:
    return ReadExecutor(schema=schema, prepare=PREPARE, cache_size=16)


async def _both(
    query: str, variables: dict[str, Any] | None = None, scopes: frozenset[str] = frozenset()
) -> tuple[Any, Any, Context]:
    context = Context(scopes)
    mine = await _executor().execute(query, None, variables, context)
    theirs = await SCHEMA.execute(query, variable_values=variables, context_value=Context(scopes))
    return mine, theirs, context


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ items { number square again plus(amount: 5) } }", None),
        ("query($n: Int!) { item(number: $n) { number square maybe } }", {"n": 4}),
        ("{ item(number: 0) { number } }", None),
        (
            "{ a: items(first: 2) { ...F } b: items(first: 1) { ... on Item { n: number } } }"
            " fragment F on Item { __typename number }",
            None,
        ),
        ("{ items { shaped(shape: ROUND, shapes: [SQUARE, ROUND]) } }", None),
        ("query($s: Shape!) { items(first: 1) { shaped(shape: $s) } }", {"s": "SQUARE"}),
        ("{ named { name __typename } }", None),
        (
            "{ others { __typename name ... on Other { size } ...T } }"
            " fragment T on Thing { thing: name }",
            None,
        ),
    ],
)
async def test_answers_what_strawberry_answers(query: str, variables: dict[str, Any] | None):
    mine, theirs, _ = await _both(query, variables)

    assert theirs.errors is None
    assert mine is not None and mine.errors is None
    assert mine.data == theirs.data


async def test_sibling_fields_share_one_batch_across_a_list():
    mine, _, context = await _both("{ items(first: 4) { square again } }")

    assert mine is not None
    assert context.loads == [[1, 2, 3, 4]]


async def test_a_permitted_field_is_answered_and_a_refused_one_is_given_back():
    allowed, _, _ = await _both("{ items(first: 1) { secret } }", scopes=frozenset({"secrets"}))
    refused, theirs, _ = await _both("{ items(first: 1) { secret } }")

    assert allowed is not None and allowed.data == {"items": [{"secret": "secret 1"}]}
    assert refused is None
    assert theirs.errors is not None


async def test_a_resolver_holding_a_lock_is_run_on_while_a_batch_waits_for_the_lock():
    """An item's resolver, started once its list arrived, takes the lock a sibling's batch
    needs: it runs on at once (not after the batch), so neither waits for the other."""
    query = "{ laterItems { locked } laterSquare(number: 3) }"

    mine = await asyncio.wait_for(_executor().execute(query, None, None, Context(frozenset())), 5)

    assert mine is not None
    assert mine.data == {"laterItems": [{"locked": 1}, {"locked": 2}], "laterSquare": 9}


@pytest.mark.parametrize("failing", ["broken", "missing"])
async def test_an_error_gives_the_query_back_after_the_started_work_finishes(failing: str):
    mine, theirs, context = await _both(f"{{ items(first: 2) {{ slow {failing} }} }}")

    assert mine is None
    assert theirs.errors is not None
    assert context.started  # the first item's resolver started before the error...
    assert context.finished == context.started  # ...and was finished, not abandoned


@pytest.mark.parametrize(
    "query",
    [
        "{ tagged { tag } }",  # an interface resolving its types itself
        "{ items { number @include(if: true) } }",
        "{ __schema { queryType { name } } }",
        "mutation { x }",
        "{ nope }",
    ],
)
def test_what_it_does_not_reproduce_is_not_planned(query: str):
    assert _executor().plan(query, None) is None


async def test_a_value_cast_to_its_type_is_given_back_to_strawberry():
    mine, theirs, _ = await _both("{ castNamed { __typename name } }")

    assert mine is None
    assert theirs.errors is None and theirs.data == {
        "castNamed": {"__typename": "Thing", "name": "cast"}
    }


def test_a_schema_running_other_extensions_is_never_planned():
    class Tracing(SchemaExtension):
        pass

    schema, _ = _schema(MaskUnexpectedErrors, lambda: CachedDocuments(PREPARE), Tracing)

    assert _executor(schema).plan("{ items { number } }", None) is None
