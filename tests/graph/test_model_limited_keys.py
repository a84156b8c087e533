"""A key limited to models sees nothing of another model, through any operation: documents are
generated from the schema (every root field of Query, Mutation and Subscription, three levels
deep, every interface's types), their arguments pointing at the other model, and each answer
must hold no name or id of it, and be the answer about a model that does not exist."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    parse,
    validate,
)
from live_support import Served, Subscriptions, served
from sklearn.dummy import DummyClassifier
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support import make_settings, reachable_temp_dir

from modelql.graph.direct import DirectExecutor
from modelql.graph.mutations import DIRECT_MUTATIONS
from modelql.graph.schema import build_schema
from modelql.graph.types.node import to_global_id
from modelql.models.artifacts import ArtifactStore
from modelql.models.signature import FeatureSpec, FeatureType
from modelql.services import api_keys, registration
from modelql.services.api_keys import Scope
from modelql.services.model_access import ModelLimit
from modelql.settings import AuthMode

ALPHA, BETA, GHOST = "keys-alpha", "keys-beta", "keys-ghost"
"""The key's model, the other model, and a model that does not exist."""
LIMIT = "keys-al*"
DEPTH = 3
"""Object levels below each root field (the root field's type is the first)."""

NESTED_ARGUMENTS: dict[str, dict[str, str]] = {
    "Model.versionAt": {"alias": '"production"', "at": '"2100-01-01T00:00:00Z"'},
    "ModelVersion.trainingArgument": {"name": '"strategy"'},
    "ModelVersion.metric": {"name": '"accuracy"'},
    "ModelVersion.signatureChanges": {"from": "1"},
    "AlertRule.deliveries": {"last": "5"},
    "PredictionStats.groups": {"by": "[MODEL, VERSION, CALLER, LABEL]"},
}
"""Values of the required arguments of nested fields (a new one fails the walk until added)."""


@dataclass(frozen=True)
class Target:
    """What documents name of one model: its name and the ids of what belongs to it."""

    model: str
    model_id: str
    version_id: str
    prediction_id: str
    request_id: str
    rule_id: str
    job_id: str

    def tokens(self) -> dict[str, str]:
        return {name: value for name, value in vars(self).items()}


def q(value: str) -> str:
    return json.dumps(value)


def _prediction_filters(t: Target) -> list[dict[str, str]]:
    return [
        {},
        {"filter": f"{{model: {q(t.model)}}}"},
        {"filter": f"{{requestId: {q(t.request_id)}}}"},
    ]


ROOT_ARGUMENTS: dict[str, Callable[[Target], list[dict[str, str]]]] = {
    # Each root field, with the argument variants that name the target model's objects.
    "Query.node": lambda t: [
        {"id": q(t.model_id)},
        {"id": q(t.version_id)},
        {"id": q(t.prediction_id)},
    ],
    "Query.alertRules": lambda t: [{}],
    "Query.models": lambda t: [{}, {"filter": f"{{search: {q(t.model)}}}"}],
    "Query.model": lambda t: [{"name": q(t.model)}],
    "Query.modelVersion": lambda t: [
        {"model": q(t.model), "version": "1"},
        {"model": q(t.model), "alias": '"production"'},
    ],
    "Query.predictions": _prediction_filters,
    "Query.predictionJob": lambda t: [{"id": q(t.job_id)}],
    "Query.prediction": lambda t: [{"id": q(t.prediction_id)}],
    "Query.predictionStats": lambda t: _prediction_filters(t)[:2],
    "Query.compareVersions": lambda t: [
        {"model": q(t.model), "candidate": "{version: 1}"},
        {"model": q(t.model), "candidate": '{alias: "production"}', "baseline": "{version: 1}"},
    ],
    "Mutation.createPrediction": lambda t: [
        {"input": f"{{model: {q(t.model)}, features: {{x: 1.0}}}}"}
    ],
    "Mutation.createPredictions": lambda t: [
        {"input": f"{{model: {q(t.model)}, instances: [{{x: 1.0}}, {{x: 0.0}}]}}"}
    ],
    "Mutation.setAlias": lambda t: [
        {"input": f'{{model: {q(t.model)}, alias: "canary", version: 1}}'}
    ],
    "Mutation.setShadow": lambda t: [
        {"input": f"{{model: {q(t.model)}, versions: [{{version: 1}}], sample: 0.5}}"}
    ],
    "Mutation.setTrafficSplit": lambda t: [
        {"input": f"{{model: {q(t.model)}, shares: [{{version: 1, weight: 1}}]}}"}
    ],
    "Mutation.recordOutcomes": lambda t: [
        {"input": f'{{outcomes: [{{predictionId: {q(t.prediction_id)}, label: "b"}}]}}'},
        {"input": f'{{outcomes: [{{requestId: {q(t.request_id)}, batchIndex: 0, label: "b"}}]}}'},
    ],
    "Mutation.createAlertRule": lambda t: [
        {
            "input": f'{{name: "sneaky", model: {q(t.model)}, signal: VOLUME, comparison: LT, '
            "threshold: 1, windowSeconds: 60, forSeconds: 0}"
        }
    ],
    "Mutation.setAlertRuleEnabled": lambda t: [{"id": q(t.rule_id), "enabled": "false"}],
    "Mutation.deleteAlertRule": lambda t: [{"id": q(t.rule_id)}],
    "Mutation.submitPredictionJob": lambda t: [
        {"input": f'{{model: {q(t.model)}, source: {{path: "rows.csv"}}}}'}
    ],
    "Mutation.cancelPredictionJob": lambda t: [{"id": q(t.job_id)}],
    "Subscription.predictionsCreated": lambda t: [{}, {"filter": f"{{model: {q(t.model)}}}"}],
    "Subscription.catalogueEvents": lambda t: [{}, {"model": q(t.model)}],
    "Subscription.alertsChanged": lambda t: [{}],
    "Subscription.predictionJobUpdated": lambda t: [{"id": q(t.job_id)}],
}


def root_fields(schema: GraphQLSchema) -> Iterator[tuple[str, str, GraphQLField]]:
    for root in (schema.query_type, schema.mutation_type, schema.subscription_type):
        assert root is not None
        for name, field in root.fields.items():
            yield root.name, name, field


def selection(schema: GraphQLSchema, type_: object, depth: int, alias: str = "") -> str:
    """Every field of the type down to `depth` object levels (interfaces: each of their types,
    its fields aliased by type, as two types' fields of one name may differ)."""
    named = get_named_type(type_)  # type: ignore[arg-type]
    if isinstance(named, GraphQLInterfaceType):
        parts = ["__typename"]
        for possible in schema.get_possible_types(named):
            inner = selection(schema, possible, depth, alias=f"{possible.name}_")
            parts.append(f"... on {possible.name} {{ {inner} }}")
        return " ".join(parts)
    assert isinstance(named, GraphQLObjectType), named
    parts = [] if alias else ["__typename"]
    for name, field in named.fields.items():
        inner = get_named_type(field.type)
        is_object = isinstance(inner, GraphQLObjectType | GraphQLInterfaceType)
        if is_object and depth <= 1:
            continue
        given = NESTED_ARGUMENTS.get(f"{named.name}.{name}", {})
        required = {a for a, arg in field.args.items() if isinstance(arg.type, GraphQLNonNull)}
        assert required <= set(given), f"{named.name}.{name}: add values of {required - set(given)}"
        call = arguments(given)
        name = f"{alias}{name}: {name}" if alias else name
        parts.append(
            f"{name}{call} {{ {selection(schema, inner, depth - 1)} }}"
            if is_object
            else name + call
        )
    return " ".join(parts)


def arguments(values: dict[str, str]) -> str:
    return "(" + ", ".join(f"{k}: {v}" for k, v in values.items()) + ")" if values else ""


@dataclass(frozen=True)
class Operation:
    kind: str
    field: str
    variant: int
    make: Callable[[Target], str]


def operations(schema: GraphQLSchema, example: Target) -> list[Operation]:
    """A document per root field and argument variant, for any target."""
    found = []
    for root, name, field in root_fields(schema):
        variants = ROOT_ARGUMENTS[f"{root}.{name}"]
        body = selection(schema, field.type, DEPTH)
        kind = {"Query": "query", "Mutation": "mutation", "Subscription": "subscription"}[root]
        for index in range(len(variants(example))):

            def make(
                t: Target, variants=variants, index=index, name=name, kind=kind, body=body
            ) -> str:
                call = arguments(variants(t)[index])
                leaf = "" if not body else f" {{ {body} }}"
                return f"{kind} {{ {name}{call}{leaf} }}"

            found.append(Operation(kind, name, index, make))
    return found


def normalised(answer: object, target: Target) -> str:
    """The answer with the target's names and ids replaced by their role."""
    encoded = json.dumps(answer, sort_keys=True)
    for role, value in sorted(target.tokens().items(), key=lambda item: -len(item[1])):
        encoded = encoded.replace(value, f"<{role}>")
    return encoded


def leaks(answer: object, document: str, other: Target, also: tuple[str, ...] = ()) -> list[str]:
    """The other model's names and ids in the answer that the document did not itself name."""
    encoded = json.dumps(answer)
    return [
        value
        for value in (*other.tokens().values(), *also)
        if value not in document and value in encoded
    ]


# --- the world: two models, a key limited to the first, a key for everything -------------------


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
async def catalogue(
    sessionmaker: async_sessionmaker[AsyncSession],
    artifact_store: ArtifactStore,
    demo_catalogue: None,
) -> None:
    async with sessionmaker.begin() as session:
        for name in (ALPHA, BETA):
            if name in await registration_names(session):
                continue
            await registration.register_version(
                session,
                artifact_store,
                registration.VersionRegistration(
                    model_name=name,
                    task="CLASSIFICATION",
                    algorithm="sklearn.dummy.DummyClassifier",
                    framework_version="1",
                    signature=[FeatureSpec(name="x", type=FeatureType.NUMBER)],
                    labels=["a", "b"],
                    aliases=["production"],
                ),
                estimator=DummyClassifier().fit([[0.0], [1.0]], ["a", "b"]),
            )


async def registration_names(session: AsyncSession) -> set[str]:
    return set((await session.scalars(text("SELECT name FROM models"))).all())


@pytest.fixture(scope="module")
async def keys(sessionmaker: async_sessionmaker[AsyncSession], catalogue: None) -> dict[str, str]:
    made = {}
    suffix = uuid.uuid4().hex[:8]
    async with sessionmaker.begin() as session:
        for role, models in (("limited", ModelLimit.parse(LIMIT)), ("full", None)):
            _, made[role] = await api_keys.create(
                session, name=f"{role}-{suffix}", scopes=frozenset(Scope), models=models
            )
    return made


@pytest.fixture(scope="module")
async def server(database_url: str, data_dir: Path, catalogue: None) -> AsyncIterator[Served]:
    sources = reachable_temp_dir("modelql-keys-")
    (sources / "rows.csv").write_text("x\n1.0\n0.0\n")
    settings = make_settings(
        database_url,
        data_dir,
        auth_mode=AuthMode.REQUIRED,
        job_source_dir=sources,
        max_query_tokens=100_000,
        max_query_aliases=1_000,
        max_query_length=1_000_000,
        rate_limit="",
        alert_evaluation_s=3600.0,
    )
    async with served(settings) as running:
        yield running


@pytest.fixture
async def http(server: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def ask(http: httpx.AsyncClient, key: str, document: str, **headers: str) -> dict:
    response = await http.post(
        "/graphql", json={"query": document}, headers={**bearer(key), **headers}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def populate(http: httpx.AsyncClient, key: str, model: str) -> Target:
    """Predictions (one labelled), an alert rule and a queued job of `model`, made by `key`."""
    request_id = f"req-{model}-{uuid.uuid4().hex[:6]}"
    made = await ask(
        http,
        key,
        f"mutation {{ createPredictions(input: {{model: {q(model)}, instances: "
        "[{x: 1.0}, {x: 0.0}, {x: 1.0}]}) { predictions { id } userErrors { code } } }",
        **{"X-Request-ID": request_id},
    )
    prediction_id = made["data"]["createPredictions"]["predictions"][0]["id"]
    labelled = await ask(
        http,
        key,
        f'mutation {{ recordOutcomes(input: {{outcomes: [{{predictionId: {q(prediction_id)}, label: "a"}}]}}) '
        "{ userErrors { code } } }",
    )
    assert labelled["data"]["recordOutcomes"]["userErrors"] == []
    rule = await ask(
        http,
        key,
        f'mutation {{ createAlertRule(input: {{name: "rule-of-{model}", model: {q(model)}, '
        "signal: VOLUME, comparison: LT, threshold: 1, windowSeconds: 60, forSeconds: 0}) "
        "{ rule { id } userErrors { code } } }",
    )
    job = await ask(
        http,
        key,
        f'mutation {{ submitPredictionJob(input: {{model: {q(model)}, source: {{path: "rows.csv"}}}}) '
        "{ job { id } userErrors { code message } } }",
    )
    found = await ask(
        http, key, f"{{ model(name: {q(model)}) {{ id versions {{ nodes {{ id }} }} }} }}"
    )
    return Target(
        model=model,
        model_id=found["data"]["model"]["id"],
        version_id=found["data"]["model"]["versions"]["nodes"][0]["id"],
        prediction_id=prediction_id,
        request_id=request_id,
        rule_id=rule["data"]["createAlertRule"]["rule"]["id"],
        job_id=job["data"]["submitPredictionJob"]["job"]["id"],
    )


def ghost() -> Target:
    """The same kinds of names and ids, naming nothing."""
    return Target(
        model=GHOST,
        model_id=to_global_id("Model", uuid.uuid4()),
        version_id=to_global_id("ModelVersion", uuid.uuid4()),
        prediction_id=to_global_id("Prediction", uuid.uuid4()),
        request_id=f"req-{GHOST}-{uuid.uuid4().hex[:6]}",
        rule_id=str(uuid.uuid4()),
        job_id=str(uuid.uuid4()),
    )


@dataclass(frozen=True)
class World:
    alpha: Target
    beta: Target
    ghost: Target
    beta_extra: tuple[str, ...]
    """More of beta's ids: every prediction's, and its rule's name."""


@pytest.fixture
async def world(http: httpx.AsyncClient, keys: dict[str, str]) -> World:
    alpha = await populate(http, keys["full"], ALPHA)
    beta = await populate(http, keys["full"], BETA)
    listed = await ask(
        http, keys["full"], f"{{ predictions(filter: {{model: {q(BETA)}}}) {{ nodes {{ id }} }} }}"
    )
    extra = tuple(node["id"] for node in listed["data"]["predictions"]["nodes"])
    return World(alpha, beta, ghost(), (*extra, f"rule-of-{BETA}"))


def schema() -> GraphQLSchema:
    return build_schema()._schema


# --- the tests ---------------------------------------------------------------------------------


def test_every_root_field_has_its_argument_variants():
    """A root field added to the schema fails here until this test says how to aim it."""
    declared = {f"{root}.{name}" for root, name, _ in root_fields(schema())}
    assert declared == set(ROOT_ARGUMENTS)


def test_every_generated_document_is_valid():
    built = schema()
    for operation in operations(built, ghost()):
        document = operation.make(ghost())
        assert validate(built, parse(document)) == [], (operation.field, document)


async def snapshot(http: httpx.AsyncClient, key: str, world: World) -> dict:
    """What the unlimited key sees of beta (aliases, split, rules, job, predictions, outcomes)."""
    return await ask(
        http,
        key,
        f"""{{ model(name: {q(BETA)}) {{ aliases {{ alias }} trafficSplit {{ weight }}
             versions {{ nodes {{ number }} }} }}
           alertRules {{ id name enabled }}
           predictionJob(id: {q(world.beta.job_id)}) {{ state }}
           predictionStats(filter: {{model: {q(BETA)}}}) {{ count labelled }} }}""",
    )


async def test_a_limited_key_sees_nothing_of_another_model_in_any_query_or_mutation(
    http: httpx.AsyncClient, keys: dict[str, str], world: World, engine: AsyncEngine
):
    built = schema()
    before = await snapshot(http, keys["full"], world)
    checked = []
    for operation in operations(built, world.beta):
        if operation.kind == "subscription":
            continue
        document = operation.make(world.beta)
        answer = await ask(http, keys["limited"], document)
        about_nothing = await ask(http, keys["limited"], operation.make(world.ghost))
        where = (operation.field, operation.variant, document)
        codes = {e.get("extensions", {}).get("code") for e in answer.get("errors", [])}
        assert not codes & {"GRAPHQL_VALIDATION_FAILED", "INTERNAL_SERVER_ERROR"}, (where, answer)
        assert leaks(answer, document, world.beta, world.beta_extra) == [], where
        assert normalised(answer, world.beta) == normalised(about_nothing, world.ghost), where
        if operation.kind == "query":  # the same document shows beta to an unlimited key
            seen = await ask(http, keys["full"], document)
            assert normalised(seen, world.beta) != normalised(answer, world.beta), where
        checked.append(operation.field)
    assert set(checked) == {
        name for root, name, _ in root_fields(built) if root in ("Query", "Mutation")
    }
    assert await snapshot(http, keys["full"], world) == before, "a refused mutation changed beta"

    own = await ask(
        http, keys["limited"], "{ models { nodes { name } } predictions { nodes { id } } }"
    )
    assert [node["name"] for node in own["data"]["models"]["nodes"]] == [ALPHA]
    assert len(own["data"]["predictions"]["nodes"]) == 3
    await asyncio.sleep(0.2)
    assert await idle_in_transaction(engine) == 0


async def idle_in_transaction(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
            )
        )


async def test_a_limited_key_may_use_its_own_model(
    http: httpx.AsyncClient, keys: dict[str, str], world: World
):
    made = await ask(
        http,
        keys["limited"],
        f"mutation {{ createPrediction(input: {{model: {q(ALPHA)}, features: {{x: 1.0}}}}) "
        "{ prediction { modelVersion { model { name } } } userErrors { code } } }",
    )
    assert made["data"]["createPrediction"]["prediction"]["modelVersion"]["model"]["name"] == ALPHA
    moved = await ask(
        http,
        keys["limited"],
        f'mutation {{ setAlias(input: {{model: {q(ALPHA)}, alias: "canary", version: 1}}) '
        "{ userErrors { code } } }",
    )
    assert moved["data"]["setAlias"]["userErrors"] == []
    rules = await ask(http, keys["limited"], "{ alertRules { id } }")
    assert [rule["id"] for rule in rules["data"]["alertRules"]] == [world.alpha.rule_id]


async def test_answers_kept_for_one_key_are_not_served_to_a_key_limited_otherwise(
    http: httpx.AsyncClient, keys: dict[str, str], world: World
):
    document = "{ models(first: 100) { nodes { name } } predictionStats { count } }"
    full = await ask(http, keys["full"], document)
    limited = await ask(http, keys["limited"], document)
    again = await ask(http, keys["full"], document)
    assert BETA in json.dumps(full) and full == again
    assert BETA not in json.dumps(limited)
    assert limited["data"]["predictionStats"]["count"] == 3


async def test_metrics_show_a_limited_key_only_its_models_series(
    http: httpx.AsyncClient, keys: dict[str, str], world: World
):
    full = (await http.get("/metrics", headers=bearer(keys["full"]))).text
    limited = (await http.get("/metrics", headers=bearer(keys["limited"]))).text
    assert f'model="{BETA}"' in full and f'model="{ALPHA}"' in full
    assert BETA not in limited and f'model="{ALPHA}"' in limited
    assert "modelql_graphql_request_duration_seconds" in limited
    assert (await http.get("/metrics", headers=bearer("mql_0_nope"))).status_code == 401


async def next_messages(connection: Subscriptions, within: float) -> list[dict]:
    messages = []
    try:
        while True:
            messages.append(await connection.receive(within=within))
    except TimeoutError:
        return messages


async def test_a_limited_key_gets_no_event_of_another_model_from_any_subscription(
    server: Served, http: httpx.AsyncClient, keys: dict[str, str], world: World, engine: AsyncEngine
):
    built = schema()
    subscriptions = [op for op in operations(built, world.beta) if op.kind == "subscription"]
    async with (
        Subscriptions.open(server.url, {"authorization": f"Bearer {keys['limited']}"}) as limited,
        Subscriptions.open(server.url, {"authorization": f"Bearer {keys['full']}"}) as full,
    ):
        await limited.acknowledged()
        await full.acknowledged()
        documents = {}
        for operation in subscriptions:
            documents[await limited.subscribe(operation.make(world.beta))] = operation
            await full.subscribe(operation.make(world.beta))
        await asyncio.sleep(0.5)
        for target in (world.beta, world.alpha):  # beta's events first, then alpha's
            await ask(
                http,
                keys["full"],
                f"mutation {{ createPrediction(input: {{model: {q(target.model)}, features: {{x: 1.0}}}}) "
                f"{{ userErrors {{ code }} }} "
                f"setAlertRuleEnabled(id: {q(target.rule_id)}, enabled: false) {{ userErrors {{ code }} }} "
                f'setAlias(input: {{model: {q(target.model)}, alias: "feed", version: 1}}) '
                f"{{ userErrors {{ code }} }} cancelPredictionJob(id: {q(target.job_id)}) "
                "{ userErrors { code } } }",
            )
        received = await next_messages(limited, within=2.0)
        shown_to_all = await next_messages(full, within=0.5)
        for operation in documents:  # ended while the sockets stay open
            await limited.complete(operation)
        await asyncio.sleep(0.3)
        assert await idle_in_transaction(engine) == 0

    by_field: dict[str, list[dict]] = {}
    for message in received:
        operation = documents[message["id"]]
        document = operation.make(world.beta)
        assert leaks(message, document, world.beta, world.beta_extra) == [], (document, message)
        if message["type"] == "complete":  # the unknown job's subscription, after its null
            assert operation.field == "predictionJobUpdated"
            continue
        assert message["type"] == "next" and "errors" not in message["payload"], message
        shown = message["payload"]["data"][operation.field]
        assert shown is None or ALPHA in json.dumps(shown), (document, message)  # alpha's only
        by_field.setdefault(operation.field, []).append(message)
    # alpha's events, sent after beta's, did arrive: beta's were left out, not late
    for field in ("predictionsCreated", "catalogueEvents", "alertsChanged"):
        assert ALPHA in json.dumps(by_field[field]), field
    job = by_field["predictionJobUpdated"]
    assert [m["payload"]["data"]["predictionJobUpdated"] for m in job] == [None]
    assert BETA in json.dumps(shown_to_all)


async def test_keys_name_only_models_that_exist(
    sessionmaker: async_sessionmaker[AsyncSession], catalogue: None
):
    async with sessionmaker() as session:
        with pytest.raises(api_keys.ApiKeyError, match="No model matches 'fraud-\\*'"):
            await api_keys.create(
                session,
                name="fraud-team",
                scopes=frozenset({Scope.READ}),
                models=ModelLimit.parse(f"{ALPHA},fraud-*"),
            )
    with pytest.raises(api_keys.ApiKeyError, match="comma-separated list"):
        api_keys.parse_models("Iris,%")


@pytest.mark.parametrize(
    ("patterns", "name", "allowed"),
    [
        ("fraud-*", "fraud-v2", True),
        ("fraud-*", "fraud-", True),
        ("fraud-*", "xfraud-v2", False),
        ("iris-classifier", "iris-classifier", True),
        ("iris-classifier", "iris-classifier2", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("a_c", "abc", False),
        ("a.c", "abc", False),
        ("x,fraud-*", "x", True),
    ],
)
def test_patterns_match_whole_names_as_globs(patterns: str, name: str, allowed: bool):
    assert ModelLimit.parse(patterns).allows(name) is allowed


@pytest.mark.parametrize("name", ["a_c", "abc", "a.c", "a%c", "fraud-1"])
async def test_patterns_match_alike_in_sql_and_in_memory(engine: AsyncEngine, name: str):
    limit = ModelLimit.parse("a_c,a.c,fraud-*")
    async with engine.connect() as connection:
        matched = await connection.scalar(
            text("SELECT bool_or(:name LIKE p ESCAPE '\\') FROM unnest(CAST(:ps AS text[])) p"),
            {"name": name, "ps": limit.like_patterns()},
        )
    assert matched is limit.allows(name)


def test_depth_reaches_three_object_levels():
    document = next(op for op in operations(schema(), ghost()) if op.field == "model").make(ghost())
    assert re.search(r"versions(\([^)]*\))? \{ .*nodes \{ ", document)


DIRECT = """mutation { createPrediction(input: {model: "%s", features: {x: 1.0}}) {
  prediction { id label } userErrors { field code message } } }"""


async def test_the_direct_executor_refuses_another_model_as_one_that_does_not_exist(
    http: httpx.AsyncClient, keys: dict[str, str], world: World
):
    built = build_schema()
    executor = DirectExecutor(
        schema=built, prepare=built.documents, handlers=DIRECT_MUTATIONS, cache_size=8
    )
    assert executor.plan(DIRECT % BETA, None) is not None  # the direct path answers it
    before = await snapshot(http, keys["full"], world)
    refused = await ask(http, keys["limited"], DIRECT % BETA)
    unknown = await ask(http, keys["limited"], DIRECT % GHOST)
    assert refused["data"]["createPrediction"]["userErrors"][0]["code"] == "MODEL_NOT_FOUND"
    assert normalised(refused, world.beta) == normalised(unknown, world.ghost)
    assert await snapshot(http, keys["full"], world) == before
    own = await ask(http, keys["limited"], DIRECT % ALPHA)
    assert own["data"]["createPrediction"]["prediction"]["label"] in ("a", "b")
