"""A partition of `predictions` whose predictions have outcomes cannot be truncated on its own.

The statement trigger of 20261210_outcome_references guards `TRUNCATE predictions`; a TRUNCATE
of one partition fires only that partition's triggers, and statement triggers are not cloned
onto partitions. So each table of the partitions' schema gets one (persistence/partitions.py
adds it to the partitions it creates): it applies the partition's own bound to the
outcomes' `predicted_at` and refuses while any outcome falls inside it. A table no longer
attached has no bound and is not checked.

Revision ID: 20261211_partition_truncate
Revises: 20261210_outcome_references
Create Date: 2026-12-11 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261211_partition_truncate"
down_revision: str | None = "20261210_outcome_references"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = "outcomes_reference_their_prediction_on_truncate"
KEEP_PARTITION = """
CREATE FUNCTION modelql_keep_partition_with_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bound text := pg_get_partition_constraintdef(TG_RELID);
    labelled boolean;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'truncate on table "%" needs READ COMMITTED', TG_TABLE_NAME
            USING ERRCODE = 'serialization_failure',
                  DETAIL = 'Only a fresh snapshot sees every committed outcome; retry it in a '
                           'READ COMMITTED transaction.';
    END IF;
    IF bound IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM prediction_outcomes WHERE '
        || replace(bound, 'created_at', 'predicted_at') || ')' INTO labelled;
    IF labelled THEN
        RAISE EXCEPTION 'truncate on table "%" violates outcomes_reference_their_prediction',
                TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'Outcomes are recorded for predictions of this partition: '
                           '`modelql store prune` drops partitions with their outcomes.';
    END IF;
    RETURN NULL;
END $$
"""
"""After the truncate, so `TRUNCATE latest_outcomes, prediction_outcomes, predictions` passes;
the bound (`created_at >= ... AND created_at < ...`) finds the outcomes by their time index."""

ON_EVERY_PARTITION = f"""
DO $$
DECLARE
    partition regclass;
BEGIN
    FOR partition IN SELECT c.oid::regclass FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = 'prediction_partitions' AND c.relkind = 'r' LOOP
        EXECUTE format('CREATE TRIGGER {TRIGGER} AFTER TRUNCATE ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION modelql_keep_partition_with_outcomes()', partition);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.execute(KEEP_PARTITION)
    op.execute(ON_EVERY_PARTITION)


def downgrade() -> None:
    op.execute("DROP FUNCTION modelql_keep_partition_with_outcomes() CASCADE")  # its triggers
