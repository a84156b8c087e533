"""The `modelql` command line: serve, migrate, train the demo, register versions, move aliases."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import joblib
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from strawberry.printer import print_schema

from graph.schema import build_schema
from modelql import migrations
from modelql.app import NotMigratedError, create_app, ensure_migrated
from modelql.logs import configure_logging
from modelql.registration_files import (
    describe_estimator,
    read_arguments,
    read_metrics,
    read_signature,
)
from modelql.settings import Settings, UnsafeExposureError, check_exposure
from models.artifacts import ArtifactStore
from models.demo import DEMO_VERSION_COUNT, train_demo
from persistence.database import create_engine, create_sessionmaker
from persistence.embedded import EmbeddedPostgres, PostgresNotFoundError
from services import api_keys, registration
from services.api_keys import ApiKeyError
from services.errors import RegistrationError

app = typer.Typer(help="ModelQL: a GraphQL API over a model catalogue and a prediction store.")
alias_app = typer.Typer(help="Point aliases such as `production` at versions.")
app.add_typer(alias_app, name="alias")
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.")
app.add_typer(keys_app, name="keys")
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
    """The database URL: DATABASE_URL, or an embedded cluster stopped on exit (also on SIGTERM)."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    settings.pgdata_dir.parent.mkdir(parents=True, exist_ok=True)
    cluster = EmbeddedPostgres(settings.pgdata_dir, backend=settings.embedded_backend)
    previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        try:
            url = cluster.start()
        except PostgresNotFoundError as error:
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


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: MODELQL_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: MODELQL_PORT.")] = None,
    demo: Annotated[
        bool, typer.Option(help="Train and register the demo catalogue when it is empty.")
    ] = True,
    migrate: Annotated[
        bool | None,
        typer.Option(help="Migrate on start. Default: yes when embedded, else no."),
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Allow MODELQL_AUTH_MODE=disabled on a non-loopback address.")
    ] = False,
) -> None:
    """Start the API (with an embedded PostgreSQL unless DATABASE_URL is set)."""
    settings = _settings()
    updates = {"host": host, "port": port, "auto_migrate": migrate}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    try:
        check_exposure(settings, insecure=insecure)
    except UnsafeExposureError as error:
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
        except NotMigratedError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
        console.print(f"ModelQL on http://{settings.host}:{settings.port}/graphql")
        uvicorn.run(
            create_app(settings, database_url=url),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )


@app.command("migrate")
def migrate_command() -> None:
    """Apply every pending database migration."""
    settings = _settings()
    with database(settings) as url:
        migrations.upgrade_to_head(url)
    console.print(f"Database at migration {migrations.head_revision()}.")


@app.command("train-demo")
def train_demo_command() -> None:
    """Train and register the demo catalogue, unless the catalogue already holds models."""
    settings = _settings()
    with database(settings) as url:
        asyncio.run(_prepare(settings, url, migrate=settings.should_auto_migrate, demo=True))


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


@app.command()
def register(
    artifact: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    model: Annotated[str, typer.Option(help="Model name (a slug); created if new.")],
    metrics: Annotated[Path | None, typer.Option(exists=True, help="Metrics JSON file.")] = None,
    args: Annotated[Path | None, typer.Option(exists=True, help="Training arguments JSON.")] = None,
    signature: Annotated[
        Path | None, typer.Option(exists=True, help="Input signature JSON.")
    ] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    version: Annotated[int | None, typer.Option(help="Explicit version number.")] = None,
    description: Annotated[str | None, typer.Option(help="What changed in this version.")] = None,
    actor: Annotated[str, typer.Option(help="Who registers, for the alias history.")] = "cli",
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


@alias_app.command("set")
def alias_set(
    model: str,
    alias: str,
    version: int,
    actor: Annotated[str, typer.Option(help="Who moves the alias, for its history.")] = "cli",
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


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = SCHEMA_FILE,
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


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who the key is for; recorded as `caller`.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read, predict, audit.")] = "read",
) -> None:
    """Create a key and print it once; only its hash is stored."""
    parsed = _parse_scopes(scopes)
    _, plain = _run_key_command(lambda session: api_keys.create(session, name=name, scopes=parsed))
    console.print(f"Key {name!r} with scopes {', '.join(sorted(parsed))}. Store it now:")
    typer.echo(plain)


def _parse_scopes(text: str) -> frozenset[api_keys.Scope]:
    try:
        return api_keys.parse_scopes(text)
    except ApiKeyError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secret): name, scopes, created, revoked."""
    rows = _run_key_command(api_keys.list_all)
    for row in rows:
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        typer.echo(f"{row.name}\t{','.join(row.scopes)}\t{row.created_at:%Y-%m-%d %H:%M}\t{state}")


@keys_app.command("revoke")
def keys_revoke(name: str) -> None:
    """Revoke a key by name; requests with it are refused from now on."""
    _run_key_command(lambda session: api_keys.revoke(session, name=name))
    console.print(f"Revoked {name!r}.")


if __name__ == "__main__":
    app()
