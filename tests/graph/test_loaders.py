"""The request's DataLoaders: a key memory already holds is answered at once, with no batch and
no suspension; the others are batched into one load."""

from __future__ import annotations

import asyncio

from modelql.graph.loaders import DataLoader


def _loader(known: dict[int, str], batches: list[list[int]]) -> DataLoader[int, str]:
    async def load(keys: list[int]) -> list[str]:
        batches.append(list(keys))
        return [f"loaded {key}" for key in keys]

    return DataLoader(load_fn=load, known=known.get)


async def test_a_key_held_in_memory_is_answered_by_a_done_future_without_a_batch():
    batches: list[list[int]] = []
    loader = _loader({1: "from memory"}, batches)

    answer = loader.load(1)

    assert isinstance(answer, asyncio.Future) and answer.done()
    assert await answer == "from memory"
    await asyncio.sleep(0)  # a batch, had one been scheduled, would run now
    assert batches == []


async def test_keys_memory_lacks_are_loaded_in_one_batch():
    batches: list[list[int]] = []
    loader = _loader({1: "from memory"}, batches)

    answers = await asyncio.gather(loader.load(1), loader.load(2), loader.load(3))

    assert answers == ["from memory", "loaded 2", "loaded 3"]
    assert batches == [[2, 3]]
