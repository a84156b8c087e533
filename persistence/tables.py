"""SQLAlchemy declarative tables: the catalogue, the alias history and the prediction store."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: Timestamp, dict[str, Any]: JSONB, list[str]: ARRAY(Text)}


class Model(Base):
    """A named model: the stable identity its versions share."""

    __tablename__ = "models"
    __table_args__ = (CheckConstraint("task IN ('CLASSIFICATION', 'REGRESSION')", name="task"),)

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
        CheckConstraint("split IN ('TRAIN', 'VALIDATION', 'TEST')", name="split"),
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
    __table_args__ = (UniqueConstraint("caller", "key"),)

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
        Index(None, "idempotency_record_id", "batch_index"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"))
    model_version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
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
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


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
