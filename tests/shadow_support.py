"""A small two-feature classifier registered in versions, for shadow tests (live requests
and prediction jobs)."""

from __future__ import annotations

import uuid

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.models.artifacts import ArtifactStore
from modelql.models.signature import FeatureSpec
from modelql.models.vocabulary import FeatureType
from modelql.services import registration

X = np.array([[0.0, 1.0], [0.5, 1.5], [1.0, 0.5], [3.0, 4.0], [3.5, 3.0], [4.0, 5.0]])
Y = np.array(["low", "low", "low", "high", "high", "high"])
SIGNATURE = [
    FeatureSpec(name="a", type=FeatureType.NUMBER),
    FeatureSpec(name="b", type=FeatureType.NUMBER),
]


async def register(
    sessionmaker: async_sessionmaker[AsyncSession],
    store: ArtifactStore,
    versions: list[tuple[np.ndarray, list[FeatureSpec]]],
) -> str:
    """A new model with one logistic regression per (training labels, signature); v1 is
    production."""
    name = f"zz-shadow-{uuid.uuid4().hex[:10]}"
    for number, (labels, specs) in enumerate(versions, start=1):
        data = np.array([[row[0] if s.name == "a" else row[-1] for s in specs] for row in X])
        described = registration.VersionRegistration(
            model_name=name,
            task="CLASSIFICATION",
            algorithm="sklearn.linear_model.LogisticRegression",
            framework_version=sklearn.__version__,
            signature=specs,
            labels=["high", "low"],
            aliases=["production"] if number == 1 else [],
        )
        estimator = LogisticRegression(max_iter=200).fit(data, labels)
        async with sessionmaker.begin() as session:
            await registration.register_version(
                session, store, described, estimator=estimator, actor="tests"
            )
    return name


FLIPPED = np.array(["low", "low", "high", "high", "high", "low"])
"""Labels a second version is trained on, so that it disagrees with v1 on some inputs."""
