"""Time from an alert's condition to its firing, with the background alerting of two
replicas racing on one database (real clock, no test harness).

    .venv/bin/python bench/alert_firing.py [--period 2] [--trials 5]

Each trial: a VOLUME >= 1 rule (window 60 s, for 0) on a model with no predictions; one
prediction is committed at a random moment of a period (the condition holds from its COMMIT);
the time until the rule reads `firing` is measured by polling the rule's row every 10 ms.
The goal is at most one period plus 1 s; the script prints each trial and the worst."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql import schema_migrations
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.persistence.tables import AlertRule, Model, ModelVersion, Prediction
from modelql.services.alert_delivery import AlertDeliverer
from modelql.services.alert_evaluation import AlertEvaluator
from modelql.services.alert_rules import AlertRuleInput, AlertRules, Comparison, Signal
from modelql.services.alerting import Alerting
from modelql.services.catalogue import Catalogue
from modelql.services.drift import DriftPolicy
from modelql.services.freshness import Freshness

SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def new_evaluator(
    sessionmaker: async_sessionmaker[AsyncSession], period_s: float, name: str
) -> AlertEvaluator:
    """An evaluator with a catalogue of its own (no listener: it re-reads every 0 s)."""
    catalogue = Catalogue(Freshness(max_staleness_s=0.0, listening_since=lambda: None))
    return AlertEvaluator(
        sessionmaker,
        period_s=period_s,
        name=name,
        catalogue=catalogue,
        drift_policy=DriftPolicy(),
    )


async def _database() -> str:
    name = f"modelql_bench_alerts_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(SERVER).set(database=name).render_as_string(hide_password=False)


async def _drop(url: str) -> None:
    connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await connection.close()


async def main(period_s: float, trials: int) -> None:
    url = await _database()
    try:
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        engine = create_engine(url)
        sessionmaker = create_sessionmaker(engine)
        replicas = [
            Alerting(
                new_evaluator(sessionmaker, period_s, name),
                AlertDeliverer(sessionmaker),
                period_s=period_s,
            )
            for name in ("one", "two")
        ]
        for replica in replicas:
            await replica.start()
        rules = AlertRules(sessionmaker, allow_private=True)
        worst = 0.0
        try:
            for trial in range(trials):
                model_id, version_id = uuid.uuid4(), uuid.uuid4()
                async with sessionmaker.begin() as session:
                    session.add(Model(id=model_id, name=f"bench-{trial}", task="REGRESSION"))
                    await session.flush()
                    session.add(
                        ModelVersion(
                            id=version_id,
                            model_id=model_id,
                            number=1,
                            algorithm="bench",
                            framework="bench",
                            framework_version="0",
                            artifact_path="bench",
                            artifact_sha256="0" * 64,
                            input_schema=[],
                        )
                    )
                created = await rules.create(
                    AlertRuleInput(
                        name=f"bench-{trial}",
                        model=f"bench-{trial}",
                        signal=Signal.VOLUME,
                        comparison=Comparison.GTE,
                        threshold=1.0,
                        window_s=60.0,
                        for_s=0.0,
                    )
                )
                await asyncio.sleep(random.uniform(0, period_s))
                async with sessionmaker.begin() as session:
                    await session.execute(
                        insert(Prediction).values(
                            id=uuid.uuid4(),
                            model_id=model_id,
                            model_version_id=version_id,
                            inputs={},
                            value=1.0,
                            latency_ms=1.0,
                            request_id="bench",
                            routed_by="DEFAULT",
                            created_at=datetime.now(UTC),
                        )
                    )
                started = time.monotonic()
                while True:
                    async with sessionmaker() as session:
                        state = await session.scalar(
                            select(AlertRule.state).where(AlertRule.id == created.rule.id)
                        )
                    if state == "firing":
                        break
                    await asyncio.sleep(0.01)
                took = time.monotonic() - started
                worst = max(worst, took)
                print(f"trial {trial}: firing {took:.3f} s after the condition")
        finally:
            for replica in replicas:
                await replica.stop()
            await engine.dispose()
        verdict = "within" if worst <= period_s + 1 else "OVER"
        print(f"worst {worst:.3f} s; goal one period + 1 s = {period_s + 1:.1f} s: {verdict}")
    finally:
        await _drop(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--period", type=float, default=2.0)
    parser.add_argument("--trials", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.period, arguments.trials))
