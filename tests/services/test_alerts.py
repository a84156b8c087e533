"""Alert rules: states move ok -> pending -> firing -> resolved as predictions arrive (the
evaluator driven with an injected clock), each period is evaluated once across evaluators,
webhook deliveries survive a receiver that is down and verify, and bad input stores nothing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import math
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import create_database, drop_database

from modelql import schema_migrations
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import train_demo
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.persistence.tables import AlertPeriod, AlertRule, Model, ModelVersion, Prediction
from modelql.services import registration
from modelql.services.alert_delivery import DELIVERY_HEADER, SIGNATURE_HEADER, AlertDeliverer
from modelql.services.alert_evaluation import AlertEvaluator
from modelql.services.alert_rules import AlertRuleInput, AlertRules, Comparison, Signal
from modelql.services.alerting import Alerting
from modelql.services.catalogue import Catalogue
from modelql.services.drift import DriftPolicy
from modelql.services.errors import ErrorCode, UserInputError
from modelql.services.freshness import Freshness
from modelql.services.generations import Generations
from modelql.services.outcomes import OutcomeRecorder, OutcomeRequest

PERIOD_S = 15.0


def new_evaluator(sessionmaker, period_s: float, name: str) -> AlertEvaluator:
    """An evaluator with a catalogue of its own (no listener: it re-reads every 0 s)."""
    catalogue = Catalogue(Freshness(max_staleness_s=0.0, listening_since=lambda: None))
    return AlertEvaluator(
        sessionmaker,
        period_s=period_s,
        name=name,
        catalogue=catalogue,
        drift_policy=DriftPolicy(),
    )


def _start() -> datetime:
    """A period start a little in the past (the store has partitions there)."""
    now = datetime.now(UTC).timestamp()
    return datetime.fromtimestamp(now - now % PERIOD_S - 3600, UTC)


@pytest.fixture(scope="module")
async def own_store(server_url: str, artifact_store: ArtifactStore) -> AsyncIterator[str]:
    """A database of this module's own, with the demo catalogue: no running app of the test
    session evaluates its rules behind the injected clock's back."""
    url = await create_database(server_url)
    try:
        await asyncio.to_thread(schema_migrations.upgrade_to_head, url)
        engine = create_engine(url)
        trained = await asyncio.to_thread(train_demo)
        async with create_sessionmaker(engine).begin() as session:
            for version in trained:
                await registration.register_version(
                    session,
                    artifact_store,
                    registration.VersionRegistration.from_trained(version),
                    estimator=version.estimator,
                    actor="tests",
                )
        await engine.dispose()
        yield url
    finally:
        await drop_database(server_url, url)


@pytest.fixture
async def sessionmaker(own_store: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the module's database, emptied of rules and predictions after each test."""
    engine = create_engine(own_store)
    try:
        yield create_sessionmaker(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "TRUNCATE alert_deliveries, alert_periods, alert_rules, latest_outcomes, "
                    "prediction_outcomes, predictions CASCADE"
                )
            )
    finally:
        await engine.dispose()


async def _predict(
    sessionmaker: async_sessionmaker[AsyncSession],
    model: str,
    at: datetime,
    count: int,
    inputs: dict[str, float] | None = None,
    label: str | None = None,
) -> list[uuid.UUID]:
    async with sessionmaker.begin() as session:
        row = (
            await session.execute(
                select(Model.id, ModelVersion.id.label("version"))
                .join(ModelVersion, ModelVersion.model_id == Model.id)
                .where(Model.name == model)
                .limit(1)
            )
        ).one()
        ids = [uuid.uuid4() for _ in range(count)]
        await session.execute(
            insert(Prediction),
            [
                {
                    "id": ids[n],
                    "model_id": row.id,
                    "model_version_id": row.version,
                    "inputs": inputs or {},
                    "value": None if label else 1.0,
                    "label": label,
                    "latency_ms": 2.0,
                    "request_id": f"alerts-{ids[n]}",
                    "routed_by": "DEFAULT",
                    "created_at": at,
                }
                for n in range(count)
            ],
        )
    return ids


def _volume_rule(**overrides: object) -> AlertRuleInput:
    given: dict[str, object] = {
        "name": "busy",
        "model": "diabetes-regressor",
        "signal": Signal.VOLUME,
        "comparison": Comparison.GTE,
        "threshold": 3.0,
        "window_s": 60.0,
        "for_s": 30.0,
    }
    return AlertRuleInput(**(given | overrides))  # type: ignore[arg-type]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []
    delivery_ids: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers[SIGNATURE_HEADER]))
        self.delivery_ids.append(self.headers[DELIVERY_HEADER])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver_port() -> int:
    """A free port nobody listens on (yet)."""
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    port = server.server_address[1]
    server.server_close()
    return port


async def test_pending_then_firing_then_resolved(sessionmaker):
    rules = AlertRules(sessionmaker, allow_private=True)
    created = await rules.create(_volume_rule())
    evaluator = new_evaluator(sessionmaker, PERIOD_S, "a")
    start = _start()

    async def state_at(offset_s: float) -> str:
        assert await evaluator.evaluate(start + timedelta(seconds=offset_s)) is not None
        (rule,) = [r for r in await rules.rules() if r.id == created.rule.id]
        return rule.state

    assert await state_at(0) == "ok"
    await _predict(sessionmaker, "diabetes-regressor", start + timedelta(seconds=5), 3)
    assert await state_at(15) == "pending"
    assert await state_at(30) == "pending"
    assert await state_at(45) == "firing"  # the condition has held for 30 s
    assert await state_at(60) == "firing"
    assert await state_at(75) == "resolved"  # the window has slid past the predictions
    assert await state_at(90) == "ok"


async def test_each_period_is_evaluated_once_across_evaluators(sessionmaker):
    await AlertRules(sessionmaker, allow_private=True).create(_volume_rule(for_s=0.0))
    start = _start()
    await _predict(sessionmaker, "diabetes-regressor", start - timedelta(seconds=1), 5)
    evaluators = [new_evaluator(sessionmaker, PERIOD_S, n) for n in "ab"]
    for offset in (0.0, 1.0, 15.0, 16.0):  # two periods, each evaluator twice in each
        outcomes = await asyncio.gather(
            *(e.evaluate(start + timedelta(seconds=offset)) for e in evaluators)
        )
        assert sum(o is not None for o in outcomes) == (1 if offset % 15 == 0 else 0)
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AlertPeriod)) == 2


async def test_a_receiver_that_was_down_gets_every_delivery_signed(sessionmaker, receiver_port):
    url = f"http://127.0.0.1:{receiver_port}/hook"
    created = await AlertRules(sessionmaker, allow_private=True).create(
        _volume_rule(for_s=0.0, webhook_url=url)
    )
    evaluator = new_evaluator(sessionmaker, PERIOD_S, "a")
    deliverer = AlertDeliverer(sessionmaker, first_backoff_s=1.0)
    start = _start()
    await _predict(sessionmaker, "diabetes-regressor", start - timedelta(seconds=1), 5)
    await evaluator.evaluate(start)  # firing
    await evaluator.evaluate(start + timedelta(seconds=90))  # resolved
    now = start + timedelta(seconds=90)
    assert await deliverer.deliver_due(now) == 0  # nobody listens
    assert await deliverer.deliver_due(now) == 0  # not due again yet: backoff
    log = await AlertRules(sessionmaker, allow_private=True).deliveries(created.rule.id, 10)
    assert [(d.attempts, d.delivered_at, d.status_code) for d in log] == [(1, None, None)] * 2
    assert all(d.error for d in log)

    _Receiver.received, _Receiver.delivery_ids = [], []
    server = HTTPServer(("127.0.0.1", receiver_port), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert await deliverer.deliver_due(now + timedelta(seconds=1)) == 2
    finally:
        server.shutdown()
        server.server_close()
    states = []
    for body, signature in _Receiver.received:
        fields = dict(part.split("=", 1) for part in signature.split(","))
        expected = hmac.new(
            created.secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(expected, fields["v1"])
        states.append(json.loads(body)["state"])
    assert states == ["firing", "resolved"]
    log = await AlertRules(sessionmaker, allow_private=True).deliveries(created.rule.id, 10)
    assert [(d.attempts, d.status_code) for d in log] == [(2, 204)] * 2
    assert sorted(_Receiver.delivery_ids) == sorted(str(d.id) for d in log)


async def test_an_accuracy_rule_follows_the_outcomes_as_they_arrive(sessionmaker):
    rules = AlertRules(sessionmaker, allow_private=True)
    created = await rules.create(
        _volume_rule(
            model="iris-classifier",
            signal=Signal.ACCURACY,
            comparison=Comparison.LT,
            threshold=0.8,
            window_s=600.0,
            for_s=15.0,
        )
    )
    recorder = OutcomeRecorder(
        sessionmaker=sessionmaker,
        catalogue=Catalogue(Freshness(max_staleness_s=0.0, listening_since=lambda: None)),
        generations=Generations(listening_since=lambda: None),
        max_batch_size=100,
    )
    evaluator = new_evaluator(sessionmaker, PERIOD_S, "a")
    start = _start()
    ids = await _predict(
        sessionmaker, "iris-classifier", start + timedelta(seconds=1), 10, label="setosa"
    )

    async def state_at(offset_s: float) -> tuple[str, float | None]:
        await evaluator.evaluate(start + timedelta(seconds=offset_s))
        (rule,) = [r for r in await rules.rules() if r.id == created.rule.id]
        return rule.state, rule.last_value

    assert await state_at(15) == ("ok", None)  # no outcomes yet: nothing to judge
    wrong = [OutcomeRequest(prediction_id=i, label="virginica") for i in ids[:5]]
    await recorder.record(wrong, caller=None)
    assert await state_at(30) == ("pending", 0.0)
    assert await state_at(45) == ("firing", 0.0)
    right = [OutcomeRequest(prediction_id=i, label="setosa") for i in ids[5:]]
    await recorder.record(right, caller=None)
    assert await state_at(60) == ("firing", 0.5)
    corrected = [OutcomeRequest(prediction_id=i, label="setosa") for i in ids[:5]]
    await recorder.record(corrected, caller=None)  # corrections count as the truth
    assert await state_at(75) == ("resolved", 1.0)


async def test_a_drift_rule_fires_on_inputs_unlike_the_reference(sessionmaker):
    rules = AlertRules(sessionmaker, allow_private=True)
    created = await rules.create(
        _volume_rule(model="iris-classifier", signal=Signal.DRIFT, threshold=0.2, for_s=0.0)
    )
    evaluator = new_evaluator(sessionmaker, PERIOD_S, "a")
    start = _start()
    assert await evaluator.evaluate(start) == []  # no predictions: no score, no condition
    far = dict.fromkeys(["sepal_length", "sepal_width", "petal_length", "petal_width"], 50.0)
    await _predict(sessionmaker, "iris-classifier", start + timedelta(seconds=1), 40, far, "setosa")
    (change,) = await evaluator.evaluate(start + timedelta(seconds=15)) or []
    assert (change.rule_id, change.state) == (str(created.rule.id), "firing")
    assert change.value is not None and change.value > 0.2


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"signal": Signal.ACCURACY}, ErrorCode.UNSUPPORTED_SIGNAL),
        ({"model": "no-such-model"}, ErrorCode.MODEL_NOT_FOUND),
        ({"threshold": math.nan}, ErrorCode.INVALID_THRESHOLD),
        ({"threshold": math.inf}, ErrorCode.INVALID_THRESHOLD),
        ({"window_s": -1.0}, ErrorCode.INVALID_DURATION),
        ({"for_s": -1.0}, ErrorCode.INVALID_DURATION),
        ({"webhook_url": "ftp://example.com/x"}, ErrorCode.INVALID_WEBHOOK),
        ({"webhook_url": "http://127.0.0.1:9/x"}, ErrorCode.INVALID_WEBHOOK),
        ({"webhook_url": "http://10.1.2.3/x"}, ErrorCode.INVALID_WEBHOOK),
        ({"webhook_url": "http://localhost:9/x"}, ErrorCode.INVALID_WEBHOOK),
        ({"version": 999}, ErrorCode.VERSION_NOT_FOUND),
    ],
)
async def test_bad_input_stores_nothing(sessionmaker, overrides, code):
    rules = AlertRules(sessionmaker, allow_private=False)
    with pytest.raises(UserInputError) as refused:
        await rules.create(_volume_rule(**overrides))
    assert [p.code for p in refused.value.problems] == [code]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AlertRule)) == 0


async def test_two_replicas_running_deliver_each_change_once(sessionmaker, receiver_port):
    """Two replicas' rounds, on the real clock with a short period, race for every period:
    the rule fires once and its webhook gets one delivery, three periods later still."""
    url = f"http://127.0.0.1:{receiver_port}/hook"
    await AlertRules(sessionmaker, allow_private=True).create(
        _volume_rule(
            model="iris-classifier",
            comparison=Comparison.LT,
            threshold=1.0,
            for_s=0.0,
            webhook_url=url,
        )
    )
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", receiver_port), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    replicas = [
        Alerting(
            new_evaluator(sessionmaker, 0.2, name),
            AlertDeliverer(sessionmaker),
            period_s=0.2,
        )
        for name in ("one", "two")
    ]
    try:
        for replica in replicas:
            await replica.start()
        async with asyncio.timeout(30):  # a bound for a stuck run, not a measurement
            await _until(lambda: _received(1))
            seen = await _periods(sessionmaker)
            await _until(lambda: _more_periods(sessionmaker, seen + 3))
    finally:
        for replica in replicas:
            await replica.stop()
        server.shutdown()
        server.server_close()
    assert [json.loads(body)["state"] for body, _ in _Receiver.received] == ["firing"]
    async with sessionmaker() as session:
        evaluated_by = set((await session.scalars(select(AlertPeriod.evaluated_by))).all())
    assert evaluated_by <= {"one", "two"}


async def _received(count: int) -> bool:
    return len(_Receiver.received) >= count


async def _more_periods(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> bool:
    return await _periods(sessionmaker) >= count


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` every 50 ms until it holds."""
    for _ in itertools.count():
        if await check():
            return
        await asyncio.sleep(0.05)


async def _periods(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(AlertPeriod)) or 0
