"""The Subscription root (graphql-transport-ws): predictions as they commit, and catalogue
changes. Each subscription holds a bounded queue in this process; events come from any
process through PostgreSQL notifications."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry

from modelql.graph.context import GraphContext
from modelql.graph.errors import ClientError, ErrorCode
from modelql.graph.permissions import CanAudit, CanRead
from modelql.graph.types.alerts import AlertRuleType
from modelql.graph.types.jobs import PredictionJob, job_id
from modelql.graph.types.nodes import ModelType, ModelVersionType, PredictionType
from modelql.graph.types.predictions import PredictionFilter, selects
from modelql.services import catalogue_feed, job_feed, prediction_feed
from modelql.services.feed import Feed
from modelql.services.subscribers import Subscriber, SubscriptionEndedError

Info = strawberry.Info[GraphContext, None]
T = TypeVar("T")


@strawberry.enum
class CatalogueEventKind(Enum):
    VERSION_REGISTERED = "VERSION_REGISTERED"
    ALIAS_MOVED = "ALIAS_MOVED"


@strawberry.type(description="A change to the catalogue, as recorded in its tables.")
class CatalogueEvent:
    kind: CatalogueEventKind
    alias: str | None = strawberry.field(description="The alias that moved; null for a version.")
    at: datetime = strawberry.field(description="When the change was made (database time).")
    model_id: strawberry.Private[uuid.UUID]
    version_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def model(self, info: Info) -> ModelType:
        row = await info.context.loaders.model_by_id.load(self.model_id)
        assert row is not None, "models are never deleted"
        return ModelType.from_row(row)

    @strawberry.field(
        description="The version registered, or the one the alias now names (null: removed)."
    )
    async def version(self, info: Info) -> ModelVersionType | None:
        if self.version_id is None:
            return None
        version = await info.context.loaders.version_by_id.load(self.version_id)
        return ModelVersionType.from_version(version) if version else None


@asynccontextmanager
async def _subscription(
    info: Info, feed: Feed[T], select: Callable[[Any], T | None]
) -> AsyncIterator[Subscriber[T]]:
    """A subscriber to `feed` for as long as the block runs. Why the server ended it becomes
    the subscription's error, and the socket is closed just after that error is sent (a
    client that reads nothing at all is dropped by the WebSocket ping timeout)."""
    context = info.context
    subscriber: Subscriber[T] = Subscriber(
        select=select,
        capacity=context.dependencies.feeds.queue_size,
        caller=context.caller,
        credential=context.credential,
    )
    try:
        async with feed.subscribed(subscriber):
            yield subscriber
    except SubscriptionEndedError as error:
        context.end_connection(error)
        raise ClientError(str(error), ErrorCode(error.code)) from None


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Predictions as they are stored: one message per committed group (one "
        "transaction), carrying that group's predictions that match the filter; groups "
        "with none are not sent. Shadow answers are stored after the primary's answer, off "
        "the request's path, so a prediction's `shadows` are usually empty in that message: "
        "a subscription that selects `shadows` is also sent each committed group of shadow "
        "answers (one transaction of the shadow scoring: every shadow version's answers to "
        "the rows it took), as the predictions they answer that match the filter, each with "
        "its `shadows` now stored; so such a subscriber may receive a prediction twice, "
        "first as stored, then with its shadows (prediction jobs are not sent, nor their "
        "shadows). Needs the `audit` scope.",
        permission_classes=[CanAudit],
    )
    async def predictions_created(
        self, info: Info, filter: PredictionFilter | None = None
    ) -> AsyncGenerator[list[PredictionType], None]:
        query = PredictionFilter.query(filter, limit=info.context.model_limit)
        select = prediction_feed.selector(query, shadows=selects(info, "shadows"))
        feed = info.context.dependencies.feeds.predictions
        async with _subscription(info, feed, select) as subscriber:
            async for commit in subscriber.messages():
                yield [PredictionType.from_row(item.row) for item in commit.predictions]
                await info.context.release()

    @strawberry.subscription(
        description="Versions registered and aliases moved, of one model or of all. Needs the "
        "`read` scope.",
        permission_classes=[CanRead],
    )
    async def catalogue_events(
        self, info: Info, model: str | None = None
    ) -> AsyncGenerator[CatalogueEvent, None]:
        feed = info.context.dependencies.feeds.catalogue
        async with _subscription(info, feed, catalogue_feed.selector(model)) as subscriber:
            async for change in subscriber.messages():
                if await info.context.loaders.model_by_id.load(change.model_id) is None:
                    await info.context.release()
                    continue  # a model outside the key's limit
                yield CatalogueEvent(
                    kind=CatalogueEventKind(change.kind),
                    alias=change.alias,
                    at=change.at,
                    model_id=change.model_id,
                    version_id=change.version_id,
                )
                await info.context.release()

    @strawberry.subscription(
        description="Alert rules whose state changed (or that were created, switched or "
        "deleted: a deleted rule is absent), one message per change. Needs the `read` scope.",
        permission_classes=[CanRead],
    )
    async def alerts_changed(self, info: Info) -> AsyncGenerator[list[AlertRuleType], None]:
        dependencies = info.context.dependencies
        try:
            async for ids in dependencies.alert_changes.changes():
                changed = [
                    row for row in await dependencies.alert_rules.rules() if str(row.id) in ids
                ]
                loaders = info.context.loaders  # of the key's models only
                shown = [r for r in changed if await loaders.model_by_id.load(r.model_id)]
                if shown or not changed:  # nothing of another model, not even that it moved
                    yield [AlertRuleType.of(row) for row in shown]
                await info.context.release()
        except SubscriptionEndedError as error:
            info.context.end_connection(error)
            raise ClientError(str(error), ErrorCode(error.code)) from None

    @strawberry.subscription(
        description="A prediction job as it moves: its state now, then again after each of "
        "its transactions (started, validated, each chunk stored, finished), from any process; "
        "changes arriving faster than they are read are merged into the latest. Ends after "
        "the job finishes; null at once for an unknown job. Needs the `read` scope.",
        permission_classes=[CanRead],
    )
    async def prediction_job_updated(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[PredictionJob | None, None]:
        jobs = info.context.dependencies.jobs
        limit = info.context.model_limit
        wanted = job_id(id)
        feed = info.context.dependencies.feeds.jobs
        async with _subscription(info, feed, job_feed.selector(wanted)) as subscriber:
            job = await jobs.get(wanted, limit)
            yield PredictionJob.of(job) if job else None
            if job is None or job.state.finished:
                return
            async for _ in subscriber.messages():
                job = await jobs.get(wanted, limit)
                yield PredictionJob.of(job) if job else None
                await info.context.release()
                if job is None or job.state.finished:
                    return
