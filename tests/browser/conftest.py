"""A real browser for the dashboard and GraphiQL tests: Playwright driving the machine's
Chromium (Playwright's own browser downloads are not used). Every request that is not to
this machine is blocked and recorded, so the pages are proven to work air-gapped."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser as Chromium
    from playwright.async_api import Page, Route

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    return next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)


@dataclass
class Browser:
    browser: Chromium
    blocked: list[str] = field(default_factory=list)

    async def only_local(self, route: Route) -> None:
        """Let requests to this machine through; refuse and record every other one."""
        if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
            await route.continue_()
        else:
            self.blocked.append(route.request.url)
            await route.abort()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[test]')")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path)
        yield Browser(launched)
        await asyncio.wait_for(launched.close(), 30)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page (own sessionStorage, laptop-sized) whose requests off this machine are
    refused; closed after the test."""
    browser.blocked.clear()
    context = await browser.browser.new_context(viewport={"width": 1440, "height": 900})
    await context.route("**/*", browser.only_local)
    yield await context.new_page()
    await context.unroute_all(behavior="ignoreErrors")
    await context.close()
