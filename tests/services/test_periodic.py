"""A periodic task runs at once and then after every pause, keeps going past a failing run
(logged with its traceback), and stops wherever it is: mid-run or mid-pause."""

from __future__ import annotations

import asyncio
import logging

import pytest

from modelql.services.periodic import PeriodicTask


async def _wait(event: asyncio.Event) -> None:
    async with asyncio.timeout(10):  # a bound for a stuck task, not a measurement
        await event.wait()


async def test_it_runs_at_once_then_after_each_pause_until_stopped():
    runs: list[int] = []
    pauses: list[int] = []
    three = asyncio.Event()

    async def run() -> None:
        runs.append(len(runs))
        if len(runs) == 3:
            three.set()

    def pause() -> float:
        pauses.append(len(runs))
        return 0.001

    task = PeriodicTask(run, pause=pause, name="test-periodic", failure="a run failed")
    task.start()
    await _wait(three)
    await task.stop()
    stopped_at = len(runs)
    await asyncio.sleep(0.05)

    assert runs == list(range(stopped_at))
    assert pauses[:3] == [1, 2, 3]  # a pause after each run, none before the first
    assert len(runs) == stopped_at


async def test_stop_cancels_a_run_in_progress_and_a_long_pause():
    in_run = asyncio.Event()
    cancelled: list[bool] = []

    async def stuck() -> None:
        in_run.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    task = PeriodicTask(stuck, pause=lambda: 3600.0, name="test-stuck", failure="failed")
    task.start()
    await in_run.wait()
    async with asyncio.timeout(10):
        await task.stop()
    assert cancelled == [True]

    ran: list[bool] = []
    first = asyncio.Event()

    async def quick() -> None:
        ran.append(True)
        first.set()

    sleeper = PeriodicTask(quick, pause=lambda: 3600.0, name="test-sleeper", failure="failed")
    sleeper.start()
    await _wait(first)
    async with asyncio.timeout(10):
        await sleeper.stop()  # in its hour-long pause
    await sleeper.stop()  # stopping a stopped task is nothing
    assert ran == [True]


async def test_a_failing_run_is_logged_and_the_next_run_still_comes(
    caplog: pytest.LogCaptureFixture,
):
    runs: list[int] = []
    three = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 3:
            three.set()
        if len(runs) == 1:
            raise RuntimeError("the first run breaks")

    task = PeriodicTask(flaky, pause=lambda: 0.001, name="test-flaky", failure="a flaky run failed")
    with caplog.at_level(logging.ERROR, logger="modelql"):
        task.start()
        await _wait(three)
        await task.stop()

    (record,) = [r for r in caplog.records if r.getMessage() == "a flaky run failed"]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "the first run breaks"
