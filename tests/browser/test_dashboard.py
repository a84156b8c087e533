"""The dashboard in a real browser with the outside network blocked: the demo catalogue,
charts with data, the live tail, the key prompt, FORBIDDEN, and panels the server lacks."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import Browser
from live_support import Served, served
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import make_settings

from modelql.models.demo import labelled_stream, recipe_named
from modelql.services import api_keys
from modelql.services.api_keys import Scope
from modelql.settings import AuthMode

pytestmark = pytest.mark.slow

DEMO_MODELS = [
    "breast-cancer-classifier",
    "diabetes-regressor",
    "iris-classifier",
    "wine-classifier",
]
PREDICT = """mutation { createPrediction(input: {model: "iris-classifier",
  features: {sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3}}) {
  prediction { id } } }"""
ESTIMATE_SETUP = """mutation($input: CreatePredictionsInput!) { createPredictions(input: $input) {
  predictions { id modelVersion { number } } } }"""
RECORD = """mutation($outcomes: [OutcomeInput!]!) { recordOutcomes(input: {outcomes: $outcomes}) {
  userErrors { code } } }"""


@pytest.fixture(scope="module")
async def server(database_url: str, data_dir: Path, demo_catalogue: None) -> AsyncIterator[Served]:
    async with served(make_settings(database_url, data_dir)) as running:
        yield running


@pytest.fixture(scope="module")
async def secured(database_url: str, data_dir: Path, demo_catalogue: None) -> AsyncIterator[Served]:
    settings = make_settings(database_url, data_dir, auth_mode=AuthMode.REQUIRED)
    async with served(settings) as running:
        yield running


async def make_key(sessionmaker: async_sessionmaker[AsyncSession], *scopes: Scope) -> str:
    async with sessionmaker.begin() as session:
        _, plain = await api_keys.create(
            session, name=f"browser-{uuid.uuid4().hex[:8]}", scopes=frozenset(scopes)
        )
    return plain


async def test_the_dashboard_shows_the_demo_catalogue_and_a_chart_with_data(
    server: Served, page: Page, browser: Browser
):
    await page.goto(f"{server.url}/dashboard")

    await expect(page.locator("#models a .name")).to_contain_text(DEMO_MODELS)
    await expect(page.locator("#model-title")).to_have_text("iris-classifier")
    versions = page.locator("#versions table.versions thead th")
    await expect(versions).to_have_text(["", "v1", "v2"])
    await expect(page.locator("#versions")).to_contain_text("TEST f1_macro")
    bars = page.locator("#metrics svg[role=img] rect.bar")
    await expect(bars.first).to_be_visible()
    assert await bars.count() >= 2
    heights = [float(await bar.get_attribute("height") or 0) for bar in await bars.all()]
    assert max(heights) > 50, "the bars have no height: the chart has no data"
    label = await page.locator("#metrics svg").get_attribute("aria-label")
    assert label is not None and "accuracy" in label
    first_paint = await page.evaluate(
        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime"
    )
    assert first_paint is not None and first_paint < 1000, f"first paint after {first_paint} ms"
    assert browser.blocked == []


async def test_the_keyboard_reaches_and_opens_every_model(server: Served, page: Page):
    await page.goto(f"{server.url}/dashboard")
    await expect(page.locator("#model-title")).to_have_text("iris-classifier")

    await page.keyboard.press("Tab")
    await expect(page.locator(".skip")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.locator("#models a").first).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#model-title")).to_have_text("breast-cancer-classifier")
    await expect(page.locator('#models a[aria-current="page"] .name')).to_have_text(
        "breast-cancer-classifier"
    )


async def test_panels_the_server_lacks_say_so_instead_of_failing(server: Served, page: Page):
    await page.goto(f"{server.url}/dashboard#model=iris-classifier")
    for panel in ("volume", "latency", "accuracy", "drift"):
        body = page.locator(f"#{panel}-body")
        await expect(page.locator(f"#{panel}")).to_have_attribute("aria-busy", "false")
        shown = body.locator("svg[role=img], .unavailable, .note")
        await expect(shown.first).to_be_visible()
        assert await body.locator(".error").count() == 0, await body.inner_text()
    assert await page.locator(".unavailable, svg[role=img]").count() >= 4


async def test_a_prediction_appears_in_the_live_tail_within_a_second(server: Served, page: Page):
    await page.goto(f"{server.url}/dashboard#model=iris-classifier")
    await expect(page.locator("#tail-status")).to_have_text(re.compile(r"^live"))
    request_id = f"tail-{uuid.uuid4().hex[:8]}"

    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/graphql", json={"query": PREDICT}, headers={"X-Request-ID": request_id}
        )
    answered = time.monotonic()
    assert response.status_code == 200, response.text
    row = page.locator("#tail-rows tr", has_text=request_id)
    await expect(row).to_be_visible(timeout=1000)
    assert time.monotonic() - answered < 1.0
    await expect(row).to_contain_text("virginica")
    await expect(page.locator("#tail-status")).to_have_text(re.compile(r"1 new"))


async def test_with_auth_required_the_dashboard_asks_for_a_key_kept_in_the_tab(
    secured: Served, page: Page, sessionmaker: async_sessionmaker[AsyncSession]
):
    key = await make_key(sessionmaker, Scope.READ, Scope.AUDIT)
    await page.goto(f"{secured.url}/dashboard")
    dialog = page.get_by_role("dialog", name="API key needed")
    await expect(dialog).to_be_visible()
    await expect(page.get_by_role("textbox", name="API key")).to_be_focused()

    await page.get_by_role("textbox", name="API key").fill(key)
    await page.get_by_role("button", name="Use this key").click()

    await expect(dialog).to_be_hidden()
    await expect(page.locator("#models a .name")).to_contain_text(DEMO_MODELS)
    await expect(page.locator("#tail-status")).to_have_text(re.compile(r"^live"))
    assert await page.evaluate("sessionStorage.getItem('modelql.apiKey')") == key
    assert await page.evaluate("localStorage.length") == 0


async def test_a_key_without_a_scope_shows_forbidden_on_the_panels_that_need_it(
    secured: Served, page: Page, sessionmaker: async_sessionmaker[AsyncSession]
):
    key = await make_key(sessionmaker, Scope.READ)
    await page.goto(f"{secured.url}/dashboard")
    await page.get_by_role("textbox", name="API key").fill(key)
    await page.get_by_role("button", name="Use this key").click()

    await expect(page.locator("#versions")).to_contain_text("TEST accuracy")
    await expect(page.locator("#labels .forbidden")).to_have_text(
        re.compile(r"^FORBIDDEN: .*`audit` scope")
    )
    await expect(page.locator("#tail .forbidden")).to_contain_text("audit")


async def test_a_wrong_key_is_refused_and_asked_again(secured: Served, page: Page):
    await page.goto(f"{secured.url}/dashboard")
    await page.get_by_role("textbox", name="API key").fill("mql_000000000000_wrong")
    await page.get_by_role("button", name="Use this key").click()

    await expect(page.get_by_role("dialog", name="API key needed")).to_be_visible()
    await expect(page.locator("#key-error")).to_contain_text("refused")


async def test_versions_show_estimated_metrics_beside_test_and_live(server: Served, page: Page):
    await page.goto(f"{server.url}/dashboard#model=iris-classifier")
    table = page.locator("#versions table.versions")
    await expect(table).to_contain_text("ESTIMATED samples")
    await expect(table).to_contain_text("too few labelled to calibrate")

    rows, truths = labelled_stream(recipe_named("iris-classifier"), 150, np.random.default_rng(4))
    async with httpx.AsyncClient(base_url=server.url) as http:
        made = (
            await http.post(
                "/graphql",
                json={
                    "query": ESTIMATE_SETUP,
                    "variables": {"input": {"model": "iris-classifier", "instances": rows}},
                },
            )
        ).json()["data"]["createPredictions"]["predictions"]
        number = made[0]["modelVersion"]["number"]  # the default version answered
        outcomes = [
            {"predictionId": p["id"], "label": t} for p, t in zip(made, truths, strict=True)
        ]
        answer = await http.post(
            "/graphql", json={"query": RECORD, "variables": {"outcomes": outcomes}}
        )
        assert answer.json()["data"]["recordOutcomes"]["userErrors"] == []
    await page.reload()
    await expect(table.locator("tr", has_text="ESTIMATED accuracy")).to_be_visible()
    column = [th.strip() for th in await table.locator("thead th").all_inner_texts()].index(
        f"v{number}"
    )
    accuracy = table.locator("tr", has_text="ESTIMATED accuracy").locator("td")
    await expect(accuracy.nth(column - 1)).to_have_text(re.compile(r"^0\.\d{3}$"))
    samples = table.locator("tr", has_text="ESTIMATED samples").locator("td")
    await expect(samples.nth(column - 1)).to_have_text("150")
    await expect(table).to_contain_text("TEST f1_macro")
    await expect(table).to_contain_text("LIVE f1_macro")
    chart = page.locator("#accuracy-body figure", has_text=f"Estimated accuracy of v{number}")
    await expect(chart).to_be_visible()
    await expect(chart.locator("svg polyline")).to_have_count(2)  # estimated and realised
