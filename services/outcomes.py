"""Recording ground truth: validate a batch of outcomes against the predictions they name,
append what is new, make it the outcome that counts and count it in the roll-ups; all or
nothing, in the caller's transaction."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from modelql.persistence import outcome_repository
from modelql.persistence.database import driver_connection
from modelql.persistence.notifications import OUTCOMES_CHANNEL, notify
from modelql.persistence.outcome_repository import NewOutcome, OutcomeRow, Target
from modelql.services.catalogue import Catalogue, Version
from modelql.services.errors import ErrorCode, FieldProblem, UserInputError
from modelql.services.generations import Dataset, Generations
from modelql.services.model_access import ModelLimit

__all__ = [
    "NO_PREDICTION",
    "OutcomeRecorder",
    "OutcomeRequest",
    "OutcomeRow",
    "histories",
    "record",
]

NO_PREDICTION = uuid.UUID(int=0)
"""The id no prediction has (ids are UUIDv7): what an unreadable prediction id stands for."""


async def histories(
    session: AsyncSession, prediction_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[OutcomeRow]]:
    """Every outcome of each prediction, oldest first, the one that counts marked `latest`."""
    return await outcome_repository.histories(session, prediction_ids)


@dataclass(frozen=True)
class OutcomeRequest:
    """The truth about one prediction, named by id or by (request id, batch index)."""

    prediction_id: uuid.UUID | None = None
    request_id: str | None = None
    batch_index: int | None = None
    label: str | None = None
    value: float | None = None
    observed_at: datetime | None = None

    @property
    def reference(self) -> tuple[str, int] | None:
        if self.request_id is None:
            return None
        return (self.request_id, 0 if self.batch_index is None else self.batch_index)


async def record(
    session: AsyncSession,
    catalogue: Catalogue,
    requests: Sequence[OutcomeRequest],
    *,
    caller: str | None,
    max_batch_size: int,
    limit: ModelLimit | None = None,
) -> list[OutcomeRow]:
    """The outcome that counts for each request's prediction, in request order; every problem
    as a UserInputError, and then nothing is stored. The same outcome again stores nothing.
    A prediction of a model outside the caller's `limit` is one that does not exist."""
    _check_size(requests, max_batch_size)
    problems = [problem for index, item in enumerate(requests) for problem in _shape(index, item)]
    connection = await driver_connection(session)
    targets = await outcome_repository.lock_targets(
        connection,
        [item.prediction_id for item in requests if item.prediction_id is not None],
        [reference for item in requests if (reference := item.reference) is not None],
    )
    if limit is not None:
        targets = await _reachable(session, catalogue, targets, limit)
    found = [_target(index, item, targets, problems) for index, item in enumerate(requests)]
    versions = await catalogue.versions(session, list({t.model_version_id for t in targets}))
    for index, (item, target) in enumerate(zip(requests, found, strict=True)):
        if target is not None:
            problems += _fits(index, item, versions[target.model_version_id])
            problems += _error_is_finite(index, item, target)
    if problems:
        raise UserInputError(problems)
    rows = await _store(connection, requests, [t for t in found if t is not None], caller)
    await notify(session, OUTCOMES_CHANNEL, "")
    return rows


class OutcomeRecorder:
    """The `recordOutcomes` use case: one transaction, after which this process's answers are
    read anew (other processes' on the outcomes notification)."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalogue: Catalogue,
        generations: Generations,
        max_batch_size: int,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._catalogue = catalogue
        self._generations = generations
        self._max_batch_size = max_batch_size

    async def record(
        self,
        requests: Sequence[OutcomeRequest],
        *,
        caller: str | None,
        limit: ModelLimit | None = None,
    ) -> list[OutcomeRow]:
        """As `record`, committed."""
        async with self._sessionmaker.begin() as session:
            rows = await record(
                session,
                self._catalogue,
                requests,
                caller=caller,
                max_batch_size=self._max_batch_size,
                limit=limit,
            )
        self._generations.changed(Dataset.STORE)
        return rows


async def _reachable(
    session: AsyncSession, catalogue: Catalogue, targets: list[Target], limit: ModelLimit
) -> list[Target]:
    """The targets whose model is within `limit`."""
    versions = await catalogue.versions(session, list({t.model_version_id for t in targets}))
    models = await catalogue.models_by_id(session, list({v.model_id for v in versions.values()}))
    return [
        target
        for target in targets
        if limit.allows(models[versions[target.model_version_id].model_id].name)
    ]


async def _store(
    connection: asyncpg.Connection,
    requests: Sequence[OutcomeRequest],
    targets: list[Target],
    caller: str | None,
) -> list[OutcomeRow]:
    """Append the outcomes that differ from the one counting at their turn; each request's
    answer is the outcome that counts after it."""
    before = await outcome_repository.latest_for(connection, [t.id for t in targets])
    current: dict[uuid.UUID, tuple[str | None, float | None, OutcomeRow | int]] = {
        prediction_id: (row.label, row.value, row) for prediction_id, row in before.items()
    }
    fresh: list[NewOutcome] = []
    answers: list[OutcomeRow | int] = []
    for item, target in zip(requests, targets, strict=True):
        known = current.get(target.id)
        if known is None or known[:2] != (item.label, item.value):
            new = NewOutcome(uuid7(), target.id, item.label, item.value, item.observed_at, caller)
            known = (item.label, item.value, len(fresh))
            current[target.id] = known
            fresh.append(new)
        answers.append(known[2])
    stored = await outcome_repository.append(connection, fresh) if fresh else []
    if stored:
        await _count(connection, before, stored, {target.id: target.label for target in targets})
    return [stored[answer] if isinstance(answer, int) else answer for answer in answers]


async def _count(
    connection: asyncpg.Connection,
    before: dict[uuid.UUID, OutcomeRow],
    stored: list[OutcomeRow],
    predicted: dict[uuid.UUID, str | None],
) -> None:
    """Make the last stored outcome of each prediction the one that counts, and move the
    roll-ups (labelled and correct counts, outcome pairs and errors) by the difference."""
    latest = {row.prediction_id: row for row in stored}
    await outcome_repository.make_latest(connection, list(latest.values()))
    await outcome_repository.count_in_rollups(
        connection,
        [
            (
                prediction_id,
                0 if prediction_id in before else 1,
                _correct(predicted[prediction_id], row)
                - _correct(predicted[prediction_id], before.get(prediction_id)),
            )
            for prediction_id, row in latest.items()
        ],
    )
    await outcome_repository.move_in_outcome_rollups(
        connection,
        [(row, 1) for row in latest.values()]
        + [(before[prediction_id], -1) for prediction_id in latest if prediction_id in before],
    )


def _correct(predicted: str | None, outcome: OutcomeRow | None) -> int:
    return int(outcome is not None and predicted is not None and predicted == outcome.label)


def _check_size(requests: Sequence[OutcomeRequest], max_batch_size: int) -> None:
    if len(requests) > max_batch_size:
        raise UserInputError.single(
            ("outcomes",),
            ErrorCode.BATCH_TOO_LARGE,
            f"A batch holds at most {max_batch_size} outcomes, got {len(requests)}.",
        )
    if not requests:
        raise UserInputError.single(
            ("outcomes",), ErrorCode.INVALID_OUTCOME, "Expected at least one outcome."
        )


def _shape(index: int, item: OutcomeRequest) -> list[FieldProblem]:
    """Problems visible without the database: how the prediction is named, label or value."""
    path = ("outcomes", str(index))
    problems = []
    if (item.prediction_id is None) == (item.request_id is None):
        problems.append(
            FieldProblem(
                path,
                ErrorCode.INVALID_OUTCOME,
                "Name the prediction by `predictionId`, or by `requestId` (and `batchIndex`, "
                "default 0); exactly one of the two.",
            )
        )
    if item.batch_index is not None and (item.request_id is None or item.batch_index < 0):
        problems.append(
            FieldProblem(
                (*path, "batchIndex"),
                ErrorCode.INVALID_OUTCOME,
                "`batchIndex` is a position (0 or more) in the request named by `requestId`.",
            )
        )
    if (item.label is None) == (item.value is None):
        problems.append(
            FieldProblem(
                path,
                ErrorCode.INVALID_OUTCOME,
                "Give exactly one of `label` (classification) or `value` (regression).",
            )
        )
    if item.value is not None and not math.isfinite(item.value):
        problems.append(
            FieldProblem(
                (*path, "value"),
                ErrorCode.INVALID_OUTCOME,
                f"An observed value must be a finite number, got {item.value!r}.",
            )
        )
    return problems


def _target(
    index: int, item: OutcomeRequest, targets: list[Target], problems: list[FieldProblem]
) -> Target | None:
    """The one prediction the request names; a PREDICTION_NOT_FOUND problem otherwise."""
    if (item.prediction_id is None) == (item.request_id is None):
        return None
    if item.prediction_id is not None:
        matches = [target for target in targets if target.id == item.prediction_id]
        field, named = "predictionId", "this id"
    else:
        matches = [t for t in targets if (t.request_id, t.batch_index) == item.reference]
        field, named = "requestId", f"request {item.request_id!r} at batch index "
        named += str(item.reference[1] if item.reference else 0)
    if len(matches) == 1:
        return matches[0]
    message = (
        f"No stored prediction has {named}."
        if not matches
        else f"{len(matches)} stored predictions match {named}; name one by `predictionId`."
    )
    problems.append(
        FieldProblem(("outcomes", str(index), field), ErrorCode.PREDICTION_NOT_FOUND, message)
    )
    return None


def _error_is_finite(index: int, item: OutcomeRequest, target: Target) -> list[FieldProblem]:
    """A value whose squared error against the prediction is a finite number: the roll-ups
    sum squared errors, and PostgreSQL refuses a float that overflows."""
    if item.value is None or target.value is None or not math.isfinite(item.value):
        return []  # a non-finite value is refused as such
    difference = target.value - item.value
    if math.isfinite(difference * difference):
        return []
    return [
        FieldProblem(
            ("outcomes", str(index), "value"),
            ErrorCode.INVALID_OUTCOME,
            f"Value {item.value!r} is too far from the prediction's {target.value!r}: the "
            "square of their difference is not a finite number.",
        )
    ]


def _fits(index: int, item: OutcomeRequest, version: Version) -> list[FieldProblem]:
    """An outcome of the version's kind: one of its labels, or a value for regression."""
    path = ("outcomes", str(index))
    if version.labels is None and item.label is not None:
        return [
            FieldProblem(
                (*path, "label"),
                ErrorCode.INVALID_OUTCOME,
                "This prediction is a regression; record the observed `value`, not a label.",
            )
        ]
    if version.labels is not None and item.value is not None:
        return [
            FieldProblem(
                (*path, "value"),
                ErrorCode.INVALID_OUTCOME,
                "This prediction is a classification; record the observed `label`, not a value.",
            )
        ]
    if version.labels is not None and item.label is not None and item.label not in version.labels:
        return [
            FieldProblem(
                (*path, "label"),
                ErrorCode.INVALID_OUTCOME,
                f"Label {item.label!r} is not one of the version's labels: "
                f"{', '.join(version.labels)}.",
            )
        ]
    return []
