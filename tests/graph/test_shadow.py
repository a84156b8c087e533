"""Shadow versions through the API: `setShadow` checked whole, shadow answers stored after the
primary's and linked to it (never in the primary's statistics), shed when the queue is full,
drained on a graceful stop, compared with `compareVersions(source: SHADOW)` and a paired test
once outcomes arrive, and the comparison an alias move was based on kept in its history."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sklearn
from live_support import Subscriptions, served
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats
from shadow_support import FLIPPED, SIGNATURE, X, Y, register
from sklearn.linear_model import Ridge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import graphql, make_settings, running_app

from modelql.models.artifacts import ArtifactStore
from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType
from modelql.services import registration
from modelql.settings import Settings

SET_SHADOW = """mutation($input: SetShadowInput!) { setShadow(input: $input) {
  model { shadowVersions { number } shadowSample shadowHistory { versions sample changedBy } }
  userErrors { field code message } } }"""
PREDICT = """mutation($input: CreatePredictionsInput!) { createPredictions(input: $input) {
  predictions { id label confidence } userErrors { field code message } } }"""
SHADOWS = """query($id: ID!) { prediction(id: $id) { label
  shadows { id label confidence refusal modelVersion { number }
            probabilities { label probability } } } }"""
RECORD = """mutation($outcomes: [OutcomeInput!]!) { recordOutcomes(input: {outcomes: $outcomes}) {
  userErrors { field code message } } }"""
COMPARE = """query($m: String!, $v: Int!) {
  compareVersions(model: $m, candidate: {version: $v}, source: SHADOW) {
    source compared skipped agreement labelChanges { from to count }
    paired { metric test pairs baseline candidate difference confidenceLevel
             confidenceLow confidenceHigh pValue baselineOnly candidateOnly } } }"""


@pytest.fixture
def shadow_settings(database_url: str, data_dir: Path, demo_catalogue: None) -> Settings:
    return make_settings(database_url, data_dir, shadow_queue=10_000)


@pytest.fixture
async def model(sessionmaker, artifact_store: ArtifactStore, demo_catalogue: None) -> str:
    """Three versions of one signature: v1 production, v2 trained on other labels, v3 like v1."""
    return await register(
        sessionmaker, artifact_store, [(Y, SIGNATURE), (FLIPPED, SIGNATURE), (Y, SIGNATURE)]
    )


async def data(http: httpx.AsyncClient, query: str, name: str, **variables: Any) -> Any:
    body = await graphql(http, query, variables)
    assert "errors" not in body, body
    return body["data"][name]


async def settled(app: Any) -> None:
    """Wait until this process's shadow queue is empty (scored and stored)."""
    for _ in range(500):
        if app.state.runtime.shadows.pending_rows == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the shadow queue did not empty")


async def predict(http: httpx.AsyncClient, model: str, points: list[list[float]]) -> list[dict]:
    instances = [{"a": a, "b": b} for a, b in points]
    result = await data(
        http, PREDICT, "createPredictions", input={"model": model, "instances": instances}
    )
    assert result["userErrors"] == [], result
    return result["predictions"]


POINTS = [[0.0, 1.0], [1.0, 1.0], [2.0, 2.0], [2.5, 2.5], [3.0, 4.0], [4.0, 5.0], [0.5, 0.5]]


# --- setShadow ---------------------------------------------------------------------------


async def test_set_shadow_refusals_name_the_input_and_change_nothing(
    shadow_settings: Settings, sessionmaker, artifact_store: ArtifactStore, model: str
):
    other = await register(
        sessionmaker,
        artifact_store,
        [(Y, SIGNATURE), (Y, [*SIGNATURE, FeatureSpec(name="c", type=FeatureType.NUMBER)])],
    )
    async with running_app(shadow_settings) as (_, http):
        found = await data(
            http,
            """query($m: String!) { model(name: $m) { versions { nodes { id number } } } }""",
            "model",
            m=other,
        )
        foreign_id = next(v["id"] for v in found["versions"]["nodes"] if v["number"] == 1)
        cases = [
            ({"versions": [{"version": 2}], "sample": 0}, [(["sample"], "INVALID_SHADOW")]),
            ({"versions": [{"version": 2}], "sample": 1.5}, [(["sample"], "INVALID_SHADOW")]),
            ({"versions": [{"version": 2}]}, [(["sample"], "INVALID_SHADOW")]),
            (
                {"versions": [{"version": 9}], "sample": 0.5},
                [(["versions", "0", "version"], "VERSION_NOT_FOUND")],
            ),
            (
                {"versions": [{"version": 2}, {"id": foreign_id}], "sample": 0.5},
                [(["versions", "1", "id"], "VERSION_OF_ANOTHER_MODEL")],
            ),
            (
                {"versions": [{"id": "not-an-id"}], "sample": 0.5},
                [(["versions", "0", "id"], "VERSION_NOT_FOUND")],
            ),
            (
                {"versions": [{"version": 2}, {"version": 2}], "sample": 0.5},
                [(["versions", "1", "version"], "INVALID_SHADOW")],
            ),
            (
                {"versions": [{"version": 2, "id": foreign_id}], "sample": 0.5},
                [(["versions", "0"], "INVALID_SHADOW")],
            ),
            (
                {"versions": [{"version": 9}], "sample": -1},
                [
                    (["versions", "0", "version"], "VERSION_NOT_FOUND"),
                    (["sample"], "INVALID_SHADOW"),
                ],
            ),
        ]
        for input, expected in cases:
            result = await data(http, SET_SHADOW, "setShadow", input={"model": model, **input})
            assert result["model"] is None, input
            assert [(e["field"], e["code"]) for e in result["userErrors"]] == expected, input
        unknown = await data(
            http, SET_SHADOW, "setShadow", input={"model": "no-such", "versions": [], "sample": 1}
        )
        assert [(e["field"], e["code"]) for e in unknown["userErrors"]] == [
            (["model"], "MODEL_NOT_FOUND")
        ]
        # v2 of the other model needs a feature its default version (v1) is not sent
        incompatible = await data(
            http,
            SET_SHADOW,
            "setShadow",
            input={"model": other, "versions": [{"version": 2}], "sample": 1},
        )
        assert [(e["field"], e["code"]) for e in incompatible["userErrors"]] == [
            (["versions", "0"], "INCOMPATIBLE_SIGNATURE")
        ]
        assert "'c'" in incompatible["userErrors"][0]["message"]

        unchanged = await data(
            http,
            """query($m: String!) { model(name: $m) { shadowVersions { number } shadowSample
                 shadowHistory { versions } } }""",
            "model",
            m=model,
        )
        assert unchanged == {"shadowVersions": [], "shadowSample": None, "shadowHistory": []}


async def test_shadow_answers_are_stored_linked_and_kept_out_of_the_primary_statistics(
    shadow_settings: Settings, model: str
):
    async with running_app(shadow_settings) as (app, http):
        set_ = await data(
            http,
            SET_SHADOW,
            "setShadow",
            input={"model": model, "versions": [{"version": 3}, {"version": 2}], "sample": 1},
        )
        assert set_ == {
            "model": {
                "shadowVersions": [{"number": 2}, {"number": 3}],
                "shadowSample": 1.0,
                "shadowHistory": [{"versions": [2, 3], "sample": 1.0, "changedBy": None}],
            },
            "userErrors": [],
        }
        primaries = await predict(http, model, POINTS)
        await settled(app)

        direct = {
            number: await data(
                http,
                PREDICT,
                "createPredictions",
                input={
                    "model": model,
                    "version": number,
                    "instances": [{"a": a, "b": b} for a, b in POINTS],
                },
            )
            for number in (2, 3)
        }
        await settled(app)
        for index, primary in enumerate(primaries):
            found = await data(http, SHADOWS, "prediction", id=primary["id"])
            assert found["label"] == primary["label"]
            by_version = {s["modelVersion"]["number"]: s for s in found["shadows"]}
            assert sorted(by_version) == [2, 3], "one answer per shadow version"
            for number in (2, 3):
                shadow = by_version[number]
                assert shadow["refusal"] is None
                answered = direct[number]["predictions"][index]
                assert shadow["label"] == answered["label"]
                assert shadow["confidence"] == pytest.approx(answered["confidence"], rel=1e-12)
                assert [p["label"] for p in shadow["probabilities"]] == ["high", "low"]
                assert (
                    max(p["probability"] for p in shadow["probabilities"]) == shadow["confidence"]
                )

        stats_ = await data(
            http,
            """query($m: String!) { predictionStats(filter: {model: $m}) { count }
                 predictions(first: 100, filter: {model: $m, version: 1}) { nodes { id } } }""",
            "predictionStats",
            m=model,
        )
        assert stats_["count"] == 3 * len(POINTS), "the primaries and the direct requests only"

        cleared = await data(http, SET_SHADOW, "setShadow", input={"model": model, "versions": []})
        assert cleared["model"]["shadowVersions"] == []
        assert cleared["model"]["shadowHistory"][0] == {
            "versions": [],
            "sample": None,
            "changedBy": None,
        }
        after = await predict(http, model, POINTS[:1])
        await settled(app)
        assert (await data(http, SHADOWS, "prediction", id=after[0]["id"]))["shadows"] == []


async def shadow_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(text("SELECT count(*) FROM shadow_predictions"))


async def scrape(http: httpx.AsyncClient, outcome: str) -> float:
    response = await http.get("/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "modelql_shadow_rows_total" and sample.labels == {"outcome": outcome}
    )


async def test_a_full_queue_sheds_the_request_and_counts_it(
    database_url: str, data_dir: Path, engine: AsyncEngine, model: str
):
    settings = make_settings(database_url, data_dir, shadow_queue=3)
    async with running_app(settings) as (app, http):
        await data(
            http,
            SET_SHADOW,
            "setShadow",
            input={"model": model, "versions": [{"version": 2}], "sample": 1},
        )
        shed_before = await scrape(http, "shed")
        await predict(http, model, POINTS[:4])  # 4 rows: more than the queue holds
        await predict(http, model, POINTS[:3])  # 3 rows: fit
        await settled(app)
        assert await scrape(http, "shed") - shed_before == 4
        assert await shadow_rows(engine) == 3


async def test_a_graceful_stop_drains_the_queue(
    shadow_settings: Settings, engine: AsyncEngine, model: str
):
    async with running_app(shadow_settings) as (_, http):
        await data(
            http,
            SET_SHADOW,
            "setShadow",
            input={"model": model, "versions": [{"version": 2}, {"version": 3}], "sample": 1},
        )
        await asyncio.gather(*(predict(http, model, POINTS) for _ in range(10)))
    # the lifespan ended right after the last answer: the stop scored what was queued
    assert await shadow_rows(engine) == 2 * 10 * len(POINTS)


async def test_compare_versions_shadow_pairs_the_versions_on_outcomes(
    shadow_settings: Settings, model: str
):
    async with running_app(shadow_settings) as (app, http):
        await data(
            http,
            SET_SHADOW,
            "setShadow",
            input={"model": model, "versions": [{"version": 2}], "sample": 1},
        )
        points = POINTS * 3
        primaries = await predict(http, model, points)
        await settled(app)
        labels, shadows = [], []
        for primary in primaries:
            found = await data(http, SHADOWS, "prediction", id=primary["id"])
            labels.append(found["label"])
            shadows.append(found["shadows"][0]["label"])

        before = await data(http, COMPARE, "compareVersions", m=model, v=2)
        agreement = sum(a == b for a, b in zip(labels, shadows, strict=True)) / len(labels)
        assert before["source"] == "SHADOW"
        assert (before["compared"], before["skipped"]) == (len(points), 0)
        assert before["agreement"] == pytest.approx(agreement)
        assert 0 < agreement < 1, "the example needs both agreement and disagreement"
        assert before["paired"] is None, "no outcome yet"

        truths = ["high" if a + b >= 4 else "low" for a, b in points]
        outcomes = [
            {"predictionId": p["id"], "label": truth}
            for p, truth in zip(primaries, truths, strict=True)
        ]
        recorded = await data(http, RECORD, "recordOutcomes", outcomes=outcomes)
        assert recorded["userErrors"] == []

        paired = (await data(http, COMPARE, "compareVersions", m=model, v=2))["paired"]
        only_primary = sum(p == t != s for p, s, t in zip(labels, shadows, truths, strict=True))
        only_shadow = sum(s == t != p for p, s, t in zip(labels, shadows, truths, strict=True))
        assert (paired["metric"], paired["test"], paired["pairs"]) == (
            "accuracy",
            "mcnemar_exact",
            len(points),
        )
        assert (paired["baselineOnly"], paired["candidateOnly"]) == (only_primary, only_shadow)
        n = len(points)
        assert paired["baseline"] == pytest.approx(sum(map(str.__eq__, labels, truths)) / n)
        assert paired["candidate"] == pytest.approx(sum(map(str.__eq__, shadows, truths)) / n)
        assert paired["difference"] == pytest.approx((only_shadow - only_primary) / n)
        discordant = only_primary + only_shadow
        expected_p = stats.binomtest(min(only_primary, only_shadow), discordant).pvalue
        assert paired["pValue"] == pytest.approx(expected_p if discordant else 1.0)
        assert paired["confidenceLevel"] == 0.95
        assert paired["confidenceLow"] <= paired["difference"] <= paired["confidenceHigh"]

        # a filter narrows the primaries compared (a window or a caller, after a large job)
        served_low = await data(
            http,
            """query($m: String!) { compareVersions(model: $m, candidate: {version: 2},
                 source: SHADOW, filter: {label: "low"}) { compared agreement } }""",
            "compareVersions",
            m=model,
        )
        low = [shadow for label, shadow in zip(labels, shadows, strict=True) if label == "low"]
        assert 0 < len(low) < len(points)
        assert served_low["compared"] == len(low)
        assert served_low["agreement"] == pytest.approx(low.count("low") / len(low))
        stamped = await data(
            http,
            "query($id: ID!) { prediction(id: $id) { createdAt } }",
            "prediction",
            id=primaries[0]["id"],
        )
        window = """query($m: String!, $f: PredictionFilter) { compareVersions(model: $m,
                 candidate: {version: 2}, source: SHADOW, filter: $f) { compared } }"""
        for bound, compared in (("createdAfter", len(points)), ("createdBefore", 0)):
            found = await data(
                http, window, "compareVersions", m=model, f={bound: stamped["createdAt"]}
            )
            assert found["compared"] == compared, bound

        # promotion records the comparison it was based on
        moved = await data(
            http,
            """mutation($m: String!) { setAlias(input: {model: $m, alias: "production",
                 version: 2, basedOn: {source: SHADOW, sample: 100}}) {
                 userErrors { field code } } }""",
            "setAlias",
            m=model,
        )
        assert moved["userErrors"] == []
        history = await data(
            http,
            """query($m: String!) { model(name: $m) { aliasHistory(alias: "production") {
                 toVersion { number } basedOn { source candidate baseline compared agreement
                 paired { pairs pValue difference baselineOnly candidateOnly } } } } }""",
            "model",
            m=model,
        )
        newest, first = history["aliasHistory"]
        assert newest["toVersion"] == {"number": 2}
        assert newest["basedOn"] == {
            "source": "SHADOW",
            "candidate": 2,
            "baseline": None,
            "compared": len(points),
            "agreement": pytest.approx(agreement),
            "paired": {
                "pairs": n,
                "pValue": pytest.approx(paired["pValue"]),
                "difference": pytest.approx(paired["difference"]),
                "baselineOnly": only_primary,
                "candidateOnly": only_shadow,
            },
        }
        assert first["basedOn"] is None, "a move without basedOn keeps none"


async def test_a_regressor_shadow_is_paired_on_absolute_errors(
    shadow_settings: Settings, sessionmaker, artifact_store: ArtifactStore
):
    name = f"zz-shadow-reg-{uuid.uuid4().hex[:10]}"
    target = X[:, 0] * 2.0 + X[:, 1]
    for number, alpha in enumerate((0.01, 10.0), start=1):
        described = registration.VersionRegistration(
            model_name=name,
            task="REGRESSION",
            algorithm="sklearn.linear_model.Ridge",
            framework_version=sklearn.__version__,
            signature=SIGNATURE,
            labels=None,
            aliases=["production"] if number == 1 else [],
        )
        async with sessionmaker.begin() as session:
            await registration.register_version(
                session, artifact_store, described, estimator=Ridge(alpha=alpha).fit(X, target)
            )
    async with running_app(shadow_settings) as (app, http):
        await data(
            http,
            SET_SHADOW,
            "setShadow",
            input={"model": name, "versions": [{"version": 2}], "sample": 1},
        )
        instances = [{"a": a, "b": b} for a, b in POINTS]
        made = await data(
            http,
            """mutation($input: CreatePredictionsInput!) { createPredictions(input: $input) {
                 predictions { id value } userErrors { code } } }""",
            "createPredictions",
            input={"model": name, "instances": instances},
        )
        await settled(app)
        truths = [a * 2.0 + b + 0.3 for a, b in POINTS]
        recorded = await data(
            http,
            RECORD,
            "recordOutcomes",
            outcomes=[
                {"predictionId": p["id"], "value": truth}
                for p, truth in zip(made["predictions"], truths, strict=True)
            ],
        )
        assert recorded["userErrors"] == []
        shadow_values = []
        for primary in made["predictions"]:
            found = await data(
                http,
                """query($id: ID!) { prediction(id: $id) { shadows { value } } }""",
                "prediction",
                id=primary["id"],
            )
            shadow_values.append(found["shadows"][0]["value"])
        found = await data(
            http,
            """query($m: String!) { compareVersions(model: $m, candidate: {version: 2},
                 source: SHADOW) { compared meanAbsoluteDifference
                 paired { metric test pairs baseline candidate difference
                          confidenceLow confidenceHigh pValue } } }""",
            "compareVersions",
            m=name,
        )
    served = [p["value"] for p in made["predictions"]]
    before = [abs(v - t) for v, t in zip(served, truths, strict=True)]
    after = [abs(v - t) for v, t in zip(shadow_values, truths, strict=True)]
    expected = stats.ttest_rel(after, before)
    interval = expected.confidence_interval(0.95)
    paired = found["paired"]
    assert found["compared"] == len(POINTS)
    assert found["meanAbsoluteDifference"] == pytest.approx(
        sum(abs(s - v) for s, v in zip(shadow_values, served, strict=True)) / len(POINTS)
    )
    assert (paired["metric"], paired["test"], paired["pairs"]) == ("mae", "paired_t", len(POINTS))
    assert paired["baseline"] == pytest.approx(sum(before) / len(before))
    assert paired["candidate"] == pytest.approx(sum(after) / len(after))
    assert paired["difference"] == pytest.approx((sum(after) - sum(before)) / len(before))
    assert paired["pValue"] == pytest.approx(expected.pvalue)
    assert paired["confidenceLow"] == pytest.approx(interval.low)
    assert paired["confidenceHigh"] == pytest.approx(interval.high)


# --- the live tail ------------------------------------------------------------------------

TAIL = """subscription($filter: PredictionFilter) { predictionsCreated(filter: $filter) {
  id label shadows { label refusal modelVersion { number } } } }"""
TAIL_WITHOUT_SHADOWS = """subscription($filter: PredictionFilter) {
  predictionsCreated(filter: $filter) { id label } }"""


async def until_quiet(connection: Subscriptions, quiet_s: float = 1.0) -> list[dict]:
    """Every message received until none arrives for `quiet_s` (the shadow queue gathers
    for 0.25 s before it scores)."""
    messages = []
    while True:
        try:
            messages.append(await connection.receive(within=quiet_s))
        except TimeoutError:
            return messages


async def test_the_live_tail_sends_shadow_answers_to_subscribers_that_select_them(
    shadow_settings: Settings, model: str
):
    """A subscriber selecting `shadows` gets the predictions as they commit, then the same
    predictions again, with their shadows, once the shadow answers commit; a subscriber that
    does not select `shadows` gets each prediction once. Filters apply to both."""
    async with served(shadow_settings) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            await data(
                http,
                SET_SHADOW,
                "setShadow",
                input={"model": model, "versions": [{"version": 2}, {"version": 3}], "sample": 1},
            )
        async with Subscriptions.open(server.url) as connection:
            await connection.acknowledged()
            mine = {"filter": {"model": model}}
            with_shadows = await connection.subscribe(TAIL, mine)
            without = await connection.subscribe(TAIL_WITHOUT_SHADOWS, mine)
            other_model = await connection.subscribe(TAIL, {"filter": {"model": "wine-classifier"}})
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(base_url=server.url) as http:
                primaries = await predict(http, model, POINTS)
            ids = [primary["id"] for primary in primaries]

            received: dict[str, list[list[dict]]] = {with_shadows: [], without: []}
            for message in await until_quiet(connection):
                assert message["type"] == "next", message
                assert message["id"] != other_model, "a filter applies to shadow groups too"
                received[message["id"]].append(message["payload"]["data"]["predictionsCreated"])

    assert [[p["id"] for p in m] for m in received[without]] == [ids], "once, as stored"
    first, *later = received[with_shadows]
    assert [p["id"] for p in first] == ids
    assert len(later) == 1, "one message for the shadow transaction, not one per row"
    [shadowed] = later
    assert [p["id"] for p in shadowed] == ids
    for primary, sent in zip(primaries, shadowed, strict=True):
        assert sent["label"] == primary["label"]
        assert sorted(s["modelVersion"]["number"] for s in sent["shadows"]) == [2, 3]
        by_version = {s["modelVersion"]["number"]: s for s in sent["shadows"]}
        assert by_version[3]["label"] == primary["label"], "v3 is trained like v1"
