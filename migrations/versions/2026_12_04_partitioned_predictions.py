"""Predictions partitioned by `created_at` (RANGE), so that retention drops whole partitions.

- The existing table becomes the first partition, `prediction_partitions.predictions_legacy`,
  covering everything before the start of next week (or after its newest row): no row is
  copied or rewritten. Later partitions (a day or a week each) are created ahead by the service
  (`persistence/partitions.py`); there is no default partition.
- The primary key becomes (id, created_at): a partitioned table's unique keys must hold the
  partition key. Ids stay unique per partition; across partitions they are UUIDv7s made by the
  application (74 random bits per millisecond), no longer checked by the database.
- Outcomes reference their prediction by (prediction_id, predicted_at), a foreign key to that
  key: `prediction_outcomes` gains `predicted_at` (filled from the predictions), and
  `latest_outcomes` already had it.
- Indexes, CHECKs, the idempotency key, the immutability trigger and
  `predictions_reference_their_version` are declared on the partitioned table; PostgreSQL gives
  them to every partition (the legacy table's indexes are kept and attached, not rebuilt; its
  primary key index is rebuilt on (id, created_at)).

Stop instances of older releases before `modelql migrate`: they insert into outcomes without
`predicted_at`.

Revision ID: 20261204_partitions
Revises: 20261123_lean
Create Date: 2026-12-04 18:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261204_partitions"
down_revision: str | None = "20261123_lean"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "prediction_partitions"
LEGACY = f"{SCHEMA}.predictions_legacy"
RULE = "predictions_reference_their_version"
ROUTED_BY = "routed_by IN ('VERSION', 'ALIAS', 'DEFAULT', 'SPLIT')"
FINITE = " AND ".join(
    f"({column} IS NULL OR {column} NOT IN ('NaN', 'Infinity', '-Infinity'))"
    for column in ("value", "confidence", "latency_ms")
)
INDEXES = {
    "ix_predictions_created_at_id": "(created_at, id)",
    "ix_predictions_model_id_created_at_id": "(model_id, created_at, id)",
    "ix_predictions_model_version_id_created_at_id": "(model_version_id, created_at, id)",
    "ix_predictions_caller_created_at_id": "(caller, created_at, id)",
    "ix_predictions_request_id": "(request_id)",
    "ix_predictions_idempotency_record_id_batch_index": (
        "(idempotency_record_id, batch_index) WHERE idempotency_record_id IS NOT NULL"
    ),
}
IDEMPOTENCY_KEY = "fk_predictions_idempotency_record_id_idempotency_records"
OUTCOME_KEYS = {
    "prediction_outcomes": "fk_prediction_outcomes_prediction_id_predictions",
    "latest_outcomes": "fk_latest_outcomes_prediction_id_predictions",
}
LEGACY_BOUND = """
SELECT greatest(date_trunc('week', now(), 'UTC'),
                date_trunc('week', (SELECT max(created_at) FROM predictions), 'UTC'))
       + interval '1 week'
"""
"""The legacy partition ends on a Monday (a day's and a week's boundary): the next one, or
the one after its newest row."""


def _declare_on(table: str, *, primary_key: str) -> None:
    """The keys, CHECKs, indexes and triggers of the predictions table, declared on `table`
    (the finite-number CHECK NOT VALID, as migration 20261123_integrity added it)."""
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_predictions PRIMARY KEY ({primary_key})")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_predictions_routed_by CHECK ({ROUTED_BY})")
    op.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT ck_predictions_finite_numbers CHECK ({FINITE}) "
        "NOT VALID"
    )
    op.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT {IDEMPOTENCY_KEY} FOREIGN KEY "
        "(idempotency_record_id) REFERENCES idempotency_records (id) ON DELETE RESTRICT"
    )
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} {columns}")
    op.execute(
        f"CREATE TRIGGER predictions_immutable BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION modelql_forbid_update()"
    )
    op.execute(
        f"CREATE TRIGGER {RULE} AFTER INSERT ON {table} REFERENCING NEW TABLE AS inserted "
        "FOR EACH STATEMENT EXECUTE FUNCTION modelql_check_prediction_versions()"
    )


def upgrade() -> None:
    bound = op.get_bind().exec_driver_sql(LEGACY_BOUND).scalar_one()
    op.execute("ALTER TABLE prediction_outcomes ADD COLUMN predicted_at timestamptz")
    op.execute("ALTER TABLE prediction_outcomes DISABLE TRIGGER prediction_outcomes_immutable")
    op.execute(
        "UPDATE prediction_outcomes o SET predicted_at = p.created_at "
        "FROM predictions p WHERE p.id = o.prediction_id"
    )
    op.execute("ALTER TABLE prediction_outcomes ENABLE TRIGGER prediction_outcomes_immutable")
    op.execute("ALTER TABLE prediction_outcomes ALTER COLUMN predicted_at SET NOT NULL")
    for table, key in OUTCOME_KEYS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {key}")

    op.execute(f"CREATE SCHEMA {SCHEMA}")
    op.execute("DROP TRIGGER predictions_immutable ON predictions")
    op.execute(f"DROP TRIGGER {RULE} ON predictions")
    op.execute("ALTER TABLE predictions DROP CONSTRAINT pk_predictions")
    op.execute(f"ALTER TABLE predictions DROP CONSTRAINT {IDEMPOTENCY_KEY}")
    op.execute("ALTER TABLE predictions RENAME TO predictions_legacy")
    op.execute(f"ALTER TABLE predictions_legacy SET SCHEMA {SCHEMA}")

    op.execute(
        f"CREATE TABLE predictions (LIKE {LEGACY} INCLUDING DEFAULTS INCLUDING COMMENTS) "
        "PARTITION BY RANGE (created_at)"
    )
    _declare_on("predictions", primary_key="id, created_at")
    op.execute(
        f"ALTER TABLE predictions ATTACH PARTITION {LEGACY} "
        f"FOR VALUES FROM (MINVALUE) TO ('{bound.isoformat()}')"
    )
    for table, key in OUTCOME_KEYS.items():
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {key} FOREIGN KEY (prediction_id, predicted_at) "
            "REFERENCES predictions (id, created_at) ON DELETE RESTRICT"
        )


def downgrade() -> None:
    for table, key in OUTCOME_KEYS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {key}")
    op.execute(
        "CREATE TABLE predictions_unpartitioned "
        "(LIKE predictions INCLUDING DEFAULTS INCLUDING COMMENTS)"
    )
    op.execute("INSERT INTO predictions_unpartitioned SELECT * FROM predictions")
    op.execute("DROP TABLE predictions")
    op.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    op.execute("ALTER TABLE predictions_unpartitioned RENAME TO predictions")
    _declare_on("predictions", primary_key="id")
    for table, key in OUTCOME_KEYS.items():
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {key} FOREIGN KEY (prediction_id) "
            "REFERENCES predictions (id) ON DELETE RESTRICT"
        )
    op.execute("ALTER TABLE prediction_outcomes DROP COLUMN predicted_at")
