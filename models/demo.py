"""The demo catalogue: small models trained on datasets that ship inside scikit-learn."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import datasets
from sklearn.base import clone
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelql.models.training import Dataset, ThresholdSlice, TrainedVersion, train_version
from modelql.models.vocabulary import Task


@dataclass(frozen=True)
class VersionRecipe:
    """One version of a demo model: an unfitted estimator, cloned before every fit."""

    description: str
    estimator: Any


@dataclass(frozen=True)
class ModelRecipe:
    """A demo model: its dataset, named slices and versions in version order."""

    name: str
    description: str
    task: Task
    tags: tuple[str, ...]
    loader: Callable[..., Any]
    target: str
    slices: tuple[ThresholdSlice, ...]
    versions: tuple[VersionRecipe, ...]


def sanitize_feature_name(name: str) -> str:
    """A lowercase identifier: units in parentheses dropped, other separators as underscores."""
    without_units = re.sub(r"\([^)]*\)", " ", name.lower())
    return re.sub(r"[^a-z0-9]+", "_", without_units).strip("_")


def load_dataset(recipe: ModelRecipe) -> Dataset:
    """The recipe's bundled scikit-learn dataset with identifier feature names."""
    bunch = recipe.loader()
    names = tuple(sanitize_feature_name(str(name)) for name in bunch.feature_names)
    target_names = getattr(bunch, "target_names", None)
    return Dataset(
        name=recipe.loader.__name__.removeprefix("load_"),
        source=f"sklearn.datasets.{recipe.loader.__name__}",
        target=recipe.target,
        feature_names=names,
        X=bunch.data,
        y=bunch.target,
        labels=None if target_names is None else tuple(str(label) for label in target_names),
        descriptions=dict(zip(names, map(str, bunch.feature_names), strict=True)),
    )


DEMO_RECIPES: tuple[ModelRecipe, ...] = (
    ModelRecipe(
        name="iris-classifier",
        description="Predicts the iris species from sepal and petal length and width in cm.",
        task=Task.CLASSIFICATION,
        tags=("demo", "tabular", "iris"),
        loader=datasets.load_iris,
        target="species",
        slices=(ThresholdSlice("petal_length", 4),),
        versions=(
            VersionRecipe(
                "Logistic regression on the four raw measurements.",
                LogisticRegression(max_iter=1000),
            ),
            VersionRecipe(
                "Random forest of 100 trees.",
                RandomForestClassifier(n_estimators=100, random_state=42, n_jobs=1),
            ),
        ),
    ),
    ModelRecipe(
        name="wine-classifier",
        description="Predicts which of three cultivars a wine comes from, using 13 chemical "
        "measurements.",
        task=Task.CLASSIFICATION,
        tags=("demo", "tabular", "wine"),
        loader=datasets.load_wine,
        target="cultivar",
        slices=(ThresholdSlice("alcohol", 13),),
        versions=(
            VersionRecipe(
                "Standardised features followed by logistic regression.",
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            ),
        ),
    ),
    ModelRecipe(
        name="breast-cancer-classifier",
        description="Predicts whether a breast mass is malignant or benign from 30 features of "
        "a digitised fine-needle aspirate image.",
        task=Task.CLASSIFICATION,
        tags=("demo", "tabular", "breast-cancer"),
        loader=datasets.load_breast_cancer,
        target="diagnosis",
        slices=(ThresholdSlice("mean_radius", 15),),
        versions=(
            VersionRecipe(
                "Gradient-boosted decision trees (100 stages).",
                GradientBoostingClassifier(random_state=42),
            ),
        ),
    ),
    ModelRecipe(
        name="diabetes-regressor",
        description="Predicts disease progression one year after baseline from age, sex, BMI, "
        "blood pressure and six blood serum measurements (mean-centred and scaled).",
        task=Task.REGRESSION,
        tags=("demo", "tabular", "diabetes"),
        loader=datasets.load_diabetes,
        target="disease_progression",
        slices=(ThresholdSlice("bmi", 0), ThresholdSlice("age", 0)),
        versions=(VersionRecipe("Ridge regression (alpha=0.1).", Ridge(alpha=0.1)),),
    ),
)

DEMO_VERSION_COUNT: int = sum(len(recipe.versions) for recipe in DEMO_RECIPES)


def train_recipe(
    recipe: ModelRecipe, on_step: Callable[[str], None] | None = None
) -> list[TrainedVersion]:
    """Train every version of one demo model in version order, then assign its aliases."""
    dataset = load_dataset(recipe)
    trained = []
    for number, version in enumerate(recipe.versions, start=1):
        if on_step is not None:
            on_step(f"{recipe.name} v{number}: {version.description}")
        trained.append(
            train_version(
                model_name=recipe.name,
                model_description=recipe.description,
                task=recipe.task,
                tags=recipe.tags,
                dataset=dataset,
                estimator=clone(version.estimator),
                description=version.description,
                slices=recipe.slices,
            )
        )
    assign_aliases(trained)
    return trained


def train_demo(on_step: Callable[[str], None] | None = None) -> list[TrainedVersion]:
    """Train all DEMO_VERSION_COUNT demo versions, model by model, in version order."""
    return [version for recipe in DEMO_RECIPES for version in train_recipe(recipe, on_step)]


def assign_aliases(versions: list[TrainedVersion]) -> None:
    """ "production" on the best version by test score (earliest wins ties), "challenger" on
    the runner-up; the score is f1_macro for classifiers and r2 for regressors."""
    ranked = sorted(range(len(versions)), key=lambda index: (-_test_score(versions[index]), index))
    for alias, index in zip(("production", "challenger"), ranked, strict=False):
        versions[index].aliases.append(alias)


def _test_score(version: TrainedVersion) -> float:
    """The overall TEST metric that decides aliases."""
    metric = "f1_macro" if version.task == "CLASSIFICATION" else "r2"
    for record in version.performance:
        if record.split == "TEST" and record.slice == "overall":
            return record.metrics[metric]
    raise ValueError(f"{version.model_name} has no overall TEST record")


def labelled_stream(
    recipe: ModelRecipe, count: int, rng: np.random.Generator, *, noise: float = 0.3
) -> tuple[list[dict[str, float]], list[str]]:
    """`count` inputs drawn from the recipe's dataset (rows picked at random, plus Gaussian
    noise of `noise` times each feature's standard deviation) and their dataset labels: a
    classifier's live traffic from its training distribution, with its ground truth."""
    dataset = load_dataset(recipe)
    assert dataset.labels is not None, "a classification recipe"
    picked = rng.integers(0, len(dataset.X), count)
    spread = dataset.X.std(axis=0) * noise
    values = dataset.X[picked] + rng.normal(0.0, 1.0, (count, dataset.X.shape[1])) * spread
    whole = np.all(np.round(dataset.X) == dataset.X, axis=0)  # INTEGER features stay whole
    values = np.where(whole, np.round(values), np.round(values, 4))
    rows = [dict(zip(dataset.feature_names, map(float, row), strict=True)) for row in values]
    return rows, [dataset.labels[int(target)] for target in dataset.y[picked]]


def recipe_named(name: str) -> ModelRecipe:
    """The demo recipe of the model `name`."""
    return next(recipe for recipe in DEMO_RECIPES if recipe.name == name)
