"""The `modelql` command line: serve, migrate, train the demo, register versions, move aliases,
manage keys, verify stored (or archived) predictions, import outcomes, prune and archive the
store. Only the commands are declared here; each runs `modelql.commands`, imported when it
runs, so that `modelql --help` answers fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="ModelQL: a GraphQL API over a model catalogue and a prediction store.")
alias_app = typer.Typer(help="Point aliases such as `production` at versions.")
app.add_typer(alias_app, name="alias")
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.")
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(help="Audit the prediction store.")
app.add_typer(audit_app, name="audit")
outcomes_app = typer.Typer(help="Ground truth for stored predictions.")
app.add_typer(outcomes_app, name="outcomes")
store_app = typer.Typer(help="The prediction store's partitions: prune, archive.")
app.add_typer(store_app, name="store")
jobs_app = typer.Typer(help="Prediction jobs' upkeep.")
app.add_typer(jobs_app, name="jobs")

SCHEMA_FILE = Path("schema.graphql")


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
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes, each with its own prediction pipeline.")
    ] = 1,
) -> None:
    """Start the API (with an embedded PostgreSQL unless DATABASE_URL is set)."""
    from modelql import commands

    commands.serve(
        host=host, port=port, demo=demo, migrate=migrate, insecure=insecure, workers=workers
    )


@app.command("migrate")
def migrate_command() -> None:
    """Apply every pending database migration."""
    from modelql import commands

    commands.migrate()


@app.command("train-demo")
def train_demo_command() -> None:
    """Train and register the demo catalogue, unless the catalogue already holds models."""
    from modelql import commands

    commands.train_demo_catalogue()


@app.command()
def register(
    artifact: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    model: Annotated[str, typer.Option(help="Model name (a slug); created if new.")],
    metrics: Annotated[Path | None, typer.Option(exists=True, help="Metrics JSON file.")] = None,
    args: Annotated[Path | None, typer.Option(exists=True, help="Training arguments JSON.")] = None,
    signature: Annotated[
        Path | None, typer.Option(exists=True, help="Input signature JSON.")
    ] = None,
    reference_data: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            help="CSV of training inputs (one column per feature): its profile is stored for "
            "drift reports.",
        ),
    ] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    version: Annotated[int | None, typer.Option(help="Explicit version number.")] = None,
    description: Annotated[str | None, typer.Option(help="What changed in this version.")] = None,
    actor: Annotated[str, typer.Option(help="Who registers, for the alias history.")] = "cli",
) -> None:
    """Register a joblib-saved scikit-learn estimator as a new, immutable version."""
    from modelql import commands

    commands.register(
        artifact=artifact,
        model=model,
        metrics=metrics,
        args=args,
        signature=signature,
        reference_data=reference_data,
        alias=alias,
        version=version,
        description=description,
        actor=actor,
    )


@alias_app.command("set")
def alias_set(
    model: str,
    alias: str,
    version: int,
    actor: Annotated[str, typer.Option(help="Who moves the alias, for its history.")] = "cli",
) -> None:
    """Point ALIAS of MODEL at VERSION; the move is kept in the alias history."""
    from modelql import commands

    commands.alias_set(model=model, alias=alias, version=version, actor=actor)


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = SCHEMA_FILE,
) -> None:
    """Write the GraphQL schema printed from code (schema.graphql)."""
    from modelql import commands

    commands.export_schema(output=output)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who the key is for; recorded as `caller`.")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: read, predict, audit, feedback, admin.")
    ] = "read",
    rate: Annotated[
        str | None, typer.Option(help="Its own rate, e.g. 100/second. Default: MODELQL_RATE_LIMIT.")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated model names or patterns (fraud-*) it may reach. "
            "Default: every model."
        ),
    ] = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from modelql import commands

    commands.keys_create(name=name, scopes=scopes, rate=rate, models=models)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secret): name, scopes, created, revoked."""
    from modelql import commands

    commands.keys_list()


@keys_app.command("revoke")
def keys_revoke(name: str) -> None:
    """Revoke a key by name; requests with it are refused from now on."""
    from modelql import commands

    commands.keys_revoke(name=name)


@audit_app.command("verify")
def audit_verify(
    model: Annotated[str | None, typer.Option(help="Only this model's predictions.")] = None,
    version: Annotated[int | None, typer.Option(help="Only this version number.")] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO-8601).")] = None,
    sample: Annotated[
        int | None, typer.Option(min=1, help="A random sample of this many predictions.")
    ] = None,
    archive: Annotated[
        str | None,
        typer.Option(
            help="Verify the archived predictions in this directory or S3-compatible URL "
            "instead (files checked against their manifests)."
        ),
    ] = None,
) -> None:
    """Re-score stored (or archived) predictions with the artifact of their version (sha256
    checked) and compare every output exactly; exit status 1 on any mismatch, unloadable
    artifact or archive that does not match its manifests."""
    from modelql import commands

    commands.audit_verify(
        model=model, version=version, since=since, until=until, sample=sample, archive=archive
    )


@outcomes_app.command("import")
def outcomes_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    actor: Annotated[str, typer.Option(help="Recorded as the outcomes' caller.")] = "cli",
) -> None:
    """Record outcomes from a CSV (columns: prediction_id or request_id [+ batch_index],
    label or value, optional observed_at); all or nothing."""
    from modelql import commands

    commands.outcomes_import(file=file, actor=actor)


@store_app.command("prune")
def store_prune(
    retention_days: Annotated[
        int | None,
        typer.Option(min=1, help="Keep this many days (default: MODELQL_RETENTION_DAYS)."),
    ] = None,
) -> None:
    """Drop the partitions of predictions entirely older than the retention (roll-ups kept),
    each archived first with MODELQL_ARCHIVE_URL; refused while `modelql audit verify` or an
    archive reads one of them."""
    from modelql import commands

    commands.store_prune(retention_days=retention_days)


@store_app.command("archive")
def store_archive(
    to: Annotated[
        str | None,
        typer.Option(
            help="A directory or an S3-compatible URL (default: MODELQL_ARCHIVE_URL), e.g. "
            "s3://bucket/prefix?endpoint_override=host:9000&scheme=http."
        ),
    ] = None,
    retention_days: Annotated[
        int | None,
        typer.Option(min=1, help="Archive what a prune keeping this many days would drop."),
    ] = None,
) -> None:
    """Write each partition a prune would drop (its predictions and their outcomes) to
    Parquet, with a manifest of row counts and SHA-256; drops nothing. Again: what is already
    archived is skipped."""
    from modelql import commands

    commands.store_archive(to=to, retention_days=retention_days)


@jobs_app.command("prune")
def jobs_prune(
    retention_days: Annotated[
        int | None,
        typer.Option(min=1, help="Keep this many days (default: MODELQL_JOB_RETENTION_DAYS)."),
    ] = None,
) -> None:
    """Drop the uploaded files and parts of prediction jobs finished longer ago than the
    retention, and the job queue's log of that age; the jobs' records and predictions stay."""
    from modelql import job_commands

    job_commands.prune(retention_days=retention_days)


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Job tasks worked at once (default: MODELQL_JOB_WORKERS)."),
    ] = None,
) -> None:
    """Work queued prediction jobs (as every `serve` process also does) until stopped."""
    from modelql import job_commands

    job_commands.worker(concurrency=concurrency)


@app.command()
def predict(
    file: Annotated[Path, typer.Argument(help="A CSV or Parquet file with the model's features.")],
    model: Annotated[str, typer.Option(help="The model's name.")],
    version: Annotated[int | None, typer.Option(help="A version number.")] = None,
    alias: Annotated[str | None, typer.Option(help="An alias, e.g. production.")] = None,
    output: Annotated[
        Path | None, typer.Option(help="Where to write the results (.csv, or .parquet).")
    ] = None,
    partial: Annotated[
        bool, typer.Option(help="Store the valid rows when some fail (default: none).")
    ] = False,
) -> None:
    """Score a file as a prediction job in this process, with a progress bar; its predictions
    are stored like any other, and written to --output."""
    from modelql import job_commands

    job_commands.predict(
        file, model=model, version=version, alias=alias, output=output, partial=partial
    )


if __name__ == "__main__":
    app()
