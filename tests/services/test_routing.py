"""The version-choice rule with a traffic split: what a request names wins, otherwise the split
draws by weight, the same key always to the same version, in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter

import pytest

from modelql.models.vocabulary import RoutingReason, Task
from modelql.services.catalogue import ModelRoute, RouteChoice

MODEL_ID = uuid.UUID("6d6f6465-6c71-6c00-0000-000000000001")
V1, V2, V3 = (uuid.UUID(int=n) for n in (1, 2, 3))


def route(split: tuple[tuple[uuid.UUID, float], ...]) -> ModelRoute:
    return ModelRoute(
        model_id=MODEL_ID,
        name="routed",
        task=Task.CLASSIFICATION,
        aliases={"production": V1, "challenger": V3},
        numbers={1: V1, 2: V2, 3: V3},
        split=split,
        loaded_at=0.0,
    )


NINETY_TEN = route(((V2, 90.0), (V3, 10.0)))


def test_what_the_request_names_wins_over_the_split():
    assert NINETY_TEN.choose(number=3, alias=None, routing_key="k") == RouteChoice(
        V3, RoutingReason.VERSION
    )
    assert NINETY_TEN.choose(number=None, alias="production", routing_key="k") == RouteChoice(
        V1, RoutingReason.ALIAS
    )
    assert NINETY_TEN.choose(number=None, alias=None, routing_key="k").routed_by == "SPLIT"


def test_without_a_split_or_a_routing_key_the_default_version_answers():
    assert route(()).choose(number=None, alias=None, routing_key="k") == RouteChoice(
        V1, RoutingReason.DEFAULT
    )
    assert NINETY_TEN.choose(number=None, alias=None) == RouteChoice(V1, RoutingReason.DEFAULT)


def test_shares_converge_to_the_weights_and_every_key_is_sticky():
    keys = [f"user-{n}" for n in range(20_000)]
    drawn = {key: NINETY_TEN.draw(key) for key in keys}
    counts = Counter(drawn.values())
    assert set(counts) == {V2, V3}
    assert counts[V3] / len(keys) == pytest.approx(0.10, abs=0.01)
    assert all(NINETY_TEN.draw(key) == version for key, version in list(drawn.items())[:500])


def test_weights_are_relative():
    assert [route(((V2, 9.0), (V3, 1.0))).draw(f"k{n}") for n in range(300)] == [
        NINETY_TEN.draw(f"k{n}") for n in range(300)
    ]


def test_growing_the_candidate_share_only_moves_keys_towards_it():
    fifty_fifty = route(((V2, 50.0), (V3, 50.0)))
    keys = [f"user-{n}" for n in range(2_000)]
    assert all(fifty_fifty.draw(key) == V3 for key in keys if NINETY_TEN.draw(key) == V3)


def test_the_draw_is_the_same_in_another_process():
    keys = [f"user-{n}" for n in range(200)]
    script = (
        "import json, sys, uuid\n"
        "from modelql.services.catalogue import ModelRoute\n"
        "from modelql.models.vocabulary import Task\n"
        f"r = ModelRoute(uuid.UUID('{MODEL_ID}'), 'routed', Task.CLASSIFICATION, {{}}, "
        f"{{2: uuid.UUID(int=2), 3: uuid.UUID(int=3)}}, "
        "((uuid.UUID(int=2), 90.0), (uuid.UUID(int=3), 10.0)), 0.0)\n"
        "print(json.dumps([str(r.draw(k)) for k in json.load(sys.stdin)]))\n"
    )
    elsewhere = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(elsewhere.stdout) == [str(NINETY_TEN.draw(key)) for key in keys]
