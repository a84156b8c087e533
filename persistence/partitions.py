"""The partitions of `predictions` (RANGE on created_at, one a day or a week): listed, created
ahead of time, and dropped whole once older than the retention, never deleted row by row.

Partitions live in the schema `prediction_partitions`; there is no default partition, so a row
no partition covers is refused, never swallowed. Everything here runs on a plain asyncpg
connection: `prune` needs one outside any transaction (DETACH ... CONCURRENTLY)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import asyncpg

from modelql.persistence.database import libpq_url
from modelql.persistence.notifications import OUTCOMES_CHANNEL
from modelql.persistence.tables import PARTITIONS_SCHEMA, Prediction


class PartitionInterval(StrEnum):
    """How much time one partition covers; periods start at midnight UTC (weeks on Monday)."""

    DAY = "day"
    WEEK = "week"

    def start(self, moment: datetime) -> datetime:
        """The start of the period holding `moment`."""
        midnight = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return (
            midnight - timedelta(days=midnight.weekday())
            if self is PartitionInterval.WEEK
            else midnight
        )

    def next(self, moment: datetime) -> datetime:
        """The start of the period after the one holding `moment`."""
        return self.start(moment) + timedelta(days=7 if self is PartitionInterval.WEEK else 1)


AHEAD = 3
"""Periods created beyond the current one: the service has that long to come back."""
MAINTENANCE_LOCK = 7_261_204
"""The advisory lock (one key) that serialises creating and dropping partitions."""
READER_LOCKS = 7_261_205
"""The first key of the advisory locks (second key: the partition's oid) that readers hold
shared and `prune` exclusively: a partition being verified is not dropped."""

_TABLE = Prediction.__tablename__
_REFERRING = (
    ("latest_outcomes", "predicted_at"),
    ("prediction_outcomes", "predicted_at"),
    ("prediction_commits", "committed_at"),
    ("shadow_predictions", "primary_created_at"),
)
"""What refers to predictions by time, deleted with their partition (latest outcomes first:
they reference outcomes)."""
_DETACHING = "modelql: detaching "
"""The comment on a partition being detached, followed by its bounds."""
_PRUNED_BELOW = "modelql: pruned below "
"""The comment on a detached partition being dropped, followed by its upper bound."""
DELETE_BATCH = 10_000
"""Rows deleted per transaction when a partition goes."""
_OUTCOME_WRITERS = (
    "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE mode = 'RowExclusiveLock' "
    "AND relation IN ('prediction_outcomes'::regclass, 'latest_outcomes'::regclass) "
    "AND pid <> pg_backend_pid()"
)
WRITERS_POLL_S = 0.01
"""How often a prune looks whether the outcome writers it waits for have finished."""
_BOUNDS = re.compile(r"FROM \((?P<lower>[^)]*)\) TO \((?P<upper>[^)]*)\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition: its qualified name, oid and range (lower None: MINVALUE)."""

    name: str
    oid: int
    lower: datetime | None
    upper: datetime
    detaching: bool = False
    """An interrupted DETACH ... CONCURRENTLY left it half detached (prune finishes it)."""


class PartitionInUseError(RuntimeError):
    """A partition prune would drop is being read (`modelql audit verify`, an archive), or
    one an archive would read is being pruned."""


BeforeDrop = Callable[[asyncpg.Connection, Partition], Awaitable[int]]
"""What prune runs on a partition before dropping it (archiving it), outside a transaction;
it returns how many outcomes of the partition's predictions it saved: the drop is refused if
it would delete any other number (one recorded since)."""


class OutcomesChangedError(RuntimeError):
    """Outcomes were recorded for a partition's predictions after it was archived."""


class PruneInterruptedError(RuntimeError):
    """What prune runs before a drop failed: that partition and the newer ones were kept."""

    def __init__(
        self, partition: Partition, dropped: Sequence[Partition], cause: BaseException
    ) -> None:
        super().__init__(f"{partition.name} was not dropped: {cause}")
        self.partition = partition
        self.dropped = list(dropped)


@asynccontextmanager
async def maintenance_connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, outside the pool (no statement timeout: a concurrent detach
    waits for the transactions reading the table to end)."""
    connection = await asyncpg.connect(libpq_url(database_url))
    try:
        yield connection
    finally:
        await connection.close()


def is_missing_partition(error: BaseException) -> bool:
    """True when PostgreSQL refused a row (or what caused `error` did) because no partition
    of predictions covers its time."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, asyncpg.CheckViolationError):
            return str(current).startswith("no partition of relation")
        current = current.__cause__ or current.__context__
    return False


def _bound(text: str) -> datetime | None:
    return None if text == "MINVALUE" else datetime.fromisoformat(text.strip("'"))


def _bound_text(bound: datetime | None) -> str:
    return "MINVALUE" if bound is None else bound.isoformat()


async def partitions(connection: asyncpg.Connection) -> list[Partition]:
    """Every partition of predictions, oldest first."""
    rows = await connection.fetch(
        "SELECT n.nspname || '.' || c.relname AS name, c.oid, i.inhdetachpending, "
        "pg_get_expr(c.relpartbound, c.oid) AS bound "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE i.inhparent = $1::regclass",
        f"public.{_TABLE}",
    )
    found = []
    for row in rows:
        bounds = _BOUNDS.search(row["bound"])
        assert bounds is not None, f"{row['name']} is not a range partition: {row['bound']}"
        upper = _bound(bounds["upper"])
        assert upper is not None, f"{row['name']} has no upper bound"
        found.append(
            Partition(
                row["name"], row["oid"], _bound(bounds["lower"]), upper, row["inhdetachpending"]
            )
        )
    return sorted(found, key=lambda partition: partition.upper)


async def ensure(
    connection: asyncpg.Connection,
    *,
    interval: PartitionInterval,
    now: datetime,
    ahead: int = AHEAD,
) -> list[Partition]:
    """Create the partitions missing, one period each, from the newest one's end until `ahead`
    periods after the one holding `now`; the new ones. Each is made apart and then attached,
    which blocks neither reads nor inserts."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MAINTENANCE_LOCK)
        existing = await partitions(connection)
        current = interval.start(now)
        cursor = existing[-1].upper if existing else current
        end = current
        for _ in range(ahead + 1):
            end = interval.next(end)
        created = []
        while cursor < end:
            created.append(await _create(connection, cursor, interval.next(cursor)))
            cursor = created[-1].upper
    return created


_KEEP_WITH_OUTCOMES = (
    "CREATE TRIGGER outcomes_reference_their_prediction_on_truncate AFTER TRUNCATE "
    "ON {name} FOR EACH STATEMENT EXECUTE FUNCTION modelql_keep_partition_with_outcomes()"
)
"""A partition whose predictions have outcomes cannot be truncated on its own (migration
20261211_partition_truncate: statement triggers are not cloned onto partitions)."""


async def _create(connection: asyncpg.Connection, lower: datetime, upper: datetime) -> Partition:
    name = f"{PARTITIONS_SCHEMA}.{_TABLE}_p{lower.astimezone(UTC):%Y%m%d}"
    await connection.execute(
        f"CREATE TABLE {name} (LIKE public.{_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    await connection.execute(_KEEP_WITH_OUTCOMES.format(name=name))
    await connection.execute(
        f"ALTER TABLE public.{_TABLE} ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
    )
    oid = await connection.fetchval("SELECT $1::regclass::oid", name)
    return Partition(name, oid, lower, upper)


async def hold_for_reading(
    connection: asyncpg.Connection, *, since: datetime | None, until: datetime | None
) -> None:
    """Hold, until the transaction ends, the partitions overlapping [since, until) against
    `prune` (waiting for a prune under way to finish first)."""
    held = [
        partition.oid
        for partition in await partitions(connection)
        if (since is None or partition.upper > since)
        and (until is None or partition.lower is None or partition.lower < until)
    ]
    await connection.execute(
        "SELECT pg_advisory_xact_lock_shared($1, oid::int4) FROM unnest($2::oid[]) AS oid "
        "ORDER BY oid",
        READER_LOCKS,
        held,
    )


async def prune(
    connection: asyncpg.Connection,
    *,
    before: datetime,
    before_drop: BeforeDrop | None = None,
) -> list[Partition]:
    """Drop every partition entirely older than `before`, oldest first; the dropped ones. Each
    is detached (CONCURRENTLY: reads and inserts go on; no foreign key references it, so
    that is catalogue work), then the outcomes, live-feed commits and shadow answers of its
    predictions are deleted in batches, then it is dropped, then the idempotency records of
    its predictions. Roll-ups are kept. A partition an earlier prune detached and left is
    settled first: attached again if its outcomes were not counted yet, else finished.
    Refused (PartitionInUseError) while a reader (verify, archive) holds one of them;
    `connection` must not be in a transaction. `before_drop` (archiving) runs on each
    partition before its drop, holding it against readers but not the maintenance lock
    (creating partitions ahead goes on); when it fails, that partition and the newer ones
    are kept (PruneInterruptedError). Every replica's kept store answers are dropped (NOTIFY
    on the outcomes channel)."""
    async with _maintenance(connection):
        settled = await _settle_leftovers(connection)
        doomed = [p for p in await partitions(connection) if p.upper <= before]
        await _take_from_readers(connection, doomed)
    dropped: list[Partition] = []
    try:
        for partition in doomed:
            saved = None
            if before_drop is not None:
                try:
                    saved = await before_drop(connection, partition)
                except Exception as error:
                    raise PruneInterruptedError(partition, dropped, error) from error
            async with _maintenance(connection):
                try:
                    await _drop(connection, partition, saved_outcomes=saved)
                except OutcomesChangedError as error:
                    raise PruneInterruptedError(partition, dropped, error) from error
            dropped.append(partition)
    finally:
        await connection.execute(
            "SELECT pg_advisory_unlock($1, oid::int4) FROM unnest($2::oid[]) AS oid",
            READER_LOCKS,
            [partition.oid for partition in doomed],
        )
        if doomed or settled:
            await connection.execute(f"NOTIFY {OUTCOMES_CHANNEL}")
    return dropped


@asynccontextmanager
async def _maintenance(connection: asyncpg.Connection) -> AsyncIterator[None]:
    """The maintenance lock, held by the session (outside any transaction)."""
    await connection.execute("SELECT pg_advisory_lock($1)", MAINTENANCE_LOCK)
    try:
        yield
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MAINTENANCE_LOCK)


async def hold_for_archiving(connection: asyncpg.Connection, partition: Partition) -> bool:
    """Hold, until the transaction ends, one partition against `prune` (as readers do); False
    when a prune holds it, or when it is gone (pruned meanwhile)."""
    held = await connection.fetchval(
        "SELECT pg_try_advisory_xact_lock_shared($1, $2::oid::int4)", READER_LOCKS, partition.oid
    )
    return bool(held) and any(p.oid == partition.oid for p in await partitions(connection))


async def _take_from_readers(connection: asyncpg.Connection, doomed: Sequence[Partition]) -> None:
    """Lock every doomed partition against readers, or none of them."""
    taken: list[int] = []
    for partition in doomed:
        if not await connection.fetchval(
            "SELECT pg_try_advisory_lock($1, $2::oid::int4)", READER_LOCKS, partition.oid
        ):
            await connection.execute(
                "SELECT pg_advisory_unlock($1, oid::int4) FROM unnest($2::oid[]) AS oid",
                READER_LOCKS,
                taken,
            )
            raise PartitionInUseError(
                f"{partition.name} is being read by `modelql audit verify` or `modelql store "
                "archive`; nothing was pruned. Prune again once it has finished."
            )
        taken.append(partition.oid)


def _within(column: str) -> str:
    """`column` inside the range [$1, $2) ($1 null: no lower bound)."""
    return f"{column} < $2 AND ($1::timestamptz IS NULL OR {column} >= $1)"


async def _drop(
    connection: asyncpg.Connection, partition: Partition, *, saved_outcomes: int | None
) -> None:
    """Drop one partition (and what references it); OutcomesChangedError, dropping nothing,
    when `saved_outcomes` is given and is not the number of its outcomes. The detach comes
    first: once it is done no outcome can name one of its predictions any more (the rule
    `outcomes_reference_their_prediction` finds none), so the outcomes are counted then and
    deleted in batches, each a short transaction: writers' commits never wait behind the
    flush of one large delete. A comment on the table says how far it got, so that the next
    prune settles a detached table this one left (`_settle_leftovers`)."""
    upper = partition.upper
    bounds = f"{_bound_text(partition.lower)} {upper.isoformat()}"
    await connection.execute(f"COMMENT ON TABLE {partition.name} IS '{_DETACHING}{bounds}'")
    how = "FINALIZE" if partition.detaching else "CONCURRENTLY"
    await connection.execute(f"ALTER TABLE public.{_TABLE} DETACH PARTITION {partition.name} {how}")
    await _outlive_outcome_writers(connection)
    if saved_outcomes is not None:
        recorded = await connection.fetchval(
            f"SELECT count(*) FROM prediction_outcomes WHERE {_within('predicted_at')}",
            partition.lower,
            upper,
        )
        if recorded != saved_outcomes:
            await _attach(connection, partition.name, partition.lower, upper)
            raise OutcomesChangedError(
                f"{recorded} outcomes of {partition.name} where the archive holds "
                f"{saved_outcomes} (recorded since): archive it again"
            )
    await connection.execute(
        f"COMMENT ON TABLE {partition.name} IS '{_PRUNED_BELOW}{upper.isoformat()}'"
    )
    await _finish(connection, partition.name, upper)


async def _outlive_outcome_writers(connection: asyncpg.Connection) -> None:
    """Wait until every transaction writing outcomes when called has ended: an insert whose
    check read the partition still attached commits (or not) before its outcomes are counted
    and deleted; later ones find none of its predictions. Polled, not a lock: a lock would
    queue every new outcome writer behind the slowest one under way."""
    writing = await _outcome_writers(connection)
    while writing:
        await asyncio.sleep(WRITERS_POLL_S)
        writing &= await _outcome_writers(connection)


async def _outcome_writers(connection: asyncpg.Connection) -> set[str]:
    """The (virtual) transactions holding an outcome table for writing."""
    return {row[0] for row in await connection.fetch(_OUTCOME_WRITERS)}


async def _finish(connection: asyncpg.Connection, name: str, upper: datetime) -> None:
    """Delete what refers to a detached partition's time (everything older goes too: older
    partitions are gone), then the table, then the idempotency records of its predictions."""
    for table, column in _REFERRING:
        await _delete_before(connection, table, column, upper)
    await _drop_foreign_keys(connection, name)
    await connection.execute(f"DROP TABLE {name}")
    await _delete_before(connection, "idempotency_records", "created_at", upper)


async def _settle_leftovers(connection: asyncpg.Connection) -> bool:
    """Settle the tables a stopped prune left detached: attached again when their outcomes
    were not counted yet, finished when they were; whether any was finished."""
    leftovers = await connection.fetch(
        "SELECT n.nspname || '.' || c.relname AS name, obj_description(c.oid) AS note "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT c.relispartition "
        "AND (obj_description(c.oid) LIKE $2 OR obj_description(c.oid) LIKE $3)",
        PARTITIONS_SCHEMA,
        f"{_DETACHING}%",
        f"{_PRUNED_BELOW}%",
    )
    finished = False
    for name, note in leftovers:
        if note.startswith(_PRUNED_BELOW):
            await _finish(connection, name, datetime.fromisoformat(note[len(_PRUNED_BELOW) :]))
            finished = True
        else:
            lower, upper = (_bound(text) for text in note[len(_DETACHING) :].split(" "))
            assert upper is not None, f"{name}: {note}"
            await _attach(connection, name, lower, upper)
    return finished


async def _delete_before(
    connection: asyncpg.Connection, table: str, column: str, upper: datetime
) -> None:
    """Delete the rows of `table` whose `column` is before `upper`, DELETE_BATCH at a time
    (until none is left: a row moved meanwhile makes a batch short, not the last)."""
    statement = (
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} "
        f"WHERE {column} < $1 LIMIT {DELETE_BATCH}))"
    )
    while int((await connection.execute(statement, upper)).split()[-1]):
        pass


async def _attach(
    connection: asyncpg.Connection, name: str, lower: datetime | None, upper: datetime
) -> None:
    """Attach a detached partition again (the detach left a CHECK of its bounds: no scan)."""
    start = "MINVALUE" if lower is None else f"'{lower.isoformat()}'"
    await connection.execute(
        f"ALTER TABLE public.{_TABLE} ATTACH PARTITION {name} "
        f"FOR VALUES FROM ({start}) TO ('{upper.isoformat()}')"
    )
    await connection.execute(f"COMMENT ON TABLE {name} IS NULL")


async def _drop_foreign_keys(connection: asyncpg.Connection, name: str) -> None:
    """Drop a detached partition's foreign keys first, each in a short transaction of its own:
    dropping the table with them would hold the tables they reference (idempotency records)
    against inserts while its files are unlinked."""
    keys = await connection.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'",
        name,
    )
    for key in keys:
        await connection.execute(f'ALTER TABLE {name} DROP CONSTRAINT "{key[0]}"')
