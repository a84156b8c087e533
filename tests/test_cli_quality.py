"""Quality from the command line: `register --reference-data` stores a profile that drift
reports use, `outcomes import` records a CSV of outcomes all or nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import graphql
from test_cli_embedded import _run_cli, _said, cli_env, registration_files

pytestmark = pytest.mark.slow  # starts `modelql` processes

__all__ = ["cli_env", "registration_files"]

DRIFT = """query($name: String!) { model(name: $name) { defaultVersion {
  inputDrift { referenceAvailable sampleSize features { feature bins { label reference } } } } } }"""
PREDICT = """mutation($model: String!) { createPredictions(input: {model: $model, instances: [
  {alpha: 0.2, beta: 1.0}, {alpha: 3.9, beta: 4.5}]}) { predictions { id label } } }"""


async def outcomes_of(engine: AsyncEngine, model: str) -> list[tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT o.label, o.caller FROM prediction_outcomes o "
                "JOIN predictions p ON p.id = o.prediction_id JOIN models m ON m.id = p.model_id "
                "WHERE m.name = :name ORDER BY o.label"
            ),
            {"name": model},
        )
        return [tuple(row) for row in rows]


async def test_reference_data_and_outcomes_from_the_command_line(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    cli_env: dict[str, str],
    registration_files: dict[str, Path],
    tmp_path: Path,
):
    model = f"cli-quality-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    reference = tmp_path / "reference.csv"
    reference.write_text("alpha,beta\n" + "".join(f"{i / 10},{i / 5}\n" for i in range(40)))
    files = registration_files
    register = ["register", str(files["artifact"]), "--model", model]
    registered = _run_cli(
        [*register, "--signature", str(files["signature"]), "--reference-data", str(reference)],
        cli_env,
    )
    assert registered.returncode == 0, _said(registered)

    made = (await graphql(client, PREDICT, {"model": model}))["data"]["createPredictions"]
    first, second = made["predictions"]
    good = tmp_path / "outcomes.csv"
    good.write_text(f"prediction_id,label\n{first['id']},no\n{second['id']},no\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"prediction_id,label\n{first['id']},yes\n{second['id']},maybe\n")

    refused = _run_cli(["outcomes", "import", str(bad)], cli_env)
    imported = _run_cli(["outcomes", "import", str(good), "--actor", "labelling-team"], cli_env)

    assert refused.returncode == 1
    assert "line 3 / label: Label 'maybe' is not one of the version's labels" in _said(refused)
    assert "Nothing was recorded." in _said(refused)
    assert imported.returncode == 0, _said(imported)
    assert "Recorded 2 outcomes" in _said(imported)
    assert await outcomes_of(engine, model) == [("no", "labelling-team")] * 2
    body = await graphql(client, DRIFT, {"name": model})
    report = body["data"]["model"]["defaultVersion"]["inputDrift"]
    assert (report["referenceAvailable"], report["sampleSize"]) == (True, 2)
    assert sum(b["reference"] for b in report["features"][0]["bins"]) == pytest.approx(1)
