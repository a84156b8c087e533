"""The model directory answers model lists exactly as the catalogue repository's query does
(PostgreSQL's collation and ILIKE included), or declines so that the query answers."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.models.vocabulary import Task
from modelql.persistence import catalogue_repository
from modelql.persistence.catalogue_repository import ModelFilter
from modelql.persistence.tables import Model
from modelql.services.freshness import Freshness
from modelql.services.model_directory import ModelDirectory

NAME = st.text(alphabet="abAB-_ 0.é%", min_size=1, max_size=6)
MODEL = st.tuples(
    NAME,
    st.none() | st.text(alphabet="xyXY é_", max_size=5),
    st.sampled_from(list(Task)),
    st.lists(st.sampled_from(["demo", "tabular"]), max_size=2, unique=True),
)
FILTER = st.builds(
    ModelFilter,
    task=st.none() | st.sampled_from(list(Task)),
    tag=st.none() | st.sampled_from(["demo", "tabular", "absent"]),
    search=st.none() | st.text(alphabet="aAxY-_%é", max_size=3),
)


async def _listing(session: AsyncSession, limit: int, after: str | None, where: ModelFilter):
    return await catalogue_repository.list_models(
        session, limit=limit, after_name=after, where=where
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    models=st.lists(MODEL, max_size=8, unique_by=lambda model: model[0]),
    where=FILTER,
    limit=st.integers(min_value=1, max_value=4),
    after_index=st.none() | st.integers(min_value=0, max_value=7),
)
async def test_a_page_from_memory_is_the_page_the_query_gives(
    sessionmaker: async_sessionmaker[AsyncSession],
    demo_catalogue: None,
    models: list[tuple[str, str | None, Task, list[str]]],
    where: ModelFilter,
    limit: int,
    after_index: int | None,
):
    async with sessionmaker() as session, session.begin():
        session.add_all(
            Model(id=uuid.uuid4(), name=name, description=description, task=task, tags=tags)
            for name, description, task, tags in models
        )
        await session.flush()
        rows = await catalogue_repository.models_in_name_order(session, limit=1000)
        directory = ModelDirectory.of(rows, Freshness.now())
        names = [row.name for row in rows]
        after = names[after_index % len(names)] if after_index is not None and names else None
        expected = [row.name for row in await _listing(session, limit, after, where)]
        page = directory.page(limit=limit, after_name=after, where=where)
        if page is not None:
            assert [row.name for row in page] == expected
        else:
            assert not directory.plain_text or not (where.search or "").isascii()
        await session.rollback()


async def test_a_cursor_naming_a_model_that_is_gone_is_left_to_the_query(
    sessionmaker: async_sessionmaker[AsyncSession], demo_catalogue: None
):
    async with sessionmaker() as session:
        rows = await catalogue_repository.models_in_name_order(session, limit=1000)
    directory = ModelDirectory.of(rows, Freshness.now())
    assert directory.page(limit=2, after_name="no-such-model", where=ModelFilter()) is None
    assert directory.page(limit=2, after_name=rows[0].name, where=ModelFilter()) == list(rows[1:3])


def test_a_catalogue_larger_than_the_bound_is_not_kept(monkeypatch):
    monkeypatch.setattr("modelql.services.model_directory.MODELS_KEPT", 2)
    rows = [Model(id=uuid.uuid4(), name=name, task=Task.REGRESSION, tags=[]) for name in "abc"]
    directory = ModelDirectory.of(rows, 0.0)
    assert not directory.complete
    assert directory.page(limit=5, after_name=None, where=ModelFilter()) is None
