"""Archive before drop: `modelql store archive` writes each expiring partition (predictions and
their outcomes) to Parquet with a manifest; `store prune` with MODELQL_ARCHIVE_URL archives
first and keeps a partition whose archive failed; `audit verify --archive` re-scores archived
predictions and reports tampering. Real PostgreSQL (a copy of a template database per test),
real files, real `modelql` processes."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import boto3
import orjson
import pyarrow.parquet as pq
import pytest
from archive_support import (
    OUTCOMES_PER_AGE,
    STORED,
    build_template,
    canonical_sha256,
    copy_of,
    expired_partitions,
)
from moto.server import ThreadedMotoServer
from support import drop_database, libpq_url, make_settings
from test_cli_embedded import _base_env, _run_cli, _said

from modelql.models.artifacts import ArtifactStore
from modelql.persistence import partitions
from modelql.persistence.archive_format import Manifest
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.persistence.partitions import Partition, PruneInterruptedError
from modelql.runtime import store_maintenance
from modelql.services.archive_verification import ArchiveReport, ArchiveVerifier
from modelql.services.archiving import PartitionArchiver
from modelql.services.catalogue import Catalogue
from modelql.services.freshness import Freshness
from modelql.services.inference import ModelCache
from modelql.services.store_maintenance import StoreMaintenance

pytestmark = pytest.mark.slow  # starts `modelql` processes

ARCHIVE = ["store", "archive", "--retention-days", "7"]
PRUNE = ["store", "prune", "--retention-days", "7"]


@pytest.fixture(scope="module")
def archive_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory (artifacts) of the template database and its copies."""
    return tmp_path_factory.mktemp("archive-data")


@pytest.fixture(scope="module")
async def template(server_url: str, archive_data_dir: Path) -> AsyncIterator[str]:
    url = await build_template(server_url, archive_data_dir)
    try:
        yield url
    finally:
        await drop_database(server_url, url)


@pytest.fixture
async def store(server_url: str, template: str) -> AsyncIterator[str]:
    """This test's own copy of the template."""
    async with copy_of(server_url, template) as url:
        yield url


@pytest.fixture
def env(store: str, archive_data_dir: Path) -> dict[str, str]:
    return _base_env(DATABASE_URL=libpq_url(store), MODELQL_DATA_DIR=str(archive_data_dir))


def cli(args: list[str], env: dict[str, str]):
    return asyncio.to_thread(_run_cli, args, env)


async def verify_in_process(url: str, data_dir: Path, target: str) -> ArchiveReport:
    engine = create_engine(url)
    cache = ModelCache(ArtifactStore(data_dir / "artifacts"))
    try:
        verifier = ArchiveVerifier(
            sessionmaker=create_sessionmaker(engine),
            catalogue=Catalogue(Freshness.never()),
            model_cache=cache,
        )
        return await verifier.verify(target)
    finally:
        cache.close()
        await engine.dispose()


async def stored(url: str) -> int:
    connection = await asyncpg.connect(libpq_url(url))
    try:
        return await connection.fetchval("SELECT count(*) FROM predictions")
    finally:
        await connection.close()


def files(directory: Path) -> dict[str, tuple[int, int]]:
    """Each file's (size, modification time in ns)."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()}


def manifest(directory: Path, partition: str) -> Manifest:
    return Manifest.from_json((directory / f"{partition}.manifest.json").read_bytes())


def short(name: str) -> str:
    return name.split(".")[1]


async def test_archive_then_prune_then_verify_the_archive(
    store: str, env: dict[str, str], tmp_path: Path
):
    counted = await expired_partitions(store)
    expired = [partition for partition, _, _ in counted]
    expected_hashes = [await canonical_sha256(store, p) for p in expired]
    archive_dir = tmp_path / "archive"

    archived = await cli([*ARCHIVE, "--to", str(archive_dir)], env)

    assert archived.returncode == 0, _said(archived)
    assert [(rows, outcomes) for _, rows, outcomes in counted if rows] == [
        (STORED, OUTCOMES_PER_AGE)
    ] * 2
    lines = [line.split("\t") for line in archived.stdout.splitlines()]
    assert lines == [[p.name, str(rows), str(outcomes), "written"] for p, rows, outcomes in counted]
    assert f"Archived {len(expired)} partitions" in _said(archived)
    assert sorted(files(archive_dir)) == sorted(
        f"{short(p.name)}.{kind}"
        for p in expired
        for kind in ("predictions.parquet", "outcomes.parquet", "manifest.json")
    )
    for (partition, rows, outcomes), (predictions_sha, outcomes_sha) in zip(
        counted, expected_hashes, strict=True
    ):
        written = manifest(archive_dir, short(partition.name))
        assert (written.lower, written.upper) == (partition.lower, partition.upper)
        assert (written.predictions.rows, written.outcomes.rows) == (rows, outcomes)
        # The documented encoding, computed from the store apart from the archive's code.
        assert (written.predictions.sha256, written.outcomes.sha256) == (
            predictions_sha,
            outcomes_sha,
        )
        table = pq.read_table(archive_dir / written.predictions.name)
        assert table.num_rows == rows
        assert all(partition.lower <= t < partition.upper for t in table["created_at"].to_pylist())
    before = files(archive_dir)

    pruned = await cli(PRUNE, {**env, "MODELQL_ARCHIVE_URL": str(archive_dir)})

    assert pruned.returncode == 0, _said(pruned)
    assert pruned.stdout.split() == [p.name for p in expired]
    assert "(each archived first)" in _said(pruned)
    assert files(archive_dir) == before  # already archived: nothing rewritten
    assert await stored(store) == STORED  # only today's

    verified = await cli(["audit", "verify", "--archive", str(archive_dir)], env)

    assert verified.returncode == 0, _said(verified)
    said = _said(verified)
    assert f"All {2 * STORED} archived predictions of {len(expired)} partitions match" in said
    assert "iris-classifier v1" in verified.stderr

    narrowed = await cli(["audit", "verify", "--archive", str(archive_dir), "--sample", "5"], env)
    assert narrowed.returncode == 2
    assert "--sample apply to stored predictions only" in _said(narrowed)


async def test_a_tampered_archive_is_reported(
    store: str, env: dict[str, str], archive_data_dir: Path, tmp_path: Path
):
    archive_dir = tmp_path / "archive"
    assert (await cli([*ARCHIVE, "--to", str(archive_dir)], env)).returncode == 0
    first, second = (short(p.name) for p, rows, _ in await expired_partitions(store) if rows)
    assert (await verify_in_process(store, archive_data_dir, str(archive_dir))).passed

    def tampered(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(archive_dir, copy)
        return copy

    # An output changed: a label swapped in the first prediction of a classifier.
    changed = tampered("changed")
    path = changed / f"{first}.predictions.parquet"
    rows = pq.read_table(path).to_pylist()
    index = next(i for i, row in enumerate(rows) if row["label"] is not None)
    rows[index]["label"] = "setosa" if rows[index]["label"] != "setosa" else "virginica"
    pq.write_table(pq.read_table(path).from_pylist(rows, schema=pq.read_schema(path)), path)
    # A row removed.
    removed = tampered("removed")
    path = removed / f"{second}.predictions.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(1), path)
    # The manifest edited: another hash for the outcomes.
    edited = tampered("edited")
    path = edited / f"{first}.manifest.json"
    content = orjson.loads(path.read_bytes())
    content["outcomes"]["sha256"] = "0" * 64
    path.write_bytes(orjson.dumps(content))
    # A file missing, and a manifest missing.
    missing = tampered("missing")
    (missing / f"{first}.outcomes.parquet").unlink()
    (missing / f"{second}.manifest.json").unlink()

    reports = {
        name: await verify_in_process(store, archive_data_dir, str(tmp_path / name))
        for name in ("changed", "removed", "edited", "missing")
    }

    def problems(report: ArchiveReport) -> list[tuple[str, str]]:
        return [(found.partition, found.problem) for found in report.problems]

    assert not any(report.passed for report in reports.values())
    assert problems(reports["changed"]) == [
        (first, f"the rows of {first}.predictions.parquet do not match its manifest's SHA-256")
    ]
    assert [str(i) for i in reports["changed"].verification.mismatches] == [rows[index]["id"]]
    assert problems(reports["removed"]) == [
        (
            second,
            f"{second}.predictions.parquet holds {STORED - 1} rows, its manifest says {STORED}",
        )
    ]
    assert problems(reports["edited"]) == [
        (first, f"the rows of {first}.outcomes.parquet do not match its manifest's SHA-256")
    ]
    assert reports["edited"].verification.passed
    assert sorted(problems(reports["missing"])) == [
        (first, f"{first}.outcomes.parquet is missing"),
        (second, f"{second}.manifest.json is missing"),
    ]

    command = await cli(["audit", "verify", "--archive", str(changed)], env)

    assert command.returncode == 1
    assert command.stdout.split() == [rows[index]["id"]]
    assert "do not match its manifest's SHA-256" in _said(command)
    assert "The archive failed verification (1 problems)" in _said(command)


async def test_archiving_again_is_idempotent(store: str, env: dict[str, str], tmp_path: Path):
    archive_dir = tmp_path / "archive"
    assert (await cli([*ARCHIVE, "--to", str(archive_dir)], env)).returncode == 0
    first_run = files(archive_dir)
    counted = await expired_partitions(store)
    oldest = next(partition for partition, rows, _ in counted if rows)

    again = await cli([*ARCHIVE, "--to", str(archive_dir)], env)

    assert again.returncode == 0, _said(again)
    assert [line.split("\t")[-1] for line in again.stdout.splitlines()] == [
        "already archived"
    ] * len(counted)
    assert files(archive_dir) == first_run

    # An outcome recorded since for an archived prediction: that partition is written anew.
    connection = await asyncpg.connect(libpq_url(store))
    try:
        await connection.execute(
            "INSERT INTO prediction_outcomes (id, prediction_id, predicted_at, label, "
            "observed_at) SELECT gen_random_uuid(), id, created_at, 'setosa', created_at "
            f"FROM {oldest.name} ORDER BY created_at DESC LIMIT 1"
        )
    finally:
        await connection.close()
    (archive_dir / f"{short(oldest.name)}.predictions.parquet.tmp-leftover").write_bytes(b"x")

    third = await cli([*ARCHIVE, "--to", str(archive_dir)], env)

    assert third.returncode == 0, _said(third)
    assert [line.split("\t")[2:] for line in third.stdout.splitlines()] == [
        [str(outcomes + 1), "written"] if p == oldest else [str(outcomes), "already archived"]
        for p, _, outcomes in counted
    ]
    assert sorted(files(archive_dir)) == sorted(first_run)  # no duplicate, no leftover
    assert (
        manifest(archive_dir, short(oldest.name)).outcomes.sha256
        == (await canonical_sha256(store, oldest))[1]
    )
    verified = await cli(["audit", "verify", "--archive", str(archive_dir)], env)
    assert verified.returncode == 0, _said(verified)


async def test_prune_keeps_a_partition_whose_archive_failed(
    store: str, env: dict[str, str], tmp_path: Path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unwritable = blocker / "archive"

    pruned = await cli(PRUNE, {**env, "MODELQL_ARCHIVE_URL": str(unwritable)})

    assert pruned.returncode == 1
    expired = await expired_partitions(store)
    assert f"Dropped 0 partitions, then archiving {expired[0][0].name} failed" in _said(pruned)
    assert "It and the newer partitions were kept" in _said(pruned)
    assert pruned.stdout == ""
    assert await stored(store) == 3 * STORED
    assert [rows for _, rows, _ in expired if rows] == [STORED, STORED]


async def test_prune_and_archive_refuse_each_other(
    store: str, env: dict[str, str], archive_data_dir: Path, tmp_path: Path
):
    archive_dir = tmp_path / "archive"
    oldest = (await expired_partitions(store))[0][0]

    # An archive holds the oldest partition: prune refuses and drops nothing.
    archiver = await asyncpg.connect(libpq_url(store))
    try:
        async with archiver.transaction():
            assert await partitions.hold_for_archiving(archiver, oldest)
            refused = await cli(PRUNE, env)
    finally:
        await archiver.close()

    assert refused.returncode == 1
    assert (
        f"{oldest.name} is being read by `modelql audit verify` or `modelql store archive`; "
        "nothing was pruned" in _said(refused)
    )
    assert await stored(store) == 3 * STORED

    # A prune holds the partitions (it is archiving the first): an archive is refused.
    pruning = await asyncpg.connect(libpq_url(store))
    entered, release = asyncio.Event(), asyncio.Event()

    async def before_drop(connection: asyncpg.Connection, partition: Partition):
        entered.set()
        await release.wait()

    try:
        prune = asyncio.create_task(
            partitions.prune(pruning, before=oldest.upper, before_drop=before_drop)
        )
        await entered.wait()
        archive = await cli([*ARCHIVE, "--to", str(archive_dir)], env)
        release.set()
        dropped = await prune
    finally:
        await pruning.close()

    assert archive.returncode == 1
    assert f"{oldest.name} is being pruned; archived 0 partitions before it" in _said(archive)
    assert dropped == [oldest]
    assert not (archive_dir / f"{short(oldest.name)}.manifest.json").exists()


@pytest.fixture
def s3_url() -> Iterator[str]:
    """A bucket on an S3-compatible server (moto's) run in this process, on loopback."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, **S3_CREDENTIALS).create_bucket(Bucket="audit")
        yield f"s3://audit/modelql?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    finally:
        server.stop()


S3_CREDENTIALS = {
    "aws_access_key_id": "archive-tests",
    "aws_secret_access_key": "archive-tests",
    "region_name": "us-east-1",
}


async def test_an_s3_compatible_store_holds_the_archive(
    store: str, env: dict[str, str], s3_url: str
):
    env = {
        **env,
        "AWS_ACCESS_KEY_ID": "archive-tests",
        "AWS_SECRET_ACCESS_KEY": "archive-tests",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MODELQL_ARCHIVE_URL": s3_url,
    }
    counted = await expired_partitions(store)
    endpoint = "http://" + s3_url.split("endpoint_override=")[1].split("&")[0]
    bucket = boto3.client("s3", endpoint_url=endpoint, **S3_CREDENTIALS)

    def objects() -> dict[str, str]:
        listed = bucket.list_objects_v2(Bucket="audit", Prefix="modelql/").get("Contents", [])
        return {item["Key"]: item["ETag"] for item in listed if not item["Key"].endswith("/")}

    archived = await cli(ARCHIVE, env)
    assert archived.returncode == 0, _said(archived)
    assert "to s3://audit/modelql (" in _said(archived)  # the query (endpoint) not shown
    written = objects()
    assert len(written) == 3 * len(counted)
    assert not any(".tmp-" in key for key in written)

    pruned = await cli(PRUNE, env)
    assert pruned.returncode == 0, _said(pruned)
    assert pruned.stdout.split() == [p.name for p, _, _ in counted]
    assert objects() == written
    verified = await cli(["audit", "verify", "--archive", s3_url], env)
    assert verified.returncode == 0, _said(verified)
    assert f"All {2 * STORED} archived predictions" in _said(verified)

    first = next(short(p.name) for p, rows, _ in counted if rows)
    key = f"modelql/{first}.manifest.json"
    content = orjson.loads(bucket.get_object(Bucket="audit", Key=key)["Body"].read())
    content["predictions"]["rows"] -= 1
    bucket.put_object(Bucket="audit", Key=key, Body=orjson.dumps(content))

    tampered = await cli(["audit", "verify", "--archive", s3_url], env)
    assert tampered.returncode == 1
    assert (
        f"{first}: {first}.predictions.parquet holds {STORED} rows, its manifest says "
        f"{STORED - 1}" in _said(tampered)
    )


async def test_the_services_retention_archives_before_it_drops(
    store: str, archive_data_dir: Path, tmp_path: Path
):
    counted = await expired_partitions(store)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    def maintenance(archive_url: Path) -> StoreMaintenance:
        settings = make_settings(
            store, archive_data_dir, retention_days=7, archive_url=str(archive_url)
        )
        return store_maintenance(settings, store)

    with pytest.raises(PruneInterruptedError) as failed:
        await maintenance(blocker / "archive").prune()
    dropped = await maintenance(tmp_path / "archive").prune()

    assert failed.value.partition == counted[0][0] and failed.value.dropped == []
    assert dropped == [partition for partition, _, _ in counted]
    assert await stored(store) == STORED
    report = await verify_in_process(store, archive_data_dir, str(tmp_path / "archive"))
    assert report.passed and report.predictions == 2 * STORED


async def test_an_outcome_recorded_after_the_archive_stops_the_drop(store: str, tmp_path: Path):
    expired = await expired_partitions(store)
    oldest = next(partition for partition, rows, _ in expired if rows)
    empty_before = [p for p, _, _ in expired if p.upper <= oldest.upper and p != oldest]
    archiver = PartitionArchiver(str(tmp_path / "archive"))

    async def archive_then_record(connection: asyncpg.Connection, partition: Partition) -> int:
        archived = await archiver.archive(connection, partition)
        await connection.execute(
            "INSERT INTO prediction_outcomes (id, prediction_id, predicted_at, label, "
            "observed_at) SELECT gen_random_uuid(), id, created_at, 'setosa', created_at "
            f"FROM {partition.name} LIMIT 1"
        )
        return archived.manifest.outcomes.rows

    connection = await asyncpg.connect(libpq_url(store))
    try:
        with pytest.raises(PruneInterruptedError) as stopped:
            await partitions.prune(connection, before=oldest.upper, before_drop=archive_then_record)
    finally:
        await connection.close()

    assert stopped.value.partition == oldest and stopped.value.dropped == empty_before
    assert "outcomes of" in str(stopped.value) and "archive it again" in str(stopped.value)
    assert await stored(store) == 3 * STORED
    counts = {p.name: outcomes for p, _, outcomes in await expired_partitions(store)}
    assert counts[oldest.name] == OUTCOMES_PER_AGE + 1  # nothing deleted
