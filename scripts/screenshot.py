"""Screenshot the dashboard of the running demo into docs/dashboard.png.

    .venv/bin/python scripts/screenshot.py                  # starts `modelql serve` itself
    .venv/bin/python scripts/screenshot.py --url http://127.0.0.1:8000

Without --url the demo is started on an embedded PostgreSQL in a temporary directory. Some
predictions are made first (so the charts have data), and more while the page is open (so
the live tail shows them arrive). The iris model's other version runs in the shadow and some
outcomes are recorded, so the shadow comparison has a paired test to show. Uses the machine's
Chromium through Playwright.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "dashboard.png"
PREDICT = """mutation($instances: [JSON!]!) {
  createPredictions(input: {model: "iris-classifier", instances: $instances}) {
    predictions { id } } }"""
VERSIONS = """{ model(name: "iris-classifier") {
  defaultVersion { number } versions { nodes { number } } } }"""
SHADOW = """mutation($version: Int!) { setShadow(input: {model: "iris-classifier",
  versions: [{version: $version}], sample: 1}) { userErrors { message } } }"""
RECORD = """mutation($outcomes: [OutcomeInput!]!) { recordOutcomes(input: {outcomes: $outcomes}) {
  userErrors { message } } }"""
KINDS = ("setosa", "versicolor", "virginica")


def iris_instances(count: int) -> tuple[list[dict[str, float]], list[str]]:
    """Plausible iris flowers of all three kinds, and the kind each was drawn from."""
    centres = [(5.0, 3.4, 1.5, 0.2), (5.9, 2.8, 4.3, 1.3), (6.6, 3.0, 5.6, 2.0)]
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    kinds = random.choices(range(len(centres)), k=count)
    instances = [
        {
            name: round(value + random.gauss(0, 0.3), 1)
            for name, value in zip(names, centres[kind], strict=True)
        }
        for kind in kinds
    ]
    return instances, [KINDS[kind] for kind in kinds]


@contextlib.asynccontextmanager
async def demo_server() -> AsyncIterator[str]:
    """`modelql serve` with the demo catalogue on a fresh embedded PostgreSQL."""
    data_dir = Path(tempfile.mkdtemp(prefix="mqshot", dir="/tmp"))
    os.chmod(data_dir, 0o711)  # as root, the embedded server runs as a user that must enter it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "MODELQL_DATA_DIR": str(data_dir), "MODELQL_PORT": str(port)}
    environment.pop("DATABASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelql.cli", "serve", env=environment
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{url}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        yield url
    finally:
        process.terminate()
        await process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


async def post(http: httpx.AsyncClient, query: str, **variables: object) -> dict:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    response.raise_for_status()
    return response.json()["data"]


async def predict(http: httpx.AsyncClient, count: int, *, label: bool = False) -> None:
    """`count` predictions; with `label`, their outcomes recorded too."""
    instances, kinds = iris_instances(count)
    made = (await post(http, PREDICT, instances=instances))["createPredictions"]["predictions"]
    if label:
        outcomes = [
            {"predictionId": p["id"], "label": kind} for p, kind in zip(made, kinds, strict=True)
        ]
        await post(http, RECORD, outcomes=outcomes)


async def shadow_the_other_version(http: httpx.AsyncClient) -> None:
    """The iris version that is not the default scores every request in the shadow."""
    model = (await post(http, VERSIONS))["model"]
    numbers = [version["number"] for version in model["versions"]["nodes"]]
    other = next(n for n in numbers if n != model["defaultVersion"]["number"])
    await post(http, SHADOW, version=other)


async def capture(url: str, output: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium found (Debian: apt-get install chromium)")
    async with httpx.AsyncClient(base_url=url) as http, async_playwright() as playwright:
        await shadow_the_other_version(http)
        for size in (5, 12, 3, 8, 20):
            await predict(http, size)
        await predict(http, 150, label=True)
        await asyncio.sleep(1)  # the shadow scores after each answer is sent
        browser = await playwright.chromium.launch(executable_path=chromium)
        page = await browser.new_page(viewport={"width": 1440, "height": 1000})
        await page.goto(f"{url}/dashboard#model=iris-classifier")
        await page.wait_for_selector("#tail-status[data-state=ok]")
        for size in (1, 3, 2):
            await predict(http, size)
            await asyncio.sleep(0.3)
        await page.wait_for_timeout(500)
        output.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(output), full_page=True)
        await browser.close()
    print(f"wrote {output}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running ModelQL (default: start the demo)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    arguments = parser.parse_args()
    if arguments.url:
        await capture(arguments.url, arguments.output)
        return
    async with demo_server() as url:
        await capture(url, arguments.output)


if __name__ == "__main__":
    asyncio.run(main())
