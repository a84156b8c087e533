"""The pieces one serving process runs on, built from the settings, then started and stopped:
engine, listener and what it invalidates, caches, pipelines, the use cases the graph calls.
The application's lifespan and the tests use the same object."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from modelql import schema_migrations
from modelql.graph.context import GraphDependencies
from modelql.graph.limits import Limits
from modelql.live import live_feeds
from modelql.metrics import (
    PrometheusInferenceCacheMetrics,
    PrometheusPredictionMetrics,
    PrometheusShadowMetrics,
)
from modelql.models.artifacts import ArtifactStore
from modelql.persistence.alert_repository import ALERTS_CHANNEL
from modelql.persistence.database import (
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
    libpq_url,
)
from modelql.persistence.job_queue import SCORE, VALIDATE, JobConsumer
from modelql.persistence.notifications import (
    CATALOGUE_CHANNEL,
    JOBS_CHANNEL,
    KEYS_CHANNEL,
    OUTCOMES_CHANNEL,
    PREDICTIONS_CHANNEL,
    Listener,
)
from modelql.persistence.partitions import PartitionInterval
from modelql.services.alert_changes import AlertChanges
from modelql.services.alert_delivery import AlertDeliverer
from modelql.services.alert_evaluation import AlertEvaluator
from modelql.services.alert_rules import AlertRules
from modelql.services.alerting import Alerting
from modelql.services.api_keys import KeyCache
from modelql.services.catalogue import Catalogue
from modelql.services.catalogue_changes import CatalogueChanges
from modelql.services.comparison import VersionComparisons
from modelql.services.drift import DriftPolicy
from modelql.services.errors import ModelUnavailableError
from modelql.services.estimated_performance import EstimationPolicy
from modelql.services.freshness import Freshness
from modelql.services.generations import Dataset, Generations
from modelql.services.inference import ModelCache
from modelql.services.inference_cache import InferenceCache
from modelql.services.outcomes import OutcomeRecorder
from modelql.services.prediction_jobs import JobPolicy, PredictionJobs
from modelql.services.prediction_pipeline import PredictionPipelines
from modelql.services.predictions import PredictionService
from modelql.services.rate_limits import RateLimiter
from modelql.services.shadow_scoring import ShadowScoring
from modelql.services.store_maintenance import StoreMaintenance
from modelql.settings import AuthMode, Settings

logger = logging.getLogger("modelql")


class NotMigratedError(RuntimeError):
    """The database is not at the migration head and migrating was not allowed."""


async def ensure_migrated(engine: AsyncEngine, database_url: str, *, migrate: bool) -> None:
    """Bring the database to head when allowed; otherwise refuse to run on an old schema."""
    head = schema_migrations.head_revision()
    current = await schema_migrations.current_revision(engine)
    if current == head:
        return
    if not migrate:
        raise NotMigratedError(
            f"The database is at migration {current or 'none'}, the code needs {head}. "
            "Run `modelql migrate` (or set MODELQL_AUTO_MIGRATE=true)."
        )
    logger.info("migrating database from %s to %s", current or "empty", head)
    await asyncio.to_thread(schema_migrations.upgrade_to_head, database_url)


@dataclass
class Runtime:
    """Built without touching the database (`build`), then `start`ed (migrations checked,
    listener connected, default versions loaded) and `stop`ped (queued predictions answered
    first)."""

    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    listener: Listener
    catalogue: Catalogue
    generations: Generations
    model_cache: ModelCache
    pipelines: PredictionPipelines
    graph_dependencies: GraphDependencies
    maintenance: StoreMaintenance
    alerting: Alerting
    jobs: PredictionJobs
    shadows: ShadowScoring | None = None
    job_consumer: JobConsumer | None = None
    prediction_metrics: PrometheusPredictionMetrics | None = None

    @classmethod
    def build(cls, settings: Settings, *, database_url: str) -> Runtime:
        engine = create_engine(
            database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        sessionmaker = create_sessionmaker(engine)
        listener = Listener(libpq_url(database_url))
        settings.artifact_dir.mkdir(parents=True, exist_ok=True)
        model_cache = ModelCache(ArtifactStore(settings.artifact_dir))
        catalogue = Catalogue(_freshness(settings, listener))
        keys = KeyCache(sessionmaker, _freshness(settings, listener))
        generations = Generations(listening_since=lambda: listener.connected_since)

        def catalogue_changed() -> None:
            catalogue.forget_routes()
            generations.changed(Dataset.CATALOGUE)

        _invalidate_on_notifications(listener, catalogue_changed, keys, generations)
        alert_changes = AlertChanges(queue_size=settings.subscriber_queue_size)
        listener.on(ALERTS_CHANNEL, alert_changes.publish)
        prediction_metrics = PrometheusPredictionMetrics() if settings.metrics else None
        maintenance = store_maintenance(settings, database_url)
        pipelines = PredictionPipelines(
            engine=engine,
            model_cache=model_cache,
            max_group_rows=settings.pipeline_max_rows,
            max_wait_s=settings.pipeline_max_wait_ms / 1000,
            groups_in_flight=settings.pipeline_groups_in_flight,
            observer=prediction_metrics,
            on_commit=lambda: generations.changed(Dataset.STORE),
            create_partitions=maintenance.ensure_partitions,
            inference_cache=inference_cache(settings),
        )
        shadows = (
            ShadowScoring(
                sessionmaker=sessionmaker,
                catalogue=catalogue,
                model_cache=model_cache,
                max_rows=settings.shadow_queue,
                observer=PrometheusShadowMetrics() if settings.metrics else None,
                on_commit=lambda: generations.changed(Dataset.STORE),
            )
            if settings.shadow_queue
            else None
        )
        predictions = PredictionService(
            sessionmaker=sessionmaker,
            catalogue=catalogue,
            pipelines=pipelines,
            max_batch_size=settings.max_batch_size,
            observer=prediction_metrics,
            shadows=shadows,
        )
        jobs = PredictionJobs(
            engine=engine,
            sessionmaker=sessionmaker,
            catalogue=catalogue,
            predictions=predictions,
            model_cache=model_cache,
            policy=job_policy(settings),
            on_commit=lambda: generations.changed(Dataset.STORE),
        )
        comparisons = VersionComparisons(
            sessionmaker=sessionmaker, catalogue=catalogue, model_cache=model_cache
        )
        dependencies = GraphDependencies(
            read_sessionmaker=create_read_sessionmaker(engine),
            catalogue=catalogue,
            predictions=predictions,
            jobs=jobs,
            outcomes=OutcomeRecorder(
                sessionmaker=sessionmaker,
                catalogue=catalogue,
                generations=generations,
                max_batch_size=settings.max_batch_size,
            ),
            catalogue_changes=CatalogueChanges(
                sessionmaker=sessionmaker,
                catalogue_changed=catalogue_changed,
                comparisons=comparisons,
            ),
            keys=keys,
            comparisons=comparisons,
            limits=Limits(max_page_size=settings.max_page_size),
            feeds=live_feeds(settings, sessionmaker, listener, keys),
            alert_rules=AlertRules(
                sessionmaker,
                allow_private=settings.alert_allow_private_webhooks,
                changed=lambda: generations.changed(Dataset.STORE),
            ),
            alert_changes=alert_changes,
            auth_required=settings.auth_mode is AuthMode.REQUIRED,
            rate_limiter=RateLimiter(
                settings.rate_limit_storage, default=settings.rate_limit or None
            ),
            max_batch_size=settings.max_batch_size,
            drift_policy=DriftPolicy(
                psi_threshold=settings.drift_psi_threshold,
                min_sample=settings.drift_min_sample,
                max_sample=settings.drift_max_sample,
            ),
            estimation_policy=EstimationPolicy(
                reference_size=settings.estimation_reference_size,
                min_reference=settings.estimation_min_reference,
                max_sample=settings.estimation_max_sample,
            ),
        )
        return cls(
            settings=settings,
            database_url=database_url,
            engine=engine,
            sessionmaker=sessionmaker,
            listener=listener,
            catalogue=catalogue,
            generations=generations,
            model_cache=model_cache,
            pipelines=pipelines,
            graph_dependencies=dependencies,
            maintenance=maintenance,
            alerting=alerting(settings, sessionmaker, generations, dependencies),
            jobs=jobs,
            shadows=shadows,
            job_consumer=job_consumer(settings, database_url, jobs),
            prediction_metrics=prediction_metrics,
        )

    async def start(self) -> None:
        await ensure_migrated(
            self.engine, self.database_url, migrate=self.settings.should_auto_migrate
        )
        await self.maintenance.start()
        await self.alerting.start()
        await self.listener.start()
        await self.load_default_versions()
        if self.shadows is not None:
            self.shadows.start()
        if self.job_consumer is not None:
            await self.job_consumer.start()

    async def stop(self) -> None:
        """Answer what is queued, then let go of connections, threads and files."""
        try:
            if self.job_consumer is not None:
                await self.job_consumer.stop()
            await self.maintenance.stop()
            await self.alerting.stop()
            await self.pipelines.drain()
            if self.shadows is not None:
                await self.shadows.stop(self.settings.shadow_drain_s)
        finally:
            await self.listener.stop()
            await self.graph_dependencies.feeds.predictions.stop()
            await self.graph_dependencies.feeds.catalogue.stop()
            await self.graph_dependencies.feeds.jobs.stop()
            self.model_cache.close()
            await self.engine.dispose()

    async def load_default_versions(self) -> list[str]:
        """Load every model's default version (at start-up, so the first prediction does not
        pay for it; by the readiness probe, to see they still load); the ids that failed."""
        async with self.sessionmaker() as session:
            versions = await self.catalogue.default_versions(session)
        unloadable = []
        for version in versions:
            try:
                await self.model_cache.predictor(version)
            except ModelUnavailableError:  # the model cache has logged why, loudly
                unloadable.append(str(version.id))
        return unloadable


def inference_cache(settings: Settings) -> InferenceCache | None:
    """The inference cache the settings ask for; None when its bound is 0."""
    if not settings.inference_cache_rows:
        return None
    observer = PrometheusInferenceCacheMetrics() if settings.metrics else None
    return InferenceCache(settings.inference_cache_rows, observer)


def store_maintenance(settings: Settings, database_url: str) -> StoreMaintenance:
    """The store's upkeep the settings ask for (interval, retentions, archive)."""
    days, job_days = settings.retention_days, settings.job_retention_days
    archiver = None
    if settings.archive_url is not None:
        # Imported here: archiving brings pyarrow, which a process that does not archive
        # does not load.
        from modelql.services.archiving import PartitionArchiver

        archiver = PartitionArchiver(settings.archive_url)
    return StoreMaintenance(
        database_url=database_url,
        interval=PartitionInterval(settings.partition_interval),
        retention=None if days is None else timedelta(days=days),
        job_retention=None if job_days is None else timedelta(days=job_days),
        archiver=archiver,
    )


def alerting(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    generations: Generations,
    dependencies: GraphDependencies,
) -> Alerting:
    """Alert evaluation and webhook delivery, in this replica's share."""
    period = settings.alert_evaluation_s
    evaluator = AlertEvaluator(
        sessionmaker,
        period_s=period,
        name=_replica_name(),
        catalogue=dependencies.catalogue,
        drift_policy=dependencies.drift_policy,
        changed=lambda: generations.changed(Dataset.STORE),
    )
    return Alerting(evaluator, AlertDeliverer(sessionmaker), period_s=period)


def _replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_policy(settings: Settings) -> JobPolicy:
    return JobPolicy(
        source_dir=settings.job_source_dir,
        max_bytes=settings.job_max_bytes,
        chunk_rows=settings.job_chunk_rows,
        part_rows=settings.job_part_rows,
    )


def job_consumer(settings: Settings, database_url: str, jobs: PredictionJobs) -> JobConsumer | None:
    """What works queued job tasks in this process, if it works any."""
    if settings.job_workers == 0:
        return None

    async def validate(job_id: uuid.UUID, _part: int) -> None:
        await jobs.validate(job_id)

    return JobConsumer(
        libpq_url(database_url),
        {VALIDATE: validate, SCORE: jobs.score},
        concurrency=settings.job_workers,
        heartbeat_timeout_s=settings.job_heartbeat_timeout_s,
    )


def _freshness(settings: Settings, listener: Listener) -> Freshness:
    return Freshness(
        max_staleness_s=settings.catalogue_max_staleness_s,
        listening_since=lambda: listener.connected_since,
    )


def _invalidate_on_notifications(
    listener: Listener,
    catalogue_changed: Callable[[], None],
    keys: KeyCache,
    generations: Generations,
) -> None:
    """What each notification makes this process forget; a (re)connection forgets it all,
    since notifications sent while disconnected are lost."""
    listener.on(CATALOGUE_CHANNEL, lambda _model: catalogue_changed())
    listener.on(PREDICTIONS_CHANNEL, lambda _: generations.changed(Dataset.STORE, heard=True))
    listener.on(OUTCOMES_CHANNEL, lambda _: generations.changed(Dataset.STORE, heard=True))
    listener.on(JOBS_CHANNEL, lambda _: generations.changed(Dataset.STORE, heard=True))
    listener.on(KEYS_CHANNEL, lambda _name: keys.forget())
    listener.on(ALERTS_CHANNEL, lambda _: generations.changed(Dataset.STORE, heard=True))
    listener.on_connect(keys.forget)
    listener.on_connect(catalogue_changed)
    listener.on_connect(generations.everything_changed)
