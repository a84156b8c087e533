"""The predictor scores batches in one call, single-threaded, with labels in class order."""

from __future__ import annotations

import math
from typing import Any
from unittest import mock

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Perceptron
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelql.models.predictor import ModelOutput, Predictor
from modelql.models.signature import FeatureSpec
from modelql.models.training import TrainedVersion
from modelql.models.vocabulary import FeatureType

TEXTBOOK_SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
FEATURES = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.1, 0.8], [0.8, 0.3]])
TARGET = np.array([3, 7, 3, 7, 3, 7])
TWO_NUMBERS = [FeatureSpec("a", FeatureType.NUMBER), FeatureSpec("b", FeatureType.NUMBER)]


class Recorder:
    """A stand-in regressor that records the matrix it is given."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        self.seen.append(matrix)
        return np.arange(len(matrix), dtype=np.float64)


def predictor_for(version: TrainedVersion) -> Predictor:
    return Predictor(version.estimator, version.signature, version.labels)


def test_construction_forces_n_jobs_to_one_everywhere() -> None:
    forest = RandomForestClassifier(n_estimators=5, n_jobs=-1, random_state=0)
    pipeline = make_pipeline(StandardScaler(), forest).fit(FEATURES, TARGET)

    Predictor(pipeline, TWO_NUMBERS, None)

    assert pipeline.get_params()["randomforestclassifier__n_jobs"] == 1
    assert forest.n_jobs == 1


def test_construction_forces_n_jobs_on_a_bare_random_forest() -> None:
    forest = RandomForestClassifier(n_estimators=5, n_jobs=4).fit(FEATURES, TARGET)

    Predictor(forest, TWO_NUMBERS, None)

    assert forest.n_jobs == 1


@pytest.mark.parametrize("number", [1, 2])
def test_textbook_iris_sample_is_setosa(
    catalogue: dict[str, list[TrainedVersion]], number: int
) -> None:
    (output,) = predictor_for(catalogue["iris-classifier"][number - 1]).predict([TEXTBOOK_SETOSA])

    assert output.label == "setosa"
    assert output.value is None
    assert output.probabilities is not None
    assert [label for label, _ in output.probabilities] == ["setosa", "versicolor", "virginica"]
    assert math.fsum(p for _, p in output.probabilities) == pytest.approx(1.0)
    assert output.confidence == max(p for _, p in output.probabilities)
    assert all(type(p) is float for _, p in output.probabilities)
    assert type(output.confidence) is float


def test_a_batch_is_scored_with_one_estimator_call(
    catalogue: dict[str, list[TrainedVersion]],
) -> None:
    predictor = predictor_for(catalogue["iris-classifier"][1])
    rows = [TEXTBOOK_SETOSA, {**TEXTBOOK_SETOSA, "petal_length": 5.5, "petal_width": 2.1}] * 5

    with mock.patch.object(
        predictor.estimator, "predict_proba", wraps=predictor.estimator.predict_proba
    ) as spy:
        outputs = predictor.predict(rows)

    assert spy.call_count == 1
    assert len(outputs) == len(rows)
    assert [output.label for output in outputs[:2]] == ["setosa", "virginica"]


def test_a_matrix_built_by_the_caller_is_scored_as_given() -> None:
    """Bulk validation builds the matrix once; scoring does not build it again."""
    recorder = Recorder()
    rows = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]
    matrix = np.array([[1.0, 2.0], [3.0, 4.0]])

    scores = Predictor(recorder, TWO_NUMBERS, None).score(rows, matrix)

    assert recorder.seen == [matrix] and recorder.seen[0] is matrix
    assert scores.values == [0.0, 1.0]


def test_label_is_the_most_probable_label() -> None:
    model = LogisticRegression().fit(FEATURES, TARGET)
    rows = [{"a": float(a), "b": float(b)} for a, b in np.random.default_rng(0).random((50, 2))]

    for output in Predictor(model, TWO_NUMBERS, ["three", "seven"]).predict(rows):
        assert output.probabilities is not None
        best = max(output.probabilities, key=lambda pair: pair[1])
        assert (output.label, output.confidence) == best


def test_labels_default_to_the_class_values() -> None:
    model = LogisticRegression().fit(FEATURES, TARGET)

    (output,) = Predictor(model, TWO_NUMBERS, None).predict([{"a": 0.0, "b": 1.0}])

    assert output.label == "3"
    assert output.probabilities is not None
    assert [label for label, _ in output.probabilities] == ["3", "7"]


def test_classifier_without_probabilities_returns_only_a_label() -> None:
    model = Perceptron(random_state=0).fit(FEATURES, TARGET)

    outputs = Predictor(model, TWO_NUMBERS, ["three", "seven"]).predict(
        [{"a": 0.0, "b": 1.0}, {"a": 1.0, "b": 0.0}]
    )

    assert outputs == [
        ModelOutput("three", None, None, None),
        ModelOutput("seven", None, None, None),
    ]


def test_label_count_must_match_the_classes() -> None:
    model = LogisticRegression().fit(FEATURES, TARGET)

    with pytest.raises(ValueError, match="labels"):
        Predictor(model, TWO_NUMBERS, ["only-one"])


def test_regressor_returns_a_value_and_no_label(
    catalogue: dict[str, list[TrainedVersion]],
) -> None:
    version = catalogue["diabetes-regressor"][0]
    row = {spec.name: 0.01 for spec in version.signature}

    (output,) = predictor_for(version).predict([row])

    expected = version.estimator.predict(np.full((1, len(version.signature)), 0.01))[0]
    assert output == ModelOutput(
        label=None, value=pytest.approx(expected), probabilities=None, confidence=None
    )
    assert type(output.value) is float


def test_numeric_matrix_in_signature_order_with_nan_for_missing_optional() -> None:
    recorder = Recorder()
    signature = [
        FeatureSpec("b", FeatureType.INTEGER),
        FeatureSpec("flag", FeatureType.BOOLEAN),
        FeatureSpec("a", FeatureType.NUMBER, required=False),
    ]

    outputs = Predictor(recorder, signature, None).predict(
        [{"a": 1.5, "b": 2, "flag": True}, {"b": 3, "flag": False}]
    )

    (matrix,) = recorder.seen
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [[2.0, 1.0, 1.5], [3.0, 0.0, np.nan]])
    assert [output.value for output in outputs] == [0.0, 1.0]


def test_non_numeric_features_give_an_object_matrix_with_none_for_missing() -> None:
    recorder = Recorder()
    signature = [
        FeatureSpec("size", FeatureType.NUMBER),
        FeatureSpec("colour", FeatureType.CATEGORY, required=False),
    ]

    Predictor(recorder, signature, None).predict([{"size": 1, "colour": "red"}, {"size": 2.5}])

    (matrix,) = recorder.seen
    assert matrix.dtype == object
    assert matrix.tolist() == [[1.0, "red"], [2.5, None]]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"a": 1.0}, "missing required feature 'b'"),
        ({"a": 1.0, "b": None}, "missing required feature 'b'"),
        ({"a": 1.0, "b": "2"}, "expects a number"),
        ({"a": True, "b": 2.0}, "expects a number"),
        ({"a": 1.0, "b": 2.0, "c": 3.0}, "unknown feature"),
    ],
)
def test_bad_rows_are_refused(row: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Predictor(Recorder(), TWO_NUMBERS, None).predict([{"a": 0.0, "b": 0.0}, row])


@pytest.mark.parametrize("number", [2, 0.5, 1])
def test_a_boolean_feature_refuses_a_number(number: float) -> None:
    signature = [FeatureSpec("size", FeatureType.NUMBER), FeatureSpec("flag", FeatureType.BOOLEAN)]

    with pytest.raises(ValueError, match="expects a boolean"):
        Predictor(Recorder(), signature, None).predict([{"size": 1.0, "flag": number}])


def test_an_empty_batch_calls_nothing() -> None:
    recorder = Recorder()

    assert Predictor(recorder, TWO_NUMBERS, None).predict([]) == []
    assert recorder.seen == []
