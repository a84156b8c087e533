"""The notification listener stops when told to, whatever it is doing at that moment."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from support import libpq_url

from modelql.persistence import notifications
from modelql.persistence.notifications import Listener


async def test_stop_ends_the_listener_even_if_its_cancellation_is_swallowed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
):
    """As asyncio.wait_for does on Python 3.11 when a cancellation arrives as the awaited
    query completes: here every pause of the listener swallows it."""
    real_sleep = asyncio.sleep
    listener = Listener(libpq_url(database_url), health_check_s=0.01)
    await listener.start()
    assert listener.connected_since is not None

    async def swallowing_sleep(delay: float) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await real_sleep(delay)

    monkeypatch.setattr(notifications.asyncio, "sleep", swallowing_sleep)
    await real_sleep(0.05)

    async with asyncio.timeout(5):
        await listener.stop()

    assert listener.connected_since is None
