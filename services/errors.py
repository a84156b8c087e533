"""Domain errors raised by services; the graph layer maps them to GraphQL answers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from modelql.persistence import database

__all__ = [
    "CatalogueInputError",
    "DomainError",
    "ErrorCode",
    "FieldProblem",
    "ModelUnavailableError",
    "RegistrationError",
    "StorageUnavailableError",
    "UserInputError",
    "is_connection_failure",
    "is_rejected_value",
]


class ErrorCode(StrEnum):
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    VERSION_NOT_FOUND = "VERSION_NOT_FOUND"
    INVALID_FEATURES = "INVALID_FEATURES"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    MODEL_OUTPUT_INVALID = "MODEL_OUTPUT_INVALID"
    INVALID_ALIAS = "INVALID_ALIAS"
    INVALID_TRAFFIC_SPLIT = "INVALID_TRAFFIC_SPLIT"
    PREDICTION_NOT_FOUND = "PREDICTION_NOT_FOUND"
    INVALID_OUTCOME = "INVALID_OUTCOME"
    UNSUPPORTED_SIGNAL = "UNSUPPORTED_SIGNAL"
    INVALID_THRESHOLD = "INVALID_THRESHOLD"
    INVALID_DURATION = "INVALID_DURATION"
    INVALID_WEBHOOK = "INVALID_WEBHOOK"
    ALERT_RULE_NOT_FOUND = "ALERT_RULE_NOT_FOUND"
    INVALID_SOURCE = "INVALID_SOURCE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    MISSING_COLUMN = "MISSING_COLUMN"
    PATH_NOT_ALLOWED = "PATH_NOT_ALLOWED"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    INVALID_SHADOW = "INVALID_SHADOW"
    VERSION_OF_ANOTHER_MODEL = "VERSION_OF_ANOTHER_MODEL"
    INCOMPATIBLE_SIGNATURE = "INCOMPATIBLE_SIGNATURE"


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one input path, e.g. ("instances", "3", "petal_length")."""

    path: tuple[str, ...]
    code: ErrorCode
    message: str


class DomainError(Exception):
    """Base of every error a service raises on purpose."""


class UserInputError(DomainError):
    """The caller's input cannot be served; carries every problem found, not only the first."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems

    @classmethod
    def single(cls, path: tuple[str, ...], code: ErrorCode, message: str) -> UserInputError:
        return cls([FieldProblem(path, code, message)])


class RegistrationError(DomainError):
    """A registration request that cannot be honoured (bad files, existing version, ...)."""


class CatalogueInputError(UserInputError, RegistrationError):
    """A catalogue change refused for named inputs: a registration error to the command line,
    user errors (with their paths) to the API."""


class StorageUnavailableError(DomainError):
    """The database could not be reached while storing; nothing of the request was stored."""


class ModelUnavailableError(DomainError):
    """A version's artifact cannot be used (missing, outside the artifact root, or tampered)."""


def is_connection_failure(error: BaseException) -> bool:
    """Whether `error` (or its cause) means the database was unreachable or its pool full: the
    request failed for the service, not for its input."""
    return database.is_connection_failure(error)


def is_rejected_value(error: BaseException) -> bool:
    """Whether PostgreSQL refused a value the client sent (a data exception): bad input."""
    return database.is_rejected_value(error)
