"""The demo catalogue: what is trained, what is recorded, and that it is reproducible."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelql.models.demo import (
    DEMO_RECIPES,
    DEMO_VERSION_COUNT,
    sanitize_feature_name,
    train_recipe,
)
from modelql.models.training import TrainedVersion, algorithm_of, json_safe_params

EXPECTED_VERSIONS = [
    ("iris-classifier", "sklearn.linear_model.LogisticRegression"),
    ("iris-classifier", "sklearn.ensemble.RandomForestClassifier"),
    ("wine-classifier", "sklearn.linear_model.LogisticRegression"),
    ("breast-cancer-classifier", "sklearn.ensemble.GradientBoostingClassifier"),
    ("diabetes-regressor", "sklearn.linear_model.Ridge"),
]
NAMED_SLICES = {
    "iris-classifier": {"petal_length>=4"},
    "wine-classifier": {"alcohol>=13"},
    "breast-cancer-classifier": {"mean_radius>=15"},
    "diabetes-regressor": {"bmi>=0", "age>=0"},
}


def overall_test_metrics(version: TrainedVersion) -> dict[str, float]:
    (record,) = [r for r in version.performance if (r.split, r.slice) == ("TEST", "overall")]
    return record.metrics


def test_trains_the_expected_versions_in_order_reporting_each_step(
    demo_run: tuple[list[TrainedVersion], list[str]],
) -> None:
    versions, steps = demo_run

    assert [(v.model_name, v.algorithm) for v in versions] == EXPECTED_VERSIONS
    assert len(versions) == len(steps) == DEMO_VERSION_COUNT == 5
    assert steps[0].startswith("iris-classifier v1")
    assert steps[1].startswith("iris-classifier v2")


def test_iris_production_is_v1_with_the_better_or_equal_test_f1(
    catalogue: dict[str, list[TrainedVersion]],
) -> None:
    v1, v2 = catalogue["iris-classifier"]

    assert (v1.aliases, v2.aliases) == (["production"], ["challenger"])
    assert overall_test_metrics(v1)["f1_macro"] >= overall_test_metrics(v2)["f1_macro"]


def test_every_model_has_exactly_one_production_version(
    catalogue: dict[str, list[TrainedVersion]],
) -> None:
    for versions in catalogue.values():
        assert sum(v.aliases.count("production") for v in versions) == 1


def test_iris_features_and_labels(catalogue: dict[str, list[TrainedVersion]]) -> None:
    version = catalogue["iris-classifier"][0]

    assert [spec.name for spec in version.signature] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert version.signature[0].description == "sepal length (cm)"
    assert version.labels == ["setosa", "versicolor", "virginica"]
    assert version.data_arguments["features"] == [spec.name for spec in version.signature]


@pytest.mark.parametrize(
    ("raw", "identifier"),
    [
        ("sepal length (cm)", "sepal_length"),
        ("od280/od315_of_diluted_wines", "od280_od315_of_diluted_wines"),
        ("mean concave points", "mean_concave_points"),
        ("  Worst  Area ", "worst_area"),
    ],
)
def test_sanitize_feature_name(raw: str, identifier: str) -> None:
    assert sanitize_feature_name(raw) == identifier


def test_all_feature_names_are_identifiers(demo_versions: list[TrainedVersion]) -> None:
    for version in demo_versions:
        assert all(spec.name.isidentifier() for spec in version.signature)


def test_regressor_has_no_labels_and_only_regression_metrics(
    catalogue: dict[str, list[TrainedVersion]],
) -> None:
    (version,) = catalogue["diabetes-regressor"]

    assert version.task == "REGRESSION"
    assert version.labels is None
    assert version.data_arguments["stratify"] is False
    assert {tuple(r.metrics) for r in version.performance} == {("rmse", "mae", "r2")}


def test_performance_covers_every_split_class_and_named_slice(
    demo_versions: list[TrainedVersion],
) -> None:
    for version in demo_versions:
        classes = {f"class:{label}" for label in version.labels or []}
        for split in ("TRAIN", "VALIDATION", "TEST"):
            slices = {r.slice for r in version.performance if r.split == split}
            assert slices == {"overall"} | classes | NAMED_SLICES[version.model_name]


def test_split_sizes_match_the_dataset_info(demo_versions: list[TrainedVersion]) -> None:
    for version in demo_versions:
        sizes = {r.split: r.num_samples for r in version.performance if r.slice == "overall"}
        assert sizes["TRAIN"] == version.dataset.num_train_samples
        assert sizes["TEST"] == version.dataset.num_test_samples
        assert sizes["VALIDATION"] == pytest.approx(
            0.2 * (sizes["TRAIN"] + sizes["VALIDATION"]), abs=1
        )


def test_recorded_metadata_is_json_safe_and_truthful(demo_versions: list[TrainedVersion]) -> None:
    for version in demo_versions:
        json.dumps([version.hyperparameters, version.data_arguments], allow_nan=False)
        assert all(type(v) is float for r in version.performance for v in r.metrics.values())
        assert version.framework_version == sklearn.__version__
        assert version.trained_at.utcoffset() == timedelta(0)
        assert version.dataset.source == f"sklearn.datasets.load_{version.dataset.name}"
        assert version.data_arguments["split_random_state"] == 42


def test_hyperparameters_come_from_the_estimator(
    catalogue: dict[str, list[TrainedVersion]],
) -> None:
    forest = catalogue["iris-classifier"][1].hyperparameters

    assert forest["n_estimators"] == 100
    assert forest["random_state"] == 42
    assert forest["n_jobs"] == 1


def test_json_safe_params_keeps_json_values_and_reprs_the_rest() -> None:
    model = LogisticRegression(C=np.float64(0.5), tol=float("inf"), class_weight={0: 2.0})

    params = json_safe_params(model)

    assert type(params["C"]) is float
    assert params["C"] == 0.5
    assert params["tol"] == "inf"
    assert params["class_weight"] == "{0: 2.0}"
    assert params["max_iter"] == 100


def test_algorithm_of_a_pipeline_is_its_final_estimator() -> None:
    pipeline = make_pipeline(StandardScaler(), LogisticRegression())

    assert algorithm_of(pipeline) == "sklearn.linear_model.LogisticRegression"


def test_retraining_reproduces_the_same_metrics(
    catalogue: dict[str, list[TrainedVersion]],
) -> None:
    (iris,) = [recipe for recipe in DEMO_RECIPES if recipe.name == "iris-classifier"]

    retrained = train_recipe(iris)

    original = catalogue["iris-classifier"]
    assert [v.performance for v in retrained] == [v.performance for v in original]
    assert [v.aliases for v in retrained] == [v.aliases for v in original]


def test_recipes_are_never_fitted_themselves() -> None:
    for recipe in DEMO_RECIPES:
        for version in recipe.versions:
            assert not hasattr(version.estimator, "n_features_in_")
