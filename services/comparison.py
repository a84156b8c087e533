"""Comparing versions on stored traffic: re-score a sample of stored predictions with a
candidate version and set the answers beside a baseline's (or those actually served), or
(source SHADOW) set a shadow version's stored answers beside the primary's. Where outcomes
are known, a paired test of the two sides on the same rows. Stores nothing; scoring runs in
the model cache's worker threads."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.models.metrics import overall_metrics
from modelql.models.paired_tests import PairedTest, mcnemar, paired_t
from modelql.models.predictor import ModelOutput
from modelql.models.vocabulary import Task
from modelql.persistence.model_limit import allows
from modelql.persistence.prediction_filters import PredictionQuery
from modelql.persistence.prediction_repository import (
    RecordedOutcome,
    list_predictions,
    outcomes_for_predictions,
)
from modelql.persistence.shadow_repository import shadow_pairs
from modelql.persistence.tables import PredictionColumns, ShadowPrediction
from modelql.services.catalogue import Catalogue, ModelRoute, Version
from modelql.services.errors import ErrorCode, UserInputError
from modelql.services.features import validate_instance
from modelql.services.inference import ModelCache, refusal_reason
from modelql.services.model_access import unknown_model

MAX_SAMPLE = 10_000
MAX_EXAMPLES = 100
SKIPPED_EXAMPLES = 3
"""Skipped inputs shown first among the examples, each with the reason."""


class ComparisonSource(StrEnum):
    REPLAY = "REPLAY"
    """The candidate re-scores stored predictions now."""
    SHADOW = "SHADOW"
    """The candidate's answers stored while it ran in the shadow of live requests."""


@dataclass(frozen=True)
class VersionSelector:
    number: int | None = None
    alias: str | None = None


@dataclass(frozen=True)
class ComparisonRequest:
    model: str
    candidate: VersionSelector
    baseline: VersionSelector | None
    """None: compare with what each stored prediction answered."""
    query: PredictionQuery
    sample: int
    source: ComparisonSource = ComparisonSource.REPLAY


@dataclass(frozen=True)
class PredictionDiff:
    """One stored prediction with the baseline's and the candidate's answers (None: skipped)."""

    prediction: PredictionColumns
    baseline: ModelOutput | None
    candidate: ModelOutput | None
    skipped_reason: str | None = None

    @property
    def disagreement(self) -> float:
        """How far the answers are apart: 1 for another label, the distance between values
        (regression); 0 when skipped."""
        if self.baseline is None or self.candidate is None:
            return 0.0
        if self.baseline.value is not None and self.candidate.value is not None:
            return abs(self.candidate.value - self.baseline.value)
        return float(self.baseline.label != self.candidate.label)


@dataclass(frozen=True)
class Comparison:
    candidate: Version
    baseline: Version | None
    compared: int
    skipped: int
    agreement: float | None
    label_changes: list[tuple[str, str, int]]
    """(baseline label, candidate label, count), most frequent first."""
    mean_absolute_difference: float | None
    baseline_metrics: dict[str, float]
    candidate_metrics: dict[str, float]
    examples: list[PredictionDiff]
    source: ComparisonSource = ComparisonSource.REPLAY
    paired: PairedTest | None = None
    """The paired test on the compared predictions with an outcome; None without any."""

    def summary(self) -> dict[str, object]:
        """What an alias history keeps of the comparison a move was based on."""
        paired = dataclasses.asdict(self.paired) if self.paired is not None else None
        return {
            "source": self.source.value,
            "candidate": self.candidate.number,
            "baseline": self.baseline.number if self.baseline is not None else None,
            "compared": self.compared,
            "skipped": self.skipped,
            "agreement": self.agreement,
            "meanAbsoluteDifference": self.mean_absolute_difference,
            "paired": paired,
        }


class VersionComparisons:
    """Runs comparisons: a short read, then scoring holding no database connection."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalogue: Catalogue,
        model_cache: ModelCache,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._catalogue = catalogue
        self._model_cache = model_cache

    async def compare(self, request: ComparisonRequest) -> Comparison:
        """The comparison on the newest `sample` stored predictions matching the query;
        UserInputError for an unknown model or version."""
        async with self._sessionmaker() as session:
            route = (await self._catalogue.routes_by_name(session, [request.model])).get(
                request.model
            )
            if route is None or not allows(request.query.limit, request.model):
                raise unknown_model(request.model)
            candidate_id = _chosen(route, request.candidate, "candidate")
            if request.source is ComparisonSource.SHADOW:
                return await self._shadowed(session, route, candidate_id, request)
            baseline_id = _chosen(route, request.baseline, "baseline") if request.baseline else None
            wanted = [candidate_id] if baseline_id is None else [candidate_id, baseline_id]
            versions = await self._catalogue.versions(session, wanted)
            query = dataclasses.replace(request.query, model_id=route.model_id)
            rows = await list_predictions(session, query, limit=request.sample, after=None)
            outcomes = await outcomes_for_predictions(session, [row.id for row in rows])
        candidate = versions[candidate_id]
        baseline = versions[baseline_id] if baseline_id is not None else None
        diffs = await self._diffs(rows, candidate, baseline)
        return _summary(route.task, candidate, baseline, diffs, outcomes)

    async def _shadowed(
        self,
        session: AsyncSession,
        route: ModelRoute,
        candidate_id: uuid.UUID,
        request: ComparisonRequest,
    ) -> Comparison:
        """The shadow's stored answers beside what was served, on its newest `sample` ones to
        the predictions the request's filter selects."""
        if request.baseline is not None:
            raise UserInputError.single(
                ("baseline",),
                ErrorCode.INVALID_SHADOW,
                "With source SHADOW the baseline is what each request was answered; give none.",
            )
        candidate = (await self._catalogue.versions(session, [candidate_id]))[candidate_id]
        query = dataclasses.replace(request.query, model_id=route.model_id)
        pairs = await shadow_pairs(session, query, version_id=candidate_id, limit=request.sample)
        outcomes = await outcomes_for_predictions(session, [primary.id for primary, _ in pairs])
        diffs = [
            PredictionDiff(primary, served_output(primary), _shadow_output(shadow))
            if shadow.refusal is None
            else PredictionDiff(primary, None, None, shadow.refusal)
            for primary, shadow in pairs
        ]
        return _summary(route.task, candidate, None, diffs, outcomes, ComparisonSource.SHADOW)

    async def _diffs(
        self, rows: Sequence[PredictionColumns], candidate: Version, baseline: Version | None
    ) -> list[PredictionDiff]:
        """Each row re-scored, in one estimator call per side; rows a side's signature
        refuses are skipped with the first reason."""
        usable: list[tuple[PredictionColumns, dict[str, object]]] = []
        diffs: list[PredictionDiff] = []
        for row in rows:
            features, reason = _features(row, candidate, baseline)
            if reason is not None:
                diffs.append(PredictionDiff(row, None, None, reason))
            else:
                usable.append((row, features))
        inputs = [features for _, features in usable]
        candidates = await self._scored(candidate, inputs)
        if baseline is None:
            baselines: list[ModelOutput | str] = [served_output(row) for row, _ in usable]
        else:
            baselines = await self._scored(baseline, inputs)
        compared: list[PredictionDiff] = []
        for (row, _), before, after in zip(usable, baselines, candidates, strict=True):
            if isinstance(after, str):
                diffs.append(PredictionDiff(row, None, None, after))
            elif isinstance(before, str):
                diffs.append(PredictionDiff(row, None, None, before))
            else:
                compared.append(PredictionDiff(row, before, after))
        return diffs + compared

    async def _scored(
        self, version: Version, inputs: list[dict[str, object]]
    ) -> list[ModelOutput | str]:
        """Each input's output, or why the version cannot score it: one estimator call for
        all, and one per input only when the estimator refuses them together (a value too
        large for its float32 trees, say)."""
        if not inputs:
            return []
        try:
            return list((await self._model_cache.score(version, inputs)).scores.outputs())
        except ValueError:
            scored: list[ModelOutput | str] = []
            for features in inputs:
                try:
                    batch = await self._model_cache.score(version, [features])
                    scored.extend(batch.scores.outputs())
                except ValueError as error:
                    reason = refusal_reason(error)
                    scored.append(f"Version {version.number} cannot score this input: {reason}")
            return scored


def _chosen(route: ModelRoute, selector: VersionSelector, argument: str) -> uuid.UUID:
    try:
        return route.choose(number=selector.number, alias=selector.alias).version_id
    except UserInputError as error:
        problems = [
            dataclasses.replace(problem, path=(argument, *problem.path[-1:]))
            for problem in error.problems
        ]
        raise UserInputError(problems) from None


def _features(
    row: PredictionColumns, candidate: Version, baseline: Version | None
) -> tuple[dict[str, object], str | None]:
    """The stored inputs as the candidate scores them, or why a side refuses them."""
    features: dict[str, object] = {}
    for side, version in (("candidate", candidate), ("baseline", baseline)):
        if version is None:
            continue
        checked = validate_instance(row.inputs, version.signature, ("inputs",))
        if checked.problems:
            return {}, f"The {side} (version {version.number}): {checked.problems[0].message}"
        if side == "candidate":
            features = checked.features
    return features, None


def _shadow_output(row: ShadowPrediction) -> ModelOutput:
    probabilities = (
        tuple((item["label"], item["probability"]) for item in row.probabilities)
        if row.probabilities is not None
        else None
    )
    return ModelOutput(row.label, row.value, probabilities, row.confidence)


def served_output(row: PredictionColumns) -> ModelOutput:
    """What the stored prediction answered, shaped like a model output."""
    probabilities = (
        tuple((item["label"], item["probability"]) for item in row.probabilities)
        if row.probabilities is not None
        else None
    )
    return ModelOutput(row.label, row.value, probabilities, row.confidence)


def _summary(
    task: Task,
    candidate: Version,
    baseline: Version | None,
    diffs: list[PredictionDiff],
    outcomes: dict[uuid.UUID, RecordedOutcome],
    source: ComparisonSource = ComparisonSource.REPLAY,
) -> Comparison:
    scored = [diff for diff in diffs if diff.candidate is not None]
    skipped = [diff for diff in diffs if diff.candidate is None]
    pairs = [
        (diff.baseline, diff.candidate)
        for diff in scored
        if diff.baseline is not None and diff.candidate is not None
    ]
    classification = task is Task.CLASSIFICATION
    changes = Counter((a.label, b.label) for a, b in pairs if a.label != b.label)
    agreement = mean_difference = None
    if pairs and classification:
        agreement = sum(a.label == b.label for a, b in pairs) / len(pairs)
    if pairs and not classification:
        mean_difference = sum(abs(_value(b) - _value(a)) for a, b in pairs) / len(pairs)
    examples = (
        skipped[:SKIPPED_EXAMPLES]
        + sorted(scored, key=lambda diff: diff.disagreement, reverse=True)
        + skipped[SKIPPED_EXAMPLES:]
    )
    return Comparison(
        candidate=candidate,
        baseline=baseline,
        compared=len(scored),
        skipped=len(skipped),
        agreement=agreement,
        label_changes=[
            (str(before), str(after), count) for (before, after), count in changes.most_common()
        ],
        mean_absolute_difference=mean_difference,
        baseline_metrics=_metrics(classification, scored, outcomes, baseline_side=True),
        candidate_metrics=_metrics(classification, scored, outcomes, baseline_side=False),
        examples=examples[:MAX_EXAMPLES],
        source=source,
        paired=_paired(classification, scored, outcomes),
    )


def _value(output: ModelOutput) -> float:
    assert output.value is not None, "regression outputs carry a value"
    return output.value


def _metrics(
    classification: bool,
    scored: list[PredictionDiff],
    outcomes: dict[uuid.UUID, RecordedOutcome],
    *,
    baseline_side: bool,
) -> dict[str, float]:
    """One side's overall metrics on the compared predictions that have an outcome."""
    truths, answers = [], []
    for diff in scored:
        outcome = outcomes.get(diff.prediction.id)
        answer = diff.baseline if baseline_side else diff.candidate
        if outcome is None or answer is None:
            continue
        truths.append(outcome.label if classification else outcome.value)
        answers.append(answer.label if classification else answer.value)
    return overall_metrics(classification, truths, answers) if truths else {}


def _paired(
    classification: bool,
    scored: list[PredictionDiff],
    outcomes: dict[uuid.UUID, RecordedOutcome],
) -> PairedTest | None:
    """The paired test of both sides on the compared predictions that have an outcome."""
    labelled = [
        (outcome, diff.baseline, diff.candidate)
        for diff in scored
        if (outcome := outcomes.get(diff.prediction.id)) is not None
        and diff.baseline is not None
        and diff.candidate is not None
    ]
    if classification:
        labels = [
            (o.label, b.label, c.label)
            for o, b, c in labelled
            if o.label is not None and b.label is not None and c.label is not None
        ]
        if not labels:
            return None
        return mcnemar(
            [t for t, _, _ in labels], [b for _, b, _ in labels], [c for *_, c in labels]
        )
    values = [(o.value, _value(b), _value(c)) for o, b, c in labelled if o.value is not None]
    if not values:
        return None
    return paired_t([t for t, _, _ in values], [b for _, b, _ in values], [c for *_, c in values])
