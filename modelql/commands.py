"""What the `modelql` commands do; `modelql.cli` declares them and imports this module only when
a command runs, so that `modelql --help` stays fast."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import make_url
from strawberry.printer import print_schema

from modelql import schema_migrations
from modelql.app import create_app, persisted_queries
from modelql.embedded_postgres import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    PostgresNotFoundError,
)
from modelql.graph.persisted_queries import ManifestError
from modelql.graph.schema import build_schema
from modelql.logs import configure_logging
from modelql.models.artifacts import ArtifactStore
from modelql.models.demo import DEMO_VERSION_COUNT, train_demo
from modelql.outcome_files import OutcomeFileError, read_outcomes
from modelql.persistence.database import create_engine, create_sessionmaker
from modelql.persistence.partitions import (
    Partition,
    PartitionInUseError,
    PruneInterruptedError,
)
from modelql.registration_files import (
    describe_estimator,
    read_arguments,
    read_metrics,
    read_reference,
    read_signature,
)
from modelql.runtime import NotMigratedError, ensure_migrated, store_maintenance
from modelql.services import api_keys, outcomes, registration
from modelql.services.api_keys import ApiKeyError
from modelql.services.catalogue import Catalogue
from modelql.services.errors import RegistrationError, UserInputError, is_connection_failure
from modelql.services.freshness import Freshness
from modelql.services.inference import ModelCache
from modelql.services.model_access import ModelLimit
from modelql.services.prediction_audit import PredictionQuery
from modelql.services.verification import VerificationReport, Verifier
from modelql.settings import Settings, UnsafeExposureError, check_exposure
from modelql.workers import worker_environment

console = Console(stderr=True)

SCHEMA_FILE = Path("schema.graphql")
DEMO_ACTOR = "modelql train-demo"


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return settings


def _raise_system_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL: DATABASE_URL, or an embedded cluster stopped on exit (also on SIGTERM).
    A database that cannot be reached ends the command with one line, not a traceback."""
    if settings.database_url is None:
        with _embedded_database(settings) as url:
            yield url
        return
    try:
        yield settings.database_url
    except Exception as error:
        if not is_connection_failure(error):
            raise
        shown = make_url(settings.database_url).render_as_string(hide_password=True)
        console.print(
            f"[red]Cannot reach the database named by DATABASE_URL ({shown}): "
            f"{_root_cause(error)}[/red]"
        )
        raise typer.Exit(1) from None


def _root_cause(error: BaseException) -> str:
    """The innermost cause of an error, as one line."""
    while (cause := error.__cause__ or error.__context__) is not None:
        error = cause
    return f"{type(error).__name__}: {error}".splitlines()[0]


@contextmanager
def _embedded_database(settings: Settings) -> Iterator[str]:
    """An embedded cluster in the data directory, stopped on exit (also on SIGTERM)."""
    settings.pgdata_dir.parent.mkdir(parents=True, exist_ok=True)
    cluster = EmbeddedPostgres(settings.pgdata_dir, backend=settings.embedded_backend)
    previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        try:
            url = cluster.start()
        except (PostgresNotFoundError, EmbeddedPostgresError) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
        console.print(f"Embedded PostgreSQL ({cluster.backend_in_use}) in {cluster.data_dir}")
        yield url
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)


def _train_with_progress() -> list[Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("Training the demo catalogue", total=DEMO_VERSION_COUNT)

        def step(description: str) -> None:
            progress.update(task, description=f"Training {description}")
            progress.advance(task)

        trained = train_demo(on_step=step)
        progress.update(task, completed=DEMO_VERSION_COUNT, description="Demo catalogue trained")
    return trained


async def _prepare(settings: Settings, url: str, *, migrate: bool, demo: bool) -> None:
    """Migrate (or check) the database, then train the demo catalogue if it is empty."""
    engine = create_engine(url)
    try:
        await ensure_migrated(engine, url, migrate=migrate)
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session:
            if not demo or not await registration.catalogue_is_empty(session):
                return
        trained = await asyncio.to_thread(_train_with_progress)
        async with sessionmaker.begin() as session:
            registered = await registration.register_demo(
                session, _artifact_store(settings), trained, actor=DEMO_ACTOR
            )
        console.print(f"Registered {len(registered)} demo versions.")
    finally:
        await engine.dispose()


def _artifact_store(settings: Settings) -> ArtifactStore:
    settings.artifact_dir.mkdir(parents=True, exist_ok=True)
    return ArtifactStore(settings.artifact_dir)


def serve(
    host: str | None = None,
    port: int | None = None,
    demo: bool = True,
    migrate: bool | None = None,
    insecure: bool = False,
    workers: int = 1,
) -> None:
    """Start the API (with an embedded PostgreSQL unless DATABASE_URL is set)."""
    settings = _settings()
    updates = {"host": host, "port": port, "auto_migrate": migrate, "insecure": insecure or None}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    try:
        check_exposure(settings)
        persisted_queries(settings)
    except (UnsafeExposureError, ManifestError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    with database(settings) as url:
        try:
            asyncio.run(
                _prepare(
                    settings,
                    url,
                    migrate=settings.should_auto_migrate,
                    demo=demo and settings.train_demo_if_empty,
                )
            )
        except (NotMigratedError, RegistrationError) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
        console.print(f"ModelQL on http://{settings.host}:{settings.port}/graphql")
        options: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "log_config": None,
            "access_log": False,
            "timeout_graceful_shutdown": 10,
        }
        if workers == 1:
            uvicorn.run(create_app(settings, database_url=url), **options)
            return
        with worker_environment(settings, url):
            uvicorn.run(
                "modelql.workers:create_worker_app", factory=True, workers=workers, **options
            )


def migrate() -> None:
    """Apply every pending database migration."""
    settings = _settings()
    with database(settings) as url:
        schema_migrations.upgrade_to_head(url)
    console.print(f"Database at migration {schema_migrations.head_revision()}.")


def train_demo_catalogue() -> None:
    """Train and register the demo catalogue, unless the catalogue already holds models."""
    settings = _settings()
    with database(settings) as url:
        try:
            asyncio.run(_prepare(settings, url, migrate=settings.should_auto_migrate, demo=True))
        except (NotMigratedError, RegistrationError) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None


async def _with_session(url: str, work: Any) -> Any:
    """Run `work(session)` in one committed transaction on a migrated database."""
    engine = create_engine(url)
    try:
        await ensure_migrated(engine, url, migrate=False)
        async with create_sessionmaker(engine).begin() as session:
            return await work(session)
    finally:
        await engine.dispose()


async def _register(settings: Settings, url: str, artifact: Path, **options: Any) -> str:
    estimator = joblib.load(artifact)
    signature = read_signature(options["signature"]) if options["signature"] else None
    described = describe_estimator(estimator, model_name=options["model"], signature=signature)
    if options["metrics"]:
        described.performance = read_metrics(options["metrics"])
    if options["arguments"]:
        described.hyperparameters, described.data_arguments = read_arguments(options["arguments"])
    if options["reference_data"]:
        described.reference = read_reference(options["reference_data"], described, estimator)
    described.aliases = [options["alias"]] if options["alias"] else []
    described.description = options["description"]
    described.number = options["version"]
    version = await _with_session(
        url,
        lambda session: registration.register_version(
            session,
            _artifact_store(settings),
            described,
            artifact_file=artifact,
            actor=options["actor"],
        ),
    )
    return f"Registered {options['model']} v{version.number} ({version.artifact_sha256})."


def register(
    artifact: Path,
    model: str,
    metrics: Path | None = None,
    args: Path | None = None,
    signature: Path | None = None,
    reference_data: Path | None = None,
    alias: str | None = None,
    version: int | None = None,
    description: str | None = None,
    actor: str = "cli",
) -> None:
    """Register a joblib-saved scikit-learn estimator as a new, immutable version."""
    settings = _settings()
    with database(settings) as url:
        try:
            message = asyncio.run(
                _register(
                    settings,
                    url,
                    artifact,
                    model=model,
                    metrics=metrics,
                    arguments=args,
                    signature=signature,
                    reference_data=reference_data,
                    alias=alias,
                    version=version,
                    description=description,
                    actor=actor,
                )
            )
        except (RegistrationError, NotMigratedError) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
    console.print(message)


def alias_set(
    model: str,
    alias: str,
    version: int,
    actor: str = "cli",
) -> None:
    """Point ALIAS of MODEL at VERSION; the move is kept in the alias history."""
    settings = _settings()
    with database(settings) as url:
        try:
            asyncio.run(
                _with_session(
                    url,
                    lambda session: registration.set_alias(
                        session, model_name=model, alias=alias, number=version, actor=actor
                    ),
                )
            )
        except (RegistrationError, NotMigratedError) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
    console.print(f"{model}: {alias} -> version {version}")


def export_schema(
    output: Path = SCHEMA_FILE,
) -> None:
    """Write the GraphQL schema printed from code (schema.graphql)."""
    output.write_text(print_schema(build_schema()) + "\n")
    console.print(f"Wrote {output}")


def _run_key_command(work: Any) -> Any:
    settings = _settings()
    with database(settings) as url:
        try:
            return asyncio.run(_with_session(url, work))
        except (ApiKeyError, NotMigratedError) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None


def keys_create(
    name: str,
    scopes: str = "read",
    rate: str | None = None,
    models: str | None = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    parsed = _parse_scopes(scopes)
    limit = _parse_models(models) if models is not None else None
    _, plain = _run_key_command(
        lambda session: api_keys.create(
            session, name=name, scopes=parsed, rate_limit=rate, models=limit
        )
    )
    budget = f"rate {rate}" if rate else "the default rate"
    reach = f"models {', '.join(limit.patterns)}" if limit else "every model"
    console.print(
        f"Key {name!r} with scopes {', '.join(sorted(parsed))}, {budget} and {reach}. Store it now:"
    )
    typer.echo(plain)


def _parse_scopes(text: str) -> frozenset[api_keys.Scope]:
    try:
        return api_keys.parse_scopes(text)
    except ApiKeyError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None


def _parse_models(text: str) -> ModelLimit:
    try:
        return api_keys.parse_models(text)
    except ApiKeyError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None


def keys_list() -> None:
    """List keys (never their secret): name, scopes, created, revoked."""
    rows = _run_key_command(api_keys.list_all)
    for row in rows:
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        rate = row.rate_limit or "default rate"
        created = f"{row.created_at:%Y-%m-%d %H:%M}"
        reach = ",".join(row.models) if row.models is not None else "all models"
        typer.echo(f"{row.name}\t{','.join(row.scopes)}\t{rate}\t{reach}\t{created}\t{state}")


def keys_revoke(name: str) -> None:
    """Revoke a key by name; requests with it are refused from now on."""
    _run_key_command(lambda session: api_keys.revoke(session, name=name))
    console.print(f"Revoked {name!r}.")


def _moment(text: str | None) -> datetime | None:
    """An ISO-8601 date or time; UTC when it names no time zone."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO-8601 date or time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _verify(
    settings: Settings, url: str, query: PredictionQuery, sample: int | None
) -> VerificationReport:
    engine = create_engine(url)
    model_cache = ModelCache(ArtifactStore(settings.artifact_dir))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        await ensure_migrated(engine, url, migrate=False)
        verifier = Verifier(
            sessionmaker=create_sessionmaker(engine),
            catalogue=Catalogue(Freshness.never()),
            model_cache=model_cache,
        )
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("Re-scoring stored predictions", total=None)
            return await verifier.verify(
                query,
                sample=sample,
                on_total=lambda total: progress.update(task, total=total),
                on_progress=lambda done: progress.advance(task, done),
            )
    finally:
        model_cache.close()
        await engine.dispose()


def _print_report(report: VerificationReport, title: str = "Stored predictions re-scored") -> None:
    table = Table(title=title)
    for column in ("Model version", "Checked", "Matched", "Mismatched", "Unverifiable"):
        table.add_column(column, justify="left" if column == "Model version" else "right")
    for tally in report.tallies.values():
        matched = tally.checked - tally.mismatched - tally.unverifiable
        table.add_row(
            f"{tally.model} v{tally.version.number}",
            str(tally.checked),
            str(matched),
            f"[red]{tally.mismatched}[/red]" if tally.mismatched else "0",
            f"[red]{tally.unverifiable}[/red]" if tally.unverifiable else "0",
        )
    console.print(table)
    for tally in report.tallies.values():
        if tally.problem:
            console.print(f"[red]v{tally.version.number}: {tally.problem}[/red]")
    if report.mismatches:
        console.print(
            f"[red]{len(report.mismatches)} mismatching predictions (ids on stdout)[/red]"
        )
    for prediction_id in report.mismatches:
        typer.echo(prediction_id)


def audit_verify(
    model: str | None = None,
    version: int | None = None,
    since: str | None = None,
    until: str | None = None,
    sample: int | None = None,
    archive: str | None = None,
) -> None:
    """Re-score stored predictions with the artifact of their version (sha256 checked) and
    compare every output exactly; exit status 1 on any mismatch or unloadable artifact. With
    `archive`, the archived predictions there instead, and the archive checked against its
    manifests."""
    settings = _settings()
    if archive is not None:
        if any(option is not None for option in (model, version, since, until, sample)):
            console.print(
                "[red]--archive verifies a whole archive: --model, --version, --since, --until "
                "and --sample apply to stored predictions only.[/red]"
            )
            raise typer.Exit(2)
        _audit_verify_archive(settings, archive)
        return
    query = PredictionQuery(
        model=model, version=version, created_after=_moment(since), created_before=_moment(until)
    )
    with database(settings) as url:
        try:
            report = asyncio.run(_verify(settings, url, query, sample))
        except NotMigratedError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
    _print_report(report)
    if not report.passed:
        raise typer.Exit(1)
    console.print(f"All {sum(t.checked for t in report.tallies.values())} predictions match.")


async def _verify_archive(settings: Settings, url: str, target: str) -> Any:
    from modelql.services.archive_verification import ArchiveVerifier

    engine = create_engine(url)
    model_cache = ModelCache(ArtifactStore(settings.artifact_dir))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        await ensure_migrated(engine, url, migrate=False)
        verifier = ArchiveVerifier(
            sessionmaker=create_sessionmaker(engine),
            catalogue=Catalogue(Freshness.never()),
            model_cache=model_cache,
        )
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("Re-scoring archived predictions", total=None)
            return await verifier.verify(
                target,
                on_total=lambda total: progress.update(task, total=total),
                on_progress=lambda done: progress.advance(task, done),
            )
    finally:
        model_cache.close()
        await engine.dispose()


def _audit_verify_archive(settings: Settings, target: str) -> None:
    """Verify an archive: its files against their manifests, its predictions re-scored."""
    from modelql.persistence.parquet_archive import ArchiveLocationError

    with database(settings) as url:
        try:
            report = asyncio.run(_verify_archive(settings, url, target))
        except (NotMigratedError, ArchiveLocationError) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
    _print_report(report.verification, title="Archived predictions re-scored")
    for found in report.problems:
        console.print(f"[red]{found.partition}: {found.problem}[/red]")
    if not report.passed:
        console.print(
            f"[red]The archive failed verification ({len(report.problems)} problems).[/red]"
        )
        raise typer.Exit(1)
    console.print(
        f"All {report.predictions} archived predictions of {report.partitions} partitions "
        f"match (with {report.outcomes} outcomes), and every file its manifest's row count "
        "and SHA-256."
    )


async def _import_outcomes(
    settings: Settings, url: str, requests: list[outcomes.OutcomeRequest], actor: str
) -> None:
    """Record every outcome in one transaction, in batches of max_batch_size, with progress."""
    catalogue = Catalogue(Freshness.never())
    size = settings.max_batch_size
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())

    async def work(session: Any) -> None:
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("Recording outcomes", total=len(requests))
            for start in range(0, len(requests), size):
                batch = requests[start : start + size]
                try:
                    await outcomes.record(
                        session, catalogue, batch, caller=actor, max_batch_size=size
                    )
                except UserInputError as error:
                    raise UserInputError(
                        [_at_line(problem, start) for problem in error.problems]
                    ) from None
                progress.advance(task, len(batch))

    await _with_session(url, work)


def _at_line(problem: Any, start: int) -> Any:
    """The problem with its batch position turned into the CSV line (header is line 1)."""
    path = list(problem.path)
    if len(path) > 1:
        path[1] = f"line {int(path[1]) + start + 2}"
    return type(problem)(tuple(path), problem.code, problem.message)


def outcomes_import(
    file: Path,
    actor: str = "cli",
) -> None:
    """Record outcomes from a CSV (columns: prediction_id or request_id [+ batch_index],
    label or value, optional observed_at); all or nothing."""
    settings = _settings()
    try:
        requests = read_outcomes(file)
    except OutcomeFileError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    with database(settings) as url:
        try:
            asyncio.run(_import_outcomes(settings, url, requests, actor))
        except UserInputError as error:
            for problem in error.problems:
                console.print(f"[red]{' / '.join(problem.path[1:])}: {problem.message}[/red]")
            console.print("Nothing was recorded.")
            raise typer.Exit(1) from None
        except NotMigratedError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
    console.print(
        f"Recorded {len(requests)} outcomes (repeats of the current outcome change nothing)."
    )


async def _check_migrated(url: str) -> None:
    engine = create_engine(url)
    try:
        await ensure_migrated(engine, url, migrate=False)
    finally:
        await engine.dispose()


async def _prune(settings: Settings, url: str, retention: timedelta) -> list[Partition]:
    await _check_migrated(url)
    return await store_maintenance(settings, url).prune(retention)


def _retention_days(settings: Settings, retention_days: int | None) -> int:
    days = retention_days or settings.retention_days
    if days is None:
        console.print(
            "[red]No retention: pass --retention-days or set MODELQL_RETENTION_DAYS.[/red]"
        )
        raise typer.Exit(2)
    return days


def store_prune(retention_days: int | None = None) -> None:
    """Drop the partitions of predictions entirely older than the retention (each archived
    first with MODELQL_ARCHIVE_URL)."""
    settings = _settings()
    days = _retention_days(settings, retention_days)
    with database(settings) as url:
        try:
            dropped = asyncio.run(_prune(settings, url, timedelta(days=days)))
        except (NotMigratedError, PartitionInUseError) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
        except PruneInterruptedError as error:
            for partition in error.dropped:
                typer.echo(partition.name)
            console.print(
                f"[red]Dropped {len(error.dropped)} partitions, then archiving "
                f"{error.partition.name} failed: {error.__cause__}. It and the newer "
                "partitions were kept.[/red]"
            )
            raise typer.Exit(1) from None
    for partition in dropped:
        typer.echo(partition.name)
    archived = " (each archived first)" if settings.archive_url else ""
    console.print(
        f"Dropped {len(dropped)} partitions of predictions older than {days} days{archived} "
        "(roll-ups kept)."
    )


async def _archive(settings: Settings, url: str, target: str, retention: timedelta) -> list[Any]:
    from modelql.services.archiving import PartitionArchiver

    await _check_migrated(url)
    return await store_maintenance(settings, url).archive(
        PartitionArchiver(target),
        retention,
        on_archived=lambda archived: typer.echo(
            f"{archived.partition.name}\t{archived.manifest.predictions.rows}\t"
            f"{archived.manifest.outcomes.rows}\t"
            f"{'written' if archived.written else 'already archived'}"
        ),
    )


def store_archive(to: str | None = None, retention_days: int | None = None) -> None:
    """Archive to Parquet the partitions of predictions a prune would drop, dropping nothing."""
    from modelql.persistence.parquet_archive import ArchiveLocation, ArchiveLocationError

    settings = _settings()
    days = _retention_days(settings, retention_days)
    target = to or settings.archive_url
    if target is None:
        console.print("[red]No destination: pass --to or set MODELQL_ARCHIVE_URL.[/red]")
        raise typer.Exit(2)
    with database(settings) as url:
        try:
            archived = asyncio.run(_archive(settings, url, target, timedelta(days=days)))
        except (NotMigratedError, PartitionInUseError, ArchiveLocationError) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
    written = [a for a in archived if a.written]
    console.print(
        f"Archived {len(archived)} partitions of predictions older than {days} days to "
        f"{ArchiveLocation(target).shown} ({len(written)} written, "
        f"{len(archived) - len(written)} already archived; "
        f"{sum(a.manifest.predictions.rows for a in archived)} predictions)."
    )
