"""`modelql worker` (a process that only works the job queue), `modelql predict` (a job run
from the terminal, with a progress bar, its results written to a file) and `modelql jobs
prune`."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from modelql.commands import _check_migrated, _settings, console, database
from modelql.models.vocabulary import JobState
from modelql.runtime import NotMigratedError, Runtime, store_maintenance
from modelql.services import job_files
from modelql.services.errors import UserInputError
from modelql.services.prediction_jobs import JobSubmission, JobView, UploadedFile
from modelql.services.predictions import Requester
from modelql.services.store_maintenance import PrunedJobs
from modelql.settings import Settings

POLL_S = 0.2
CLI_CALLER = "modelql predict"
"""The caller recorded on predictions a terminal job stores."""


def worker(concurrency: int | None = None) -> None:
    """Work queued prediction jobs until SIGINT or SIGTERM."""
    settings = _settings()
    workers = concurrency if concurrency is not None else max(1, settings.job_workers)
    settings = settings.model_copy(update={"job_workers": workers})
    with database(settings) as url:
        try:
            asyncio.run(_work(settings, url))
        except NotMigratedError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None


async def _work(settings: Settings, url: str) -> None:
    runtime = Runtime.build(settings, database_url=url)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await runtime.start()
    console.print(f"Working prediction jobs ({settings.job_workers} at a time); Ctrl-C stops.")
    try:
        await stopping.wait()
    finally:
        await runtime.stop()


def prune(retention_days: int | None = None) -> None:
    """Drop what finished prediction jobs keep beyond the retention (uploads, parts, the
    queue's log)."""
    settings = _settings()
    days = retention_days or settings.job_retention_days
    if days is None:
        console.print(
            "[red]No job retention: pass --retention-days or set MODELQL_JOB_RETENTION_DAYS.[/red]"
        )
        raise typer.Exit(2)
    with database(settings) as url:
        try:
            pruned = asyncio.run(_prune(settings, url, timedelta(days=days)))
        except NotMigratedError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
    console.print(
        f"Pruned {pruned.jobs} prediction jobs finished over {days} days ago (their uploaded "
        f"files and parts; records and predictions kept) and {pruned.log_rows} rows of the "
        "job queue's log."
    )


async def _prune(settings: Settings, url: str, retention: timedelta) -> PrunedJobs:
    await _check_migrated(url)
    return await store_maintenance(settings, url).prune_jobs(retention)


def predict(
    file: Path,
    *,
    model: str,
    version: int | None,
    alias: str | None,
    output: Path | None,
    partial: bool,
) -> None:
    """Run a prediction job over a local file in this process; write its results out."""
    settings = _settings().model_copy(update={"job_workers": max(1, _settings().job_workers)})
    if not file.is_file():
        console.print(f"[red]No file {file}.[/red]")
        raise typer.Exit(2)
    with database(settings) as url:
        try:
            job = asyncio.run(_predict(settings, url, file, model, version, alias, output, partial))
        except UserInputError as error:
            for problem in error.problems:
                console.print(f"[red]{problem.code}: {problem.message}[/red]")
            raise typer.Exit(2) from None
        except NotMigratedError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from None
    for row_error in job.errors[:20]:
        console.print(f"row {row_error.row}: {row_error.reason}")
    if job.rows_failed > 20:
        console.print(f"... {job.rows_failed - 20} more failing rows")
    if job.state is not JobState.SUCCEEDED:
        console.print(f"[red]Job {job.id} {job.state.value}: {job.message or ''}[/red]")
        raise typer.Exit(1)
    shadows = ""
    if job.rows_shadowed or job.shadow_rows_failed:
        shadows = f", {job.rows_shadowed} shadow answers stored"
        if job.shadow_rows_failed:
            shadows += f" ({job.shadow_rows_failed} rows a failing shadow did not answer)"
    console.print(
        f"Job {job.id}: {job.rows_scored} rows scored, {job.rows_failed} failed{shadows}"
        + (f"; results in {output}" if output else "")
    )


async def _predict(
    settings: Settings,
    url: str,
    file: Path,
    model: str,
    version: int | None,
    alias: str | None,
    output: Path | None,
    partial: bool,
) -> JobView:
    runtime = Runtime.build(settings, database_url=url)
    await runtime.start()
    try:
        with file.open("rb") as stream:

            async def read(size: int) -> bytes:
                return await asyncio.to_thread(stream.read, size)

            submission = JobSubmission(
                model=model,
                version=version,
                alias=alias,
                partial=partial,
                upload=UploadedFile(name=file.name, size=None, read=read),
                path=None,
            )
            requester = Requester(request_id=str(uuid.uuid4()), caller=CLI_CALLER)
            job = await runtime.jobs.submit(submission, requester)
        job = await _follow(runtime, job)
        if output is not None and job.state is JobState.SUCCEEDED:
            results = await runtime.jobs.results(job.id)
            await asyncio.to_thread(job_files.write_results, results, output)
        return job
    finally:
        await runtime.stop()


async def _follow(runtime: Runtime, job: JobView) -> JobView:
    """Wait for the job to finish, showing its progress."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"Job {job.id}: {job.state.value.lower()}", total=None)
        while not job.state.finished:
            await asyncio.sleep(POLL_S)
            current = await runtime.jobs.get(job.id)
            assert current is not None, "jobs are not deleted"
            job = current
            progress.update(
                task,
                description=f"Job {job.id}: {job.state.value.lower()}",
                total=job.rows_total,
                completed=job.rows_done,
            )
    return job
