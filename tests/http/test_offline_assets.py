"""Every script and style GraphiQL and the dashboard load is served by ModelQL itself, and the
vendored GraphiQL files are the exact bytes the page's integrity hashes name."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

ASSET = re.compile(r'<(?:script|link)\b[^>]*?(?:src|href)="(?P<url>[^"]+)"[^>]*>', re.S)
INTEGRITY = re.compile(r'integrity="(?P<hash>[^"]+)"')


def assets(html: str) -> list[tuple[str, str | None]]:
    found = []
    for match in ASSET.finditer(html):
        integrity = INTEGRITY.search(match.group(0))
        found.append((match["url"], integrity["hash"] if integrity else None))
    return [(url, digest) for url, digest in found if not url.startswith("data:")]


async def test_graphiql_loads_nothing_from_elsewhere_and_every_file_matches_its_hash(
    client: httpx.AsyncClient,
):
    html = (await client.get("/graphql", headers={"Accept": "text/html"})).text
    loaded = assets(html)
    assert len(loaded) == 7
    for url, integrity in loaded:
        assert url.startswith("/static/vendor/"), url
        response = await client.get(url)
        assert response.status_code == 200, url
        digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url
    assert "unpkg.com" not in html


async def test_the_dashboard_page_and_its_modules_are_served_here(client: httpx.AsyncClient):
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    loaded = [url for url, _ in assets(page.text)]
    assert loaded == ["/static/dashboard/style.css", "/static/dashboard/app.js"]
    modules = ["app.js", "api.js", "live.js", "charts.js", "queries.js"]
    for module in modules:
        response = await client.get(f"/static/dashboard/{module}")
        assert response.status_code == 200, module
        assert "javascript" in response.headers["content-type"]
        imports = re.findall(r'from "(?P<path>[^"]+)"', response.text)
        assert all(path.startswith("./") for path in imports), imports
    assert "http" not in "".join(re.findall(r'from "[^"]+"', page.text))
