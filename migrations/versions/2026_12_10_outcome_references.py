"""Outcomes reference their prediction through triggers instead of foreign keys, so that a
prune's `DETACH PARTITION ... CONCURRENTLY` is catalogue work again.

With the foreign keys `prediction_outcomes` -> `predictions` and `latest_outcomes` ->
`predictions`, detaching a partition checked that no outcome referenced it (a join of each
outcome table with the whole partition, seconds per partition at 40,000,000 predictions)
while holding both outcome tables against inserts: `recordOutcomes` waited up to 4.8 s
(bench/scale.py). What the keys enforced still holds:

- an outcome names a stored prediction by its key (id, created_at): checked once per INSERT
  statement, locking the predictions named FOR KEY SHARE as the key did;
- a prediction with outcomes cannot be deleted (row trigger, cloned onto every partition) nor
  truncated away (statement trigger on `predictions`); like the version rule, both refuse to
  run outside READ COMMITTED, where their check could miss an outcome committed meanwhile.

Dropping a whole partition is the prune's job: after the detach (when no outcome can name one
of its predictions any more) it deletes the outcomes, live-feed commits, shadow answers and
idempotency records of the partition's time in batches (persistence/partitions.py), found by
the time indexes added here.

Revision ID: 20261210_outcome_references
Revises: 20261209_outcome_index
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261210_outcome_references"
down_revision: str | None = "20261209_outcome_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RULE = "outcomes_reference_their_prediction"
OUTCOME_KEYS = {
    "prediction_outcomes": "fk_prediction_outcomes_prediction_id_predictions",
    "latest_outcomes": "fk_latest_outcomes_prediction_id_predictions",
}

CHECK_INSERTED = f"""
CREATE FUNCTION modelql_check_outcome_predictions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    named bigint;
    found bigint;
BEGIN
    SELECT count(*) INTO named FROM (SELECT DISTINCT prediction_id, predicted_at FROM inserted) n;
    PERFORM 1 FROM predictions p
    JOIN (SELECT DISTINCT prediction_id, predicted_at FROM inserted) n
      ON p.id = n.prediction_id AND p.created_at = n.predicted_at
    FOR KEY SHARE OF p;
    GET DIAGNOSTICS found = ROW_COUNT;
    IF found <> named THEN
        RAISE EXCEPTION 'insert on table "%" violates {RULE}', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'An outcome names a stored prediction by its id and created_at.';
    END IF;
    RETURN NULL;
END $$
"""
"""The distinct keys named, then the predictions holding them, locked: as many must be found."""


def _needs_read_committed(action: str) -> str:
    return f"""
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION '{action} on table "predictions" needs READ COMMITTED'
            USING ERRCODE = 'serialization_failure',
                  DETAIL = 'Only a fresh snapshot sees every committed outcome; retry it in a '
                           'READ COMMITTED transaction.';
    END IF;"""


KEEP_LABELLED = f"""
CREATE FUNCTION modelql_keep_labelled_predictions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_needs_read_committed("delete")}
    IF EXISTS (
        SELECT 1 FROM prediction_outcomes
        WHERE prediction_id = OLD.id AND predicted_at = OLD.created_at
    ) THEN
        RAISE EXCEPTION 'delete on table "predictions" violates {RULE}'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'Prediction ' || OLD.id || ' has recorded outcomes.';
    END IF;
    RETURN OLD;
END $$
"""
"""Before the row goes (its lock taken, so an outcome insert holding it has committed and is
seen); every latest outcome has its outcome row, so one table is enough."""

KEEP_ON_TRUNCATE = f"""
CREATE FUNCTION modelql_keep_predictions_with_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_needs_read_committed("truncate")}
    IF EXISTS (SELECT 1 FROM prediction_outcomes) THEN
        RAISE EXCEPTION 'truncate on table "predictions" violates {RULE}'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'Outcomes are recorded: truncate latest_outcomes and '
                           'prediction_outcomes with it.';
    END IF;
    RETURN NULL;
END $$
"""
"""After every table of the statement is emptied, so `TRUNCATE latest_outcomes,
prediction_outcomes, predictions` passes."""


TIME_INDEXES = {
    "prediction_outcomes": "predicted_at",
    "latest_outcomes": "predicted_at",
    "idempotency_records": "created_at",
}


def upgrade() -> None:
    for table, column in TIME_INDEXES.items():
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column])
    op.execute(CHECK_INSERTED)
    op.execute(KEEP_LABELLED)
    op.execute(KEEP_ON_TRUNCATE)
    for table, key in OUTCOME_KEYS.items():
        op.execute(
            f"CREATE TRIGGER {RULE} AFTER INSERT ON {table} REFERENCING NEW TABLE AS inserted "
            "FOR EACH STATEMENT EXECUTE FUNCTION modelql_check_outcome_predictions()"
        )
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {key}")
    op.execute(
        f"CREATE TRIGGER {RULE} BEFORE DELETE ON predictions "
        "FOR EACH ROW EXECUTE FUNCTION modelql_keep_labelled_predictions()"
    )
    op.execute(
        f"CREATE TRIGGER {RULE}_on_truncate AFTER TRUNCATE ON predictions "
        "FOR EACH STATEMENT EXECUTE FUNCTION modelql_keep_predictions_with_outcomes()"
    )


def downgrade() -> None:
    op.execute(f"DROP TRIGGER {RULE}_on_truncate ON predictions")
    op.execute(f"DROP TRIGGER {RULE} ON predictions")
    for table, key in OUTCOME_KEYS.items():
        op.execute(f"DROP TRIGGER {RULE} ON {table}")
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {key} FOREIGN KEY (prediction_id, predicted_at) "
            "REFERENCES predictions (id, created_at) ON DELETE RESTRICT"
        )
    op.execute("DROP FUNCTION modelql_keep_predictions_with_outcomes()")
    op.execute("DROP FUNCTION modelql_keep_labelled_predictions()")
    op.execute("DROP FUNCTION modelql_check_outcome_predictions()")
    for table, column in TIME_INDEXES.items():
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
