"""The naive peer: the bare endpoint plus what a team adds by hand to keep predictions: one
INSERT and one COMMIT per request through an SQLAlchemy async session (durable, like ModelQL).

    python bench/peers/naive.py --port 8102 --artifact PATH --features a,b --labels x,y \\
        --database-url postgresql://...
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import datetime
from typing import Any

import joblib
import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import DateTime, Double, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class PeerPrediction(Base):
    __tablename__ = "peer_predictions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    label: Mapped[str] = mapped_column(Text)
    probabilities: Mapped[list[float]] = mapped_column(JSONB)
    confidence: Mapped[float] = mapped_column(Double)
    latency_ms: Mapped[float] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PredictRequest(BaseModel):
    features: dict[str, float]


class BatchRequest(BaseModel):
    instances: list[dict[str, float]]


def create_app(artifact: str, features: list[str], labels: list[str], database_url: str) -> FastAPI:
    model = joblib.load(artifact)
    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://"))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    app = FastAPI()

    @app.on_event("startup")
    async def create_table() -> None:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)

    def score(rows: list[dict[str, float]]) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        matrix = np.array([[row[name] for name in features] for row in rows])
        return model.predict_proba(matrix), (time.perf_counter() - started) * 1000

    @app.post("/predict")
    async def predict(request: PredictRequest) -> dict[str, object]:
        [probabilities], latency_ms = score([request.features])
        best = int(np.argmax(probabilities))
        row = PeerPrediction(
            inputs=request.features,
            label=labels[best],
            probabilities=probabilities.tolist(),
            confidence=float(probabilities[best]),
            latency_ms=latency_ms,
        )
        async with sessions.begin() as session:
            session.add(row)
        return {"id": str(row.id), "label": row.label, "confidence": row.confidence}

    @app.post("/predict_batch")
    async def predict_batch(request: BatchRequest) -> dict[str, object]:
        probabilities, latency_ms = score(request.instances)
        rows = [
            PeerPrediction(
                inputs=features,
                label=labels[int(np.argmax(p))],
                probabilities=p.tolist(),
                confidence=float(p.max()),
                latency_ms=latency_ms / len(request.instances),
            )
            for features, p in zip(request.instances, probabilities, strict=True)
        ]
        async with sessions.begin() as session:
            session.add_all(rows)
        return {"ids": [str(row.id) for row in rows]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--features", required=True)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--database-url", required=True)
    options = parser.parse_args()
    app = create_app(
        options.artifact,
        options.features.split(","),
        options.labels.split(","),
        options.database_url,
    )
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
