"""The hand-written read peer: FastAPI routes over one asyncpg pool, SQL written by hand against
ModelQL's tables, each route answering with the JSON ModelQL's GraphQL answer to the same
question has (`{"data": ...}`, same shape and values), as a team would write them.

    python bench/peers/reads.py --port 8103 --database-url postgresql://...

GET /catalogue                                     the nested catalogue
GET /predictions?model=M&first=50                  an audit page, newest first
GET /stats?model=M[&created_after=&created_before=] count and counts per label (whole days)
GET /node/{global id}                              one prediction
GET /models/{name}/live-metric?name=accuracy       LIVE accuracy of each version
GET /models/{name}/versions/{number}/drift         PSI of each input feature
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import ORJSONResponse

DRIFT_SAMPLE = 10_000
DRIFT_MIN_SAMPLE = 30
DRIFT_THRESHOLD = 0.2
"""ModelQL's default drift policy."""

CATALOGUE_MODELS = """
SELECT m.name, v.id, v.number, v.algorithm, v.input_schema::text AS input_schema
FROM (SELECT id, name FROM models ORDER BY name LIMIT 20) AS m
LEFT JOIN LATERAL (
    SELECT v.* FROM model_versions AS v
    LEFT JOIN model_aliases AS a ON a.version_id = v.id AND a.alias = 'production'
    WHERE v.model_id = m.id
    ORDER BY a.id IS NULL, v.number DESC
    LIMIT 1
) AS v ON true
ORDER BY m.name
"""
TEST_METRICS = """
SELECT version_id, slice, metric, value, num_samples FROM performance_metrics
WHERE version_id = ANY($1::uuid[]) AND split = 'TEST'
ORDER BY id
"""
AUDIT_PAGE = """
SELECT p.id, p.label, p.confidence, p.created_at, v.number
FROM predictions AS p JOIN model_versions AS v ON v.id = p.model_version_id
WHERE p.model_id = (SELECT id FROM models WHERE name = $1)
ORDER BY p.created_at DESC, p.id DESC
LIMIT $2
"""
LABEL_COUNTS = """
SELECT nullif(label, '') AS label, sum(count)::int8 AS count,
       sum(sum(count)) OVER ()::int8 AS total
FROM prediction_daily_rollups
WHERE model_id = (SELECT id FROM models WHERE name = $1)
  AND day >= coalesce($2::timestamptz, '-infinity') AND day < coalesce($3::timestamptz, 'infinity')
GROUP BY label
ORDER BY count DESC, nullif(label, '')
LIMIT 100
"""
PREDICTION = """
SELECT p.id, p.label, p.confidence, p.latency_ms, p.created_at, p.inputs::text AS inputs,
       p.probabilities::text AS probabilities, v.number
FROM predictions AS p JOIN model_versions AS v ON v.id = p.model_version_id
WHERE p.id = $1
"""
LIVE_PAIRS = """
SELECT v.number, r.correct, r.labelled
FROM model_versions AS v
CROSS JOIN LATERAL (
    SELECT sum(count) FILTER (WHERE predicted = observed AND predicted <> '')::int8 AS correct,
           sum(count)::int8 AS labelled
    FROM outcome_rollups WHERE model_version_id = v.id
) AS r
WHERE v.model_id = (SELECT id FROM models WHERE name = $1)
ORDER BY v.number DESC
LIMIT 20
"""
VERSION_PROFILE = """
SELECT v.id, v.input_schema::text AS input_schema, r.profile::text AS profile
FROM model_versions AS v
JOIN models AS m ON m.id = v.model_id
LEFT JOIN reference_profiles AS r ON r.version_id = v.id
WHERE m.name = $1 AND v.number = $2
"""
DRIFT_BINS = """
WITH features AS MATERIALIZED (
    SELECT position, name, kind,
           ARRAY(SELECT jsonb_array_elements_text(edges::jsonb)::float8) AS edges
    FROM unnest($2::int4[], $3::text[], $4::text[], $5::text[]) AS f(position, name, kind, edges)
),
sample AS (
    SELECT inputs FROM predictions WHERE model_version_id = $1
    ORDER BY created_at DESC LIMIT $6
)
SELECT f.position,
       CASE WHEN f.kind <> 'numeric' THEN s.inputs ->> f.name
            WHEN jsonb_typeof(s.inputs -> f.name) = 'number'
            THEN width_bucket((s.inputs ->> f.name)::float8, f.edges)::text END AS bin,
       count(*) AS count
FROM features AS f CROSS JOIN sample AS s
GROUP BY 1, 2
"""


def global_id(type_name: str, local: uuid.UUID) -> str:
    """ModelQL's opaque id: base64url of "<Type>:<uuid>", unpadded."""
    raw = f"{type_name}:{local}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def local_id(value: str) -> tuple[str, uuid.UUID]:
    """The type name and uuid of a global id; 404 when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        type_name, local = raw.split(":", 1)
        return type_name, uuid.UUID(local)
    except ValueError:
        raise HTTPException(404, "not an id") from None


def whole_day(moment: datetime | None) -> datetime | None:
    """A window's edge must be a UTC midnight: the daily roll-ups answer whole days."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    if (utc.hour, utc.minute, utc.second, utc.microsecond) != (0, 0, 0, 0):
        raise HTTPException(422, "created_after and created_before must be UTC midnights")
    return utc


def catalogue_entry(row: asyncpg.Record, metrics: Sequence[asyncpg.Record]) -> dict[str, Any]:
    """One model with its default version, its TEST f1_macro and TEST metrics per slice."""
    if row["id"] is None:
        return {"name": row["name"], "defaultVersion": None}
    slices: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        entry = slices.setdefault(
            metric["slice"],
            {"slice": metric["slice"], "numSamples": metric["num_samples"], "metrics": []},
        )
        entry["metrics"].append({"name": metric["metric"], "value": metric["value"]})
    f1 = next(
        (m["value"] for m in metrics if m["slice"] == "overall" and m["metric"] == "f1_macro"),
        None,
    )
    schema = json.loads(row["input_schema"])
    return {
        "name": row["name"],
        "defaultVersion": {
            "number": row["number"],
            "algorithm": row["algorithm"],
            "f1": f1,
            "inputSchema": [
                {
                    "name": spec["name"],
                    "type": spec["type"],
                    "minimum": spec.get("minimum"),
                    "maximum": spec.get("maximum"),
                }
                for spec in schema
            ],
            "performance": list(slices.values()),
        },
    }


def stability_index(reference: Sequence[float], live: Sequence[int], reference_size: int) -> float:
    """PSI, both sides smoothed by half a count per bin."""
    bins, total = len(live), sum(live)
    index = 0.0
    for share, count in zip(reference, live, strict=True):
        expected = (share * reference_size + 0.5) / (reference_size + 0.5 * bins)
        observed = (count + 0.5) / (total + 0.5 * bins)
        index += (observed - expected) * math.log(observed / expected)
    return index


def feature_drift(
    name: str, reference: dict[str, Any], counts: dict[str | None, int], size: int
) -> dict[str, Any]:
    """Reference shares and live counts per bin ("(other)", "(missing)" appended when either
    side has any), then the PSI and whether it passes the threshold."""
    if reference["kind"] == "numeric":  # width_bucket's bin numbers
        keys = [str(number) for number in range(len(reference["shares"]))]
        shares = list(reference["shares"])
    else:
        keys, shares = list(reference["categories"]), list(reference["categories"].values())
    live = [counts.get(key, 0) for key in keys]
    other = sum(n for key, n in counts.items() if key is not None and key not in keys)
    for count, share in ((other, 0.0), (counts.get(None, 0), reference["missing"])):
        if count or share:
            live.append(count)
            shares.append(share)
    score = stability_index(shares, live, size) if sum(live) >= DRIFT_MIN_SAMPLE else None
    return {
        "feature": name,
        "score": score,
        "drifted": None if score is None else score > DRIFT_THRESHOLD,
    }


async def bin_counts(
    connection: asyncpg.Connection,
    version_id: uuid.UUID,
    signature: list[str],
    references: dict[str, dict[str, Any]],
) -> dict[int, dict[str | None, int]]:
    """Signature position -> bin -> live count, over the version's newest predictions, for
    the profiled features (one statement)."""
    profiled = [(p, feature) for p, feature in enumerate(signature) if feature in references]
    rows = await connection.fetch(
        DRIFT_BINS,
        version_id,
        [position for position, _ in profiled],
        [feature for _, feature in profiled],
        [references[feature]["kind"] for _, feature in profiled],
        [json.dumps(references[feature]["edges"]) for _, feature in profiled],
        DRIFT_SAMPLE,
    )
    counts: dict[int, dict[str | None, int]] = {}
    for row in rows:
        counts.setdefault(row["position"], {})[row["bin"]] = row["count"]
    return counts


def create_app(database_url: str) -> FastAPI:
    """The routes, over one asyncpg pool opened with the app."""
    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(
            database_url,
            min_size=2,
            max_size=10,
            server_settings={"application_name": "peer-reads", "jit": "off"},
        )
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan, default_response_class=ORJSONResponse)

    def db() -> asyncpg.Pool:
        assert pool is not None, "the pool opens with the app"
        return pool

    @app.get("/catalogue")
    async def catalogue() -> dict[str, Any]:
        async with db().acquire() as connection:
            models = await connection.fetch(CATALOGUE_MODELS)
            versions = [row["id"] for row in models if row["id"] is not None]
            metrics = await connection.fetch(TEST_METRICS, versions)
        by_version: dict[uuid.UUID, list[asyncpg.Record]] = {}
        for metric in metrics:
            by_version.setdefault(metric["version_id"], []).append(metric)
        nodes = [catalogue_entry(row, by_version.get(row["id"], [])) for row in models]
        return {"data": {"models": {"nodes": nodes}}}

    @app.get("/predictions")
    async def predictions(model: str, first: int = 50) -> dict[str, Any]:
        rows = await db().fetch(AUDIT_PAGE, model, min(first, 100))
        nodes = [
            {
                "id": global_id("Prediction", row["id"]),
                "label": row["label"],
                "confidence": row["confidence"],
                "createdAt": row["created_at"].isoformat(),
                "modelVersion": {"number": row["number"]},
            }
            for row in rows
        ]
        return {"data": {"predictions": {"nodes": nodes}}}

    @app.get("/stats")
    async def stats(
        model: str, created_after: datetime | None = None, created_before: datetime | None = None
    ) -> dict[str, Any]:
        rows = await db().fetch(
            LABEL_COUNTS, model, whole_day(created_after), whole_day(created_before)
        )
        groups = [{"label": row["label"], "count": row["count"]} for row in rows]
        total = rows[0]["total"] if rows else 0
        return {"data": {"predictionStats": {"count": total, "groups": groups}}}

    @app.get("/node/{node_id}")
    async def node(node_id: str) -> dict[str, Any]:
        type_name, local = local_id(node_id)
        row = await db().fetchrow(PREDICTION, local) if type_name == "Prediction" else None
        if row is None:
            return {"data": {"node": None}}
        probabilities = row["probabilities"]
        return {
            "data": {
                "node": {
                    "id": node_id,
                    "label": row["label"],
                    "confidence": row["confidence"],
                    "latencyMs": row["latency_ms"],
                    "createdAt": row["created_at"].isoformat(),
                    "inputs": json.loads(row["inputs"]),
                    "probabilities": json.loads(probabilities) if probabilities else None,
                    "modelVersion": {"number": row["number"]},
                }
            }
        }

    @app.get("/models/{name}/live-metric")
    async def live_metric(name: str, metric: str = "accuracy") -> dict[str, Any]:
        if metric != "accuracy":
            raise HTTPException(422, "only accuracy is computed here")
        rows = await db().fetch(LIVE_PAIRS, name)
        nodes = [
            {
                "number": row["number"],
                "accuracy": (row["correct"] or 0) / row["labelled"] if row["labelled"] else None,
            }
            for row in rows
        ]
        return {"data": {"model": {"versions": {"nodes": nodes}} if rows else None}}

    @app.get("/models/{name}/versions/{number}/drift")
    async def drift(name: str, number: int) -> dict[str, Any]:
        async with db().acquire() as connection:
            version = await connection.fetchrow(VERSION_PROFILE, name, number)
            if version is None:
                return {"data": {"modelVersion": None}}
            signature = [spec["name"] for spec in json.loads(version["input_schema"])]
            if version["profile"] is None:
                return {"data": {"modelVersion": {"inputDrift": {"features": []}}}}
            profile = json.loads(version["profile"])
            references = {feature["name"]: feature for feature in profile["features"]}
            counts = await bin_counts(connection, version["id"], signature, references)
        size = profile["sample_size"]
        features = [
            feature_drift(feature, references[feature], counts.get(position, {}), size)
            if feature in references
            else {"feature": feature, "score": None, "drifted": None}
            for position, feature in enumerate(signature)
        ]
        return {"data": {"modelVersion": {"inputDrift": {"features": features}}}}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    options = parser.parse_args()
    app = create_app(options.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
