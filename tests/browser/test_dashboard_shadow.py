"""The dashboard's shadow panels in a real browser: a shadow set through GraphQL, live
requests it scores, outcomes recorded, then the shadow versions, the comparison in plain
words and the comparison a promotion was based on, as the page states them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_support import Served, served
from playwright.async_api import Page, expect
from shadow_support import FLIPPED, SIGNATURE, Y, register
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import make_settings

from modelql.models.artifacts import ArtifactStore

pytestmark = pytest.mark.slow

TWO_VERSIONS = [(Y, SIGNATURE), (FLIPPED, SIGNATURE)]
"""v1 production; v2 disagrees with it on some inputs."""
POINTS = [[0.0, 1.0], [1.0, 1.0], [2.0, 2.0], [2.5, 2.5], [3.0, 4.0], [4.0, 5.0], [0.5, 0.5]] * 6
SET_SHADOW = """mutation($input: SetShadowInput!) { setShadow(input: $input) {
  userErrors { code } } }"""
PREDICT = """mutation($input: CreatePredictionsInput!) { createPredictions(input: $input) {
  predictions { id } userErrors { code } } }"""
RECORD = """mutation($outcomes: [OutcomeInput!]!) { recordOutcomes(input: {outcomes: $outcomes}) {
  userErrors { code } } }"""
COMPARE = """query($m: String!) {
  compareVersions(model: $m, candidate: {version: 2}, source: SHADOW, sample: 10000) {
    compared agreement
    paired { pairs baseline candidate difference confidenceLow confidenceHigh pValue } } }"""
SHADOW_OF = """query($id: ID!) { node(id: $id) { ... on Prediction { shadows { label } } } }"""
PROMOTE = """mutation($m: String!) { setAlias(input: {model: $m, alias: "production", version: 2,
  basedOn: {source: SHADOW, sample: 1000}}) { userErrors { code } } }"""


@pytest.fixture(scope="module")
async def server(database_url: str, data_dir: Path, demo_catalogue: None) -> AsyncIterator[Served]:
    async with served(make_settings(database_url, data_dir, shadow_queue=10_000)) as running:
        yield running


async def data(http: httpx.AsyncClient, query: str, **variables: Any) -> Any:
    body = (await http.post("/graphql", json={"query": query, "variables": variables})).json()
    assert "errors" not in body, body
    return body["data"]


async def shadowed(server: Served, model: str) -> str:
    """`model`, its v2 now scoring every request in the shadow."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        shadow = {"model": model, "versions": [{"version": 2}], "sample": 1}
        assert (await data(http, SET_SHADOW, input=shadow))["setShadow"]["userErrors"] == []
    return model


async def settled(server: Served) -> None:
    """Wait until the server's shadow queue is empty (scored and stored)."""
    for _ in range(500):
        if server.app.state.runtime.shadows.pending_rows == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the shadow queue did not empty")


def fixed(value: float) -> str:
    """A number as the dashboard writes it: three decimals, a true minus sign."""
    return ("\u2212" if value < 0 else "") + f"{abs(value):.3f}"


async def test_the_shadow_comparison_is_stated_in_plain_words(
    server: Served,
    page: Page,
    sessionmaker: async_sessionmaker[AsyncSession],
    artifact_store: ArtifactStore,
):
    model = await shadowed(server, await register(sessionmaker, artifact_store, TWO_VERSIONS))
    async with httpx.AsyncClient(base_url=server.url) as http:
        instances = [{"a": a, "b": b} for a, b in POINTS]
        made = await data(http, PREDICT, input={"model": model, "instances": instances})
        await settled(server)
        truths = ["high" if a + b >= 4 else "low" for a, b in POINTS]
        outcomes = [
            {"predictionId": p["id"], "label": truth}
            for p, truth in zip(made["createPredictions"]["predictions"], truths, strict=True)
        ]
        assert (await data(http, RECORD, outcomes=outcomes))["recordOutcomes"]["userErrors"] == []
        comparison = (await data(http, COMPARE, m=model))["compareVersions"]
        assert (await data(http, PROMOTE, m=model))["setAlias"]["userErrors"] == []

    paired = comparison["paired"]
    assert comparison["compared"] == paired["pairs"] == len(POINTS)
    assert 0 < comparison["agreement"] < 1, "the example needs agreement and disagreement"
    difference = paired["difference"]
    significant = "significant" if paired["pValue"] < 0.05 else "not significant"
    p_value = "p < 0.001" if paired["pValue"] < 0.001 else f"p = {paired['pValue']:.3f}"
    sentence = (
        f"v2 agrees with the answers served on {round(comparison['agreement'] * 100)}% of"
        f" {len(POINTS)} requests; on {len(POINTS)} labelled ones its accuracy is"
        f" {abs(difference):.3f} {'higher' if difference > 0 else 'lower'}"
        f" ({paired['candidate']:.3f} against {paired['baseline']:.3f};"
        f" 95% CI {fixed(paired['confidenceLow'])} to {fixed(paired['confidenceHigh'])},"
        f" {p_value}, {significant})."
    )
    assert difference != 0, "the example needs a difference"

    await page.goto(f"{server.url}/dashboard#model={model}")
    await expect(page.locator("#shadow-summary")).to_have_text(
        re.compile(r"^v2 scores 100% of live requests in the shadow, after each answer is sent\.")
    )
    panel = page.locator('#shadow-comparison .shadow-version[data-version="2"]')
    await expect(panel.locator(".sentence")).to_have_text(sentence)
    changes = panel.locator("table.label-changes tbody tr")
    await expect(changes.first).to_be_visible()
    assert await changes.count() >= 1
    await expect(page.locator("#history .based-on")).to_have_text(
        f"Based on a SHADOW comparison: {sentence}"
    )


async def test_the_live_tail_fills_in_the_shadow_answers_on_the_prediction_s_row(
    server: Served,
    page: Page,
    sessionmaker: async_sessionmaker[AsyncSession],
    artifact_store: ArtifactStore,
):
    model = await shadowed(server, await register(sessionmaker, artifact_store, TWO_VERSIONS))
    await page.goto(f"{server.url}/dashboard#model={model}")
    await expect(page.locator("#tail-status")).to_have_text(re.compile(r"^live"))

    async with httpx.AsyncClient(base_url=server.url) as http:
        made = await data(http, PREDICT, input={"model": model, "instances": [{"a": 3, "b": 4}]})
        prediction_id = made["createPredictions"]["predictions"][0]["id"]
        await settled(server)
        found = await data(http, SHADOW_OF, id=prediction_id)
    [answer] = found["node"]["shadows"]

    row = page.locator(f'#tail-rows tr[data-id="{prediction_id}"]')
    await expect(row.locator("td.shadows")).to_have_text(f"v2: {answer['label']}", timeout=5000)
    assert await row.count() == 1, "the shadow answers update the row; they add none"
    await expect(page.locator("#tail-status")).to_have_text(re.compile(r"1 new"))
