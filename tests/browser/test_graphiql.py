"""GraphiQL works air-gapped: its scripts and styles come from this server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import Browser
from live_support import Served, served
from playwright.async_api import Page, expect
from support import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def server(database_url: str, data_dir: Path, demo_catalogue: None) -> AsyncIterator[Served]:
    async with served(make_settings(database_url, data_dir)) as running:
        yield running


async def test_graphiql_renders_and_runs_its_example_with_the_outside_blocked(
    server: Served, page: Page, browser: Browser
):
    await page.goto(f"{server.url}/graphql")

    editor = page.locator(".graphiql-query-editor .CodeMirror")
    await expect(editor).to_contain_text("models(first: 10)")
    await page.locator(".graphiql-execute-button").click()

    result = page.locator(".graphiql-response .CodeMirror")
    await expect(result).to_contain_text('"breast-cancer-classifier"')
    await expect(result).to_contain_text('"f1"')
    assert browser.blocked == [], f"GraphiQL reached outside: {browser.blocked}"
