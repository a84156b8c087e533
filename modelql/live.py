"""Wires the live feed to the process's listening connection: which notification wakes which
feed, and which ends the subscriptions of a revoked key."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence.notifications import (
    CATALOGUE_CHANNEL,
    JOBS_CHANNEL,
    KEYS_CHANNEL,
    PREDICTIONS_CHANNEL,
    Listener,
)
from modelql.services.api_keys import KeyCache
from modelql.services.catalogue_feed import CatalogueFeed
from modelql.services.feed import LiveFeeds
from modelql.services.job_feed import JobFeed
from modelql.services.prediction_feed import PredictionFeed
from modelql.services.subscribers import Subscriptions
from modelql.settings import Settings

logger = logging.getLogger(__name__)


def live_feeds(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    listener: Listener,
    keys: KeyCache,
) -> LiveFeeds:
    """The feeds, woken by their channels and by every (re)connection of the listener, which
    may have missed notifications: they catch up from their positions."""
    subscriptions = Subscriptions(max_per_key=settings.max_subscriptions_per_key)
    predictions = PredictionFeed(sessionmaker, subscriptions)
    catalogue = CatalogueFeed(sessionmaker, subscriptions)
    jobs = JobFeed(sessionmaker, subscriptions)
    checks: set[asyncio.Task[None]] = set()

    async def end_revoked(name: str | None) -> None:
        try:
            await subscriptions.end_revoked(keys, name)
        except Exception as error:  # the next notification or reconnection checks again
            logger.warning("could not check the keys of open subscriptions (%r)", error)

    def check_keys(name: str | None = None) -> None:
        task = asyncio.get_running_loop().create_task(end_revoked(name))
        checks.add(task)
        task.add_done_callback(checks.discard)

    listener.on(PREDICTIONS_CHANNEL, predictions.wake)
    listener.on(CATALOGUE_CHANNEL, catalogue.wake)
    listener.on(JOBS_CHANNEL, jobs.wake)
    listener.on(KEYS_CHANNEL, check_keys)
    listener.on_connect(predictions.wake)
    listener.on_connect(catalogue.wake)
    listener.on_connect(jobs.wake)
    listener.on_connect(check_keys)
    return LiveFeeds(
        predictions=predictions,
        catalogue=catalogue,
        subscriptions=subscriptions,
        queue_size=settings.subscriber_queue_size,
        jobs=jobs,
    )
