"""SQLAlchemy declarative tables: the catalogue, the alias history and the prediction store."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import SchemaItem

from modelql.models.vocabulary import STORED_SPLITS, JobState, RoutingReason, SourceFormat, Task

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = DateTime(timezone=True)


def one_of(column: str, values: Iterable[str]) -> str:
    """A CHECK expression allowing only `values` in `column`."""
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


FINITE_NUMBERS = " AND ".join(
    f"({column} IS NULL OR {column} NOT IN ('NaN', 'Infinity', '-Infinity'))"
    for column in ("value", "confidence", "latency_ms")
)
"""No NaN or infinity is stored (outputs are checked before; this is the database's word)."""


PARTITIONS_SCHEMA = "prediction_partitions"
"""The schema holding the partitions of `predictions` (persistence/partitions.py makes them)."""


QUEUE_TABLES = frozenset({"pgqueuer", "pgqueuer_log", "pgqueuer_schedules", "pgqueuer_statistics"})
"""The job queue's tables: pgqueuer's own, made by migration 20261205_prediction_jobs from its
DDL and used only through pgqueuer (persistence/job_queue.py), so not declared here."""


def declared(
    item: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's `include_object`: everything but the job queue's tables (not declared
    here)."""
    return not (reflected and isinstance(item, Table | Index) and _table_name(item) in QUEUE_TABLES)


def _table_name(item: Table | Index) -> str | None:
    if isinstance(item, Table):
        return item.name
    return None if item.table is None else item.table.name


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: Timestamp, dict[str, Any]: JSONB, list[str]: ARRAY(Text)}


class Model(Base):
    """A named model: the stable identity its versions share."""

    __tablename__ = "models"
    __table_args__ = (CheckConstraint(one_of("task", Task), name="task"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    task: Mapped[str] = mapped_column(String(20))
    tags: Mapped[list[str]] = mapped_column(server_default=text("'{}'"), default=list)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ModelVersion(Base):
    """One immutable, registered artifact of a model (a database trigger refuses updates)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "number"),
        UniqueConstraint("id", "model_id"),  # the target of predictions' composite key
        CheckConstraint("number >= 1", name="number_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"))
    number: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    algorithm: Mapped[str] = mapped_column(Text)
    framework: Mapped[str] = mapped_column(Text)
    framework_version: Mapped[str] = mapped_column(Text)
    artifact_path: Mapped[str] = mapped_column(Text)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    input_schema: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    labels: Mapped[list[str] | None] = mapped_column()
    dataset: Mapped[dict[str, Any] | None] = mapped_column()
    trained_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ModelAlias(Base):
    """Where an alias such as `production` points now; its moves are kept in AliasEvent."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_by: Mapped[str | None] = mapped_column(Text)


class AliasEvent(Base):
    """One move of an alias, so that "which version was production at time T" is answerable."""

    __tablename__ = "model_alias_events"
    __table_args__ = (Index(None, "model_id", "alias", "changed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(100))
    from_version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_versions.id"))
    to_version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_versions.id"))
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    changed_by: Mapped[str | None] = mapped_column(Text)
    based_on: Mapped[dict[str, Any] | None] = mapped_column(
        comment="The comparison the move was based on (setAlias basedOn), as its summary"
    )


class TrafficShare(Base):
    """One version's weight in a model's current traffic split; its changes are kept in
    TrafficSplitEvent. No rows: no split."""

    __tablename__ = "model_traffic_shares"
    __table_args__ = (
        CheckConstraint("weight > 0 AND weight < 'Infinity'::float8", name="weight_positive"),
    )

    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), primary_key=True
    )
    weight: Mapped[float] = mapped_column(Double)


class TrafficSplitEvent(Base):
    """One change of a model's traffic split: the shares set (version number and weight each;
    an empty list removed the split), when and by whom."""

    __tablename__ = "model_traffic_split_events"
    __table_args__ = (Index(None, "model_id", "changed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    shares: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    changed_by: Mapped[str | None] = mapped_column(Text)


class ShadowVersion(Base):
    """A version scoring a sampled share of its model's live requests in the shadow (after
    the answer, off the request's path); its changes are kept in ShadowEvent. No rows: none."""

    __tablename__ = "model_shadow_versions"
    __table_args__ = (CheckConstraint("sample > 0 AND sample <= 1", name="sample_share"),)

    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), primary_key=True
    )
    sample: Mapped[float] = mapped_column(Double)


class ShadowEvent(Base):
    """One change of a model's shadow versions: the version numbers and sample set (an empty
    list cleared them), when and by whom."""

    __tablename__ = "model_shadow_events"
    __table_args__ = (Index(None, "model_id", "changed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    versions: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    sample: Mapped[float | None] = mapped_column(Double)
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    changed_by: Mapped[str | None] = mapped_column(Text)


class TrainingArgument(Base):
    """A hyperparameter or data parameter a version was trained with."""

    __tablename__ = "training_arguments"
    __table_args__ = (CheckConstraint("kind IN ('HYPERPARAMETER', 'DATA')", name="kind"),)

    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[Any] = mapped_column(JSONB, nullable=True)


class PerformanceMetric(Base):
    """One metric of a version on one split and slice ("overall", "class:<label>", or named)."""

    __tablename__ = "performance_metrics"
    __table_args__ = (
        UniqueConstraint("version_id", "split", "slice", "metric"),
        CheckConstraint(one_of("split", STORED_SPLITS), name="split"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    split: Mapped[str] = mapped_column(String(20))
    slice: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(Text)
    value: Mapped[float] = mapped_column(Double)
    num_samples: Mapped[int] = mapped_column(Integer)


class IdempotencyRecord(Base):
    """A claimed idempotency key: one per caller and key, with the fingerprint of its request."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("caller", "key"),
        Index(None, "created_at"),  # a prune deletes those of a dropped partition's time
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    caller: Mapped[str] = mapped_column(Text, comment="API key name; empty when auth is off")
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Prediction(Base):
    """One scored instance, exactly as scored, by exactly one model version (immutable)."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index(None, "created_at", "id"),
        Index(None, "model_id", "created_at", "id"),
        Index(None, "model_version_id", "created_at", "id"),
        Index(None, "caller", "created_at", "id"),
        Index(None, "request_id"),
        Index(
            None,
            "idempotency_record_id",
            "batch_index",
            postgresql_where=text("idempotency_record_id IS NOT NULL"),
        ),
        CheckConstraint(one_of("routed_by", RoutingReason), name="routed_by"),
        CheckConstraint(FINITE_NUMBERS, name="finite_numbers"),
        # model_version_id and model_id name an existing version and its model: checked once
        # per INSERT statement by the trigger predictions_reference_their_version (migration
        # 20261123_lean), which does a foreign key's work without its per-row cost.
        # Partitioned by created_at (migration 20261204_partitions; persistence/partitions.py
        # creates and drops the partitions), so the primary key holds it.
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column()
    model_version_id: Mapped[uuid.UUID] = mapped_column()
    inputs: Mapped[dict[str, Any]] = mapped_column()
    label: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Double)
    probabilities: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    confidence: Mapped[float | None] = mapped_column(Double)
    latency_ms: Mapped[float] = mapped_column(Double)
    request_id: Mapped[str] = mapped_column(String(200))
    caller: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    idempotency_record_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("idempotency_records.id", ondelete="RESTRICT")
    )
    batch_index: Mapped[int] = mapped_column(Integer, default=0)
    routed_by: Mapped[str] = mapped_column(
        String(10), comment="Why this version answered: VERSION, ALIAS, DEFAULT or SPLIT"
    )
    created_at: Mapped[datetime] = mapped_column(primary_key=True, server_default=func.now())


class PredictionColumns(Protocol):
    """A stored prediction's columns as they are read: a `Prediction` or a `PredictionRow`."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def model_id(self) -> uuid.UUID: ...
    @property
    def model_version_id(self) -> uuid.UUID: ...
    @property
    def inputs(self) -> dict[str, Any]: ...
    @property
    def label(self) -> str | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def probabilities(self) -> list[dict[str, Any]] | None: ...
    @property
    def confidence(self) -> float | None: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def request_id(self) -> str: ...
    @property
    def caller(self) -> str | None: ...
    @property
    def idempotency_key(self) -> str | None: ...
    @property
    def routed_by(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


class PredictionRow(NamedTuple):
    """A stored prediction read as a row, not an entity: pages are read so (no identity map,
    no instance state, attributes read at C speed)."""

    id: uuid.UUID
    model_id: uuid.UUID
    model_version_id: uuid.UUID
    inputs: dict[str, Any]
    label: str | None
    value: float | None
    probabilities: list[dict[str, Any]] | None
    confidence: float | None
    latency_ms: float
    request_id: str
    caller: str | None
    idempotency_key: str | None
    routed_by: str
    created_at: datetime


PREDICTION_ROW_COLUMNS = tuple(Prediction.__table__.c[name] for name in PredictionRow._fields)
"""What a `PredictionRow` is selected from, in its order."""


class ShadowPrediction(Base):
    """A shadow version's answer to one row of a live request or of a prediction job, linked
    to the primary prediction (`primary_id`, `primary_created_at`: the primary's key). Kept
    apart from `predictions`, so the audit, statistics and roll-ups never count it. A row the
    shadow's signature or estimator refused holds the reason and no output."""

    __tablename__ = "shadow_predictions"
    __table_args__ = (
        Index(None, "primary_id"),
        Index(None, "model_version_id", "created_at", "id"),
        Index(None, "primary_created_at"),
        CheckConstraint(FINITE_NUMBERS, name="finite_numbers"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    primary_id: Mapped[uuid.UUID] = mapped_column()
    primary_created_at: Mapped[datetime] = mapped_column()
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    label: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Double)
    probabilities: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    confidence: Mapped[float | None] = mapped_column(Double)
    latency_ms: Mapped[float] = mapped_column(Double)
    refusal: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DataSlice(Base):
    """A named slice's rule, stored with the version so LIVE metrics can use it: the rows
    whose numeric feature is at least `minimum` (e.g. "petal_length>=4")."""

    __tablename__ = "data_slices"

    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    feature: Mapped[str] = mapped_column(Text)
    minimum: Mapped[float] = mapped_column(Double)


class ReferenceProfile(Base):
    """A version's training inputs and outputs summarised (bins and shares), for drift."""

    __tablename__ = "reference_profiles"

    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    profile: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PredictionOutcome(Base):
    """One recorded truth about a prediction, named by its key (id, created_at); append-only:
    a correction is a new row. The key is checked by a trigger, not a foreign key (migration
    20261210_outcome_references: a prune's detach stays catalogue work)."""

    __tablename__ = "prediction_outcomes"
    __table_args__ = (
        Index(None, "prediction_id", "recorded_at", "id"),
        Index(None, "predicted_at"),  # a prune deletes those of a dropped partition's time
        CheckConstraint("(label IS NULL) <> (value IS NULL)", name="label_or_value"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    prediction_id: Mapped[uuid.UUID] = mapped_column()
    predicted_at: Mapped[datetime] = mapped_column()
    label: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Double)
    observed_at: Mapped[datetime] = mapped_column()
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
    caller: Mapped[str | None] = mapped_column(Text)


class LatestOutcome(Base):
    """The outcome that counts for each labelled prediction, beside the prediction's columns
    that live metrics group by (copied: predictions never change)."""

    __tablename__ = "latest_outcomes"
    __table_args__ = (
        Index(
            None,
            "model_version_id",
            "predicted_at",
            postgresql_include=["predicted_label", "label", "predicted_value", "value"],
        ),
        # Deleting an outcome (a prune) looks up the latest outcomes referencing it.
        Index(None, "outcome_id"),
        Index(None, "predicted_at"),  # a prune deletes those of a dropped partition's time
    )

    prediction_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    outcome_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("prediction_outcomes.id", ondelete="RESTRICT")
    )
    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    predicted_at: Mapped[datetime] = mapped_column()
    predicted_label: Mapped[str | None] = mapped_column(Text)
    predicted_value: Mapped[float | None] = mapped_column(Double)
    label: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Double)
    correct: Mapped[bool | None] = mapped_column(
        Boolean, Computed("predicted_label = label", persisted=True)
    )


class _PredictionSums:
    """The key and sums of a prediction roll-up row, hourly or daily ('' stands for none; the
    period's start is the key's last column)."""

    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), primary_key=True
    )
    caller: Mapped[str] = mapped_column(Text, primary_key=True)
    label: Mapped[str] = mapped_column(Text, primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"))
    count: Mapped[int] = mapped_column(BigInteger)
    latency_sum: Mapped[float] = mapped_column(Double)
    confidence_sum: Mapped[float] = mapped_column(Double)
    confidence_count: Mapped[int] = mapped_column(BigInteger)
    value_sum: Mapped[float] = mapped_column(Double)
    value_count: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[datetime] = mapped_column()
    last_at: Mapped[datetime] = mapped_column()
    labelled: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    correct: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class PredictionRollup(_PredictionSums, Base):
    """Predictions aggregated per version, caller, label and UTC hour, written in the
    transaction that stores them; outcomes update `labelled` and `correct`."""

    __tablename__ = "prediction_rollups"
    __table_args__ = (Index(None, "model_id", "hour"), Index(None, "hour"))

    hour: Mapped[datetime] = mapped_column(primary_key=True, sort_order=1)


class DailyPredictionRollup(_PredictionSums, Base):
    """The hourly roll-ups summed per UTC day, written beside them: what long windows read."""

    __tablename__ = "prediction_daily_rollups"
    __table_args__ = (Index(None, "model_id", "day"), Index(None, "day"))

    day: Mapped[datetime] = mapped_column(primary_key=True, sort_order=1)


class _LatencyCounts:
    """The key and count of a latency roll-up row, hourly or daily (version, period, bucket)."""

    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), primary_key=True
    )
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True, sort_order=2)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"))
    count: Mapped[int] = mapped_column(BigInteger)


class LatencyRollup(_LatencyCounts, Base):
    """Predictions counted per version, UTC hour and log-scale latency bucket
    (modelql_latency_bucket), written with them: what p95 latency is read from at scale."""

    __tablename__ = "prediction_latency_rollups"
    __table_args__ = (Index(None, "model_id", "hour"), Index(None, "hour"))

    hour: Mapped[datetime] = mapped_column(primary_key=True, sort_order=1)


class DailyLatencyRollup(_LatencyCounts, Base):
    """The hourly latency roll-ups summed per UTC day, written beside them."""

    __tablename__ = "prediction_latency_daily_rollups"
    __table_args__ = (Index(None, "model_id", "day"), Index(None, "day"))

    day: Mapped[datetime] = mapped_column(primary_key=True, sort_order=1)


class OutcomeRollup(Base):
    """Labelled predictions counted per version, hour of the prediction and (predicted,
    observed) label ('' for none), with the error sums of regressions: moved by every change of
    a prediction's latest outcome, in the transaction that records it."""

    __tablename__ = "outcome_rollups"

    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(primary_key=True, sort_order=1)
    predicted: Mapped[str] = mapped_column(Text, primary_key=True)
    observed: Mapped[str] = mapped_column(Text, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    squared_error: Mapped[float] = mapped_column(Double)
    absolute_error: Mapped[float] = mapped_column(Double)
    observed_sum: Mapped[float] = mapped_column(Double)
    observed_square_sum: Mapped[float] = mapped_column(Double)


class PredictionFailureCount(Base):
    """Prediction instances that failed (inputs refused, scoring errors) per version and UTC
    second, each failure added in a short transaction of its own after its request failed
    (never in the request's): what the ERROR_RATE alert signal reads."""

    __tablename__ = "prediction_failure_counts"
    __table_args__ = (Index(None, "model_id", "second"),)

    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    second: Mapped[datetime] = mapped_column(primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    failures: Mapped[int] = mapped_column(BigInteger)


class PredictionCommit(Base):
    """One stored group of predictions (one transaction), or of shadow answers to stored
    predictions (`shadows`): the live feed's position. Written in the same transaction (by the
    same statement, for predictions), so a row exists exactly when they committed."""

    __tablename__ = "prediction_commits"
    __table_args__ = (Index(None, "committed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    prediction_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid))
    shadows: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    """True: the transaction stored shadow answers, and `prediction_ids` are the primaries
    they answer (`model_version_id` the primaries' version), not new predictions."""
    committed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiKey(Base):
    """A client credential: only the sha256 of the key is kept, with its scopes."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column()
    rate_limit: Mapped[str | None] = mapped_column(String(100))  # e.g. "100/second"
    models: Mapped[list[str] | None] = mapped_column()  # names or globs; None: every model


class AlertRule(Base):
    """A condition on a model's live series, with its evaluated state (ok, pending, firing,
    resolved) and the webhook its changes are delivered to, signed with its secret."""

    __tablename__ = "alert_rules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    signal: Mapped[str] = mapped_column(String(30))
    comparison: Mapped[str] = mapped_column(String(10))
    threshold: Mapped[float] = mapped_column(Double)
    window_s: Mapped[float] = mapped_column(Double)
    for_s: Mapped[float] = mapped_column(Double)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    state: Mapped[str] = mapped_column(String(10), server_default=text("'ok'"))
    pending_since: Mapped[datetime | None] = mapped_column()
    changed_at: Mapped[datetime | None] = mapped_column()
    last_value: Mapped[float | None] = mapped_column(Double)
    evaluated_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AlertPeriod(Base):
    """One evaluation period claimed by the replica that evaluated it (exactly once: the
    claim commits with the states and deliveries it produced)."""

    __tablename__ = "alert_periods"

    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    evaluated_by: Mapped[str] = mapped_column(Text)
    evaluated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AlertDelivery(Base):
    """The webhook outbox and its log: kept until delivered, retried with backoff."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index(
            "ix_alert_deliveries_due", "next_attempt_at", postgresql_where="delivered_at IS NULL"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column()
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class PredictionJob(Base):
    """A batch scoring job: its source, its state and what it found (counts, the first
    errors); where it is lives in its parts."""

    __tablename__ = "prediction_jobs"
    __table_args__ = (
        CheckConstraint(one_of("state", JobState), name="state_known"),
        CheckConstraint(one_of("source_format", SourceFormat), name="source_format_known"),
        ForeignKeyConstraint(
            ["model_version_id", "model_id"],
            ["model_versions.id", "model_versions.model_id"],
            ondelete="RESTRICT",
        ),
        Index(None, "created_at"),
        Index(
            "ix_prediction_jobs_unpruned_finished_at",
            "finished_at",
            postgresql_where=text("pruned_at IS NULL AND finished_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"))
    model_version_id: Mapped[uuid.UUID] = mapped_column()
    routed_by: Mapped[str] = mapped_column(Text)
    submitter: Mapped[str | None] = mapped_column(Text)
    partial: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(Text)
    source_format: Mapped[str] = mapped_column(Text)
    source_path: Mapped[str | None] = mapped_column(Text)
    """A server-side file; null: the upload is in prediction_job_sources."""
    source_bytes: Mapped[int] = mapped_column(BigInteger)
    validated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    rows_total: Mapped[int | None] = mapped_column(Integer)
    rows_scored: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rows_failed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rows_shadowed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """Shadow answers stored with the job's chunks (one per shadow version and sampled row,
    refusals included)."""
    shadow_rows_failed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """Sampled rows a shadow version could not score (its scoring failed), per version."""
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'"))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    pruned_at: Mapped[datetime | None] = mapped_column()
    """When its uploaded file and parts were dropped (the job's retention)."""
    rows_done: Mapped[int | None] = mapped_column(Integer)
    """Rows settled, kept from its parts when they were dropped; null while they exist."""


class PredictionJobSource(Base):
    """An uploaded job file, kept in the database so that any replica can work the job."""

    __tablename__ = "prediction_job_sources"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("prediction_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    content: Mapped[bytes] = mapped_column(LargeBinary)


class PredictionJobPart(Base):
    """A range of a job's rows that one worker scores at a time; `next_row` moves in the
    transaction that stores each chunk, so a crash resumes after the last committed chunk."""

    __tablename__ = "prediction_job_parts"
    __table_args__ = (CheckConstraint("next_row BETWEEN first_row AND end_row", name="cursor"),)

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("prediction_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_row: Mapped[int] = mapped_column(Integer)
    end_row: Mapped[int] = mapped_column(Integer)
    next_row: Mapped[int] = mapped_column(Integer)
