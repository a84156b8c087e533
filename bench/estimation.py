"""Measures performance estimation (CBPE, `estimatedPerformance`): for every demo classifier,
a labelled reference stream, then held-back streams from the same distribution whose outcomes
are recorded afterwards: as drawn (no drift: the estimation error) and with a share of the
outcomes moved to the next class (concept drift: the gap). Everything goes through the GraphQL
API of an in-process app (ASGI) on a fresh database; fixed seeds.

    .venv/bin/python bench/estimation.py [--reference 1000] [--stream 1000] [--seeds 3]

Uses DATABASE_URL's server, else PostgreSQL on 127.0.0.1:5432 (user postgres); creates its
own database and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import numpy as np
from sqlalchemy.engine import make_url

from modelql import schema_migrations
from modelql.app import create_app
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import DEMO_RECIPES, labelled_stream, load_dataset, train_demo
from modelql.models.vocabulary import Task
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.services import registration
from modelql.settings import Settings

METRICS = ("accuracy", "f1_macro", "roc_auc")
DRIFTS = (0.0, 0.1, 0.2, 0.4)
"""Share of the held-back outcomes moved to the next class."""

PREDICT = """mutation($input: CreatePredictionsInput!) { createPredictions(input: $input) {
  predictions { id createdAt } userErrors { message } } }"""
RECORD = """mutation($outcomes: [OutcomeInput!]!) { recordOutcomes(input: {outcomes: $outcomes}) {
  userErrors { message } } }"""
ESTIMATE = """query($model: String!, $version: Int!, $since: DateTime, $until: DateTime,
                   $referenceSince: DateTime, $reference: DateTime) {
  modelVersion(model: $model, version: $version) {
    estimatedPerformance(
      since: $since, until: $until, referenceSince: $referenceSince, referenceUntil: $reference
    ) {
      referenceSize sampleSize
      overall { estimated { name value } realised { name value } gap { name value } } } } }"""


async def _post(http: httpx.AsyncClient, query: str, variables: dict) -> dict:
    body = (await http.post("/graphql", json={"query": query, "variables": variables})).json()
    if "errors" in body:
        raise SystemExit(str(body["errors"]))
    return body["data"]


async def _predict(http: httpx.AsyncClient, model: str, version: int, rows: list) -> list[dict]:
    made: list[dict] = []
    for start in range(0, len(rows), 1000):
        data = await _post(
            http,
            PREDICT,
            {"input": {"model": model, "version": version, "instances": rows[start:][:1000]}},
        )
        if data["createPredictions"]["userErrors"]:
            raise SystemExit(str(data["createPredictions"]["userErrors"][:3]))
        made += data["createPredictions"]["predictions"]
    return made


async def _label(http: httpx.AsyncClient, made: list[dict], truths: list[str]) -> None:
    outcomes = [{"predictionId": p["id"], "label": t} for p, t in zip(made, truths, strict=True)]
    for start in range(0, len(outcomes), 1000):
        data = await _post(http, RECORD, {"outcomes": outcomes[start:][:1000]})
        if data["recordOutcomes"]["userErrors"]:
            raise SystemExit(str(data["recordOutcomes"]["userErrors"][:3]))


def _drifted(truths: list[str], labels: list[str], share: float, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        labels[(labels.index(t) + 1) % len(labels)] if rng.random() < share else t for t in truths
    ]


async def measure(http: httpx.AsyncClient, reference: int, stream: int, seeds: int) -> None:
    classifiers = [
        (recipe, number)
        for recipe in DEMO_RECIPES
        if recipe.task is Task.CLASSIFICATION
        for number in range(1, len(recipe.versions) + 1)
    ]
    errors: dict[str, list[float]] = {name: [] for name in METRICS}
    gaps: dict[float, dict[str, list[float]]] = {d: {n: [] for n in METRICS} for d in DRIFTS}
    timings: list[float] = []
    print("| model | v | seed | drift | " + " | ".join(f"{m} est / real" for m in METRICS))
    print("|---|---:|---:|---:|" + "---|" * len(METRICS))
    for recipe, number in classifiers:
        for seed in range(seeds):
            rng = np.random.default_rng(1000 * number + seed)
            total = reference + stream * len(DRIFTS)
            rows, truths = labelled_stream(recipe, total, rng)
            labels = list(load_dataset(recipe).labels or ())
            made = await _predict(http, recipe.name, number, rows[:reference])
            reference_since = min(p["createdAt"] for p in made)
            await _label(http, made, truths[:reference])
            starts: list[str] = []
            for position, drift in enumerate(DRIFTS):
                start = reference + position * stream
                made = await _predict(http, recipe.name, number, rows[start : start + stream])
                starts.append(min(p["createdAt"] for p in made))
                held = truths[start : start + stream]
                await _label(http, made, _drifted(held, labels, drift, seed))
            ends = [*starts[1:], None]
            for position, drift in enumerate(DRIFTS):
                window = {
                    "model": recipe.name,
                    "version": number,
                    "since": starts[position],
                    "until": ends[position],
                    "referenceSince": reference_since,
                    "reference": starts[0],
                }
                started = time.perf_counter()
                data = await _post(http, ESTIMATE, window)
                timings.append((time.perf_counter() - started) * 1000)
                overall = data["modelVersion"]["estimatedPerformance"]["overall"]
                estimated = {m["name"]: m["value"] for m in overall["estimated"]}
                realised = {m["name"]: m["value"] for m in overall["realised"]}
                for name in METRICS:
                    gap = realised[name] - estimated[name]
                    gaps[drift][name].append(gap)
                    if drift == 0.0:
                        errors[name].append(abs(gap))
                cells = " | ".join(f"{estimated[m]:.3f} / {realised[m]:.3f}" for m in METRICS)
                print(f"| {recipe.name} | {number} | {seed} | {drift:.1f} | {cells}", flush=True)
    print("\nNo drift, |estimated - realised| over every classifier and seed:")
    print("| metric | mean | max |\n|---|---:|---:|")
    for name, values in errors.items():
        print(f"| {name} | {statistics.mean(values):.4f} | {max(values):.4f} |")
    print("\nMean gap (realised - estimated) by share of outcomes moved to another class:")
    print("| drift | " + " | ".join(METRICS) + " |\n|---:|" + "---:|" * len(METRICS))
    for drift, by_metric in gaps.items():
        cells = " | ".join(f"{statistics.mean(by_metric[name]):+.4f}" for name in METRICS)
        print(f"| {drift:.1f} | {cells} |")
    print(
        f"\nestimatedPerformance over {stream:,} predictions, calibrated on {reference:,}: "
        f"median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms "
        f"({len(timings)} queries, response cache off)"
    )


async def measure_large(http: httpx.AsyncClient, count: int) -> None:
    """The cost of one estimate over `count` more predictions of iris v1 (the settings' bounds:
    the newest MODELQL_ESTIMATION_MAX_SAMPLE, calibrated on the newest
    MODELQL_ESTIMATION_REFERENCE_SIZE labelled)."""
    recipe = next(recipe for recipe in DEMO_RECIPES if recipe.name == "iris-classifier")
    rows, _ = labelled_stream(recipe, count, np.random.default_rng(99))
    made = await _predict(http, recipe.name, 1, rows)
    since = min(p["createdAt"] for p in made)
    variables = {"model": recipe.name, "version": 1, "since": since}
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        data = await _post(http, ESTIMATE, variables)
        timings.append((time.perf_counter() - started) * 1000)
    report = data["modelVersion"]["estimatedPerformance"]
    print(
        f"estimatedPerformance over {report['sampleSize']:,} predictions, calibrated on "
        f"{report['referenceSize']:,}: median {statistics.median(timings):.0f} ms, "
        f"min {min(timings):.0f} ms (5 queries)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--stream", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--large", type=int, default=0, help="Then time one estimate over this many more."
    )
    options = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"modelql_bench_{uuid.uuid4().hex[:8]}"
    libpq = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(libpq)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory(prefix="mqbench") as data:
            await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
            engine = create_engine(url)
            async with create_sessionmaker(engine).begin() as session:
                store = ArtifactStore(Path(data) / "artifacts")
                (Path(data) / "artifacts").mkdir(parents=True, exist_ok=True)
                await registration.register_demo(session, store, train_demo(), actor="bench")
            await engine.dispose()
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                database_url=url,
                data_dir=Path(data),
                auto_migrate=False,
                log_json=False,
                log_level="WARNING",
                response_cache=False,
            )
            app = create_app(settings, database_url=url)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://127.0.0.1"
                ) as http:
                    await measure(http, options.reference, options.stream, options.seeds)
                    if options.large:
                        await measure_large(http, options.large)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
