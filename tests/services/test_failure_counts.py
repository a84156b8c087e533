"""Which failed predictions count towards ERROR_RATE: every failure once the version is known,
but an unreachable store and a reused idempotency key; a count that cannot be written is
logged and leaves the request's own error alone."""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import pytest

from modelql.services.errors import (
    ErrorCode,
    FieldProblem,
    ModelUnavailableError,
    StorageUnavailableError,
    UserInputError,
)
from modelql.services.failure_counts import count_failure, counts_as_failure


def _problem(code: ErrorCode) -> FieldProblem:
    return FieldProblem(("features",), code, "bad")


@pytest.mark.parametrize(
    ("error", "counted"),
    [
        (UserInputError([_problem(ErrorCode.INVALID_FEATURES)]), True),
        (UserInputError([_problem(ErrorCode.MODEL_OUTPUT_INVALID)]), True),
        (ModelUnavailableError("tampered"), True),
        (RuntimeError("a bug while scoring"), True),
        (UserInputError([_problem(ErrorCode.IDEMPOTENCY_CONFLICT)]), False),
        (StorageUnavailableError(), False),
    ],
)
def test_what_counts_as_a_failed_prediction(error: Exception, counted: bool):
    assert counts_as_failure(error) is counted


async def test_a_count_that_cannot_be_written_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
):
    def unreachable() -> None:
        raise ConnectionRefusedError("database down")

    version = SimpleNamespace(id=uuid.uuid4(), model_id=uuid.uuid4())
    with caplog.at_level(logging.ERROR, logger="modelql"):
        await count_failure(unreachable, version, 3)  # type: ignore[arg-type]

    (record,) = caplog.records
    assert record.getMessage() == f"counting a failed prediction of {version.id} failed"
    assert isinstance(record.exc_info[1], ConnectionRefusedError)
