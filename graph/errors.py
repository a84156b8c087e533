"""GraphQL errors meant for the client, and masking of everything else."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from modelql.services.errors import is_connection_failure, is_rejected_value

logger = logging.getLogger("modelql.graph")

GRAPHQL_RESPONSE = "application/graphql-response+json"
UNEXPECTED_ERROR_MESSAGE = "Unexpected error."
DATABASE_UNAVAILABLE_MESSAGE = (
    "The database is unreachable right now; nothing was stored by this request. Retry shortly."
)


class ErrorCode(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
    PAGE_SIZE_EXCEEDED = "PAGE_SIZE_EXCEEDED"
    TIMEOUT = "TIMEOUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
    TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
    TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
    QUERY_TOO_LONG = "QUERY_TOO_LONG"
    RATE_LIMITED = "RATE_LIMITED"
    SUBSCRIBER_TOO_SLOW = "SUBSCRIBER_TOO_SLOW"
    SUBSCRIPTION_LIMIT = "SUBSCRIPTION_LIMIT"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
    PERSISTED_QUERY_INVALID = "PERSISTED_QUERY_INVALID"
    PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
    PERSISTED_QUERY_NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"


# Messages of Strawberry's and graphql-core's limit rules, which carry no code of their own.
_LIMIT_MESSAGES = (
    ("exceeds maximum operation depth", ErrorCode.QUERY_TOO_DEEP),
    ("aliases found. Allowed:", ErrorCode.TOO_MANY_ALIASES),
    ("tokens. Parsing aborted", ErrorCode.TOO_MANY_TOKENS),
)


# graphql-core suggests argument names and enum values even with field suggestions off.
_SUGGESTION = re.compile(r" Did you mean [^?]*\?")


class ClientError(Exception):
    """An error the client caused or must know about; its message and code reach the client."""

    def __init__(self, message: str, code: ErrorCode, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": str(code), **details}


class AuthenticationError(Exception):
    """No usable API key; answered with HTTP 401 before any GraphQL runs."""


class RateLimitedError(Exception):
    """The caller's key spent its budget; answered with HTTP 429 before any GraphQL runs."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"This API key is over its rate limit; retry in {retry_after_s} s. "
            "Nothing was executed or stored."
        )
        self.retry_after_s = retry_after_s


class DatabaseUnavailableError(Exception):
    """The database cannot be reached before any GraphQL runs; answered with HTTP 503."""


def bad_input(message: str, argument: str) -> ClientError:
    return ClientError(message, ErrorCode.BAD_USER_INPUT, argument=argument)


def _request_error_code(error: GraphQLError) -> ErrorCode:
    for fragment, code in _LIMIT_MESSAGES:
        if fragment in error.message:
            return code
    if error.message.startswith("Syntax Error"):
        return ErrorCode.GRAPHQL_PARSE_FAILED
    if error.message.startswith("Variable '$"):
        return ErrorCode.BAD_USER_INPUT
    return ErrorCode.GRAPHQL_VALIDATION_FAILED


def _is_request_error(error: GraphQLError) -> bool:
    """Parse, validation and variable errors: raised before any field resolved (a variable a
    custom scalar refuses carries that scalar's ValueError)."""
    if error.path is not None:
        return False
    original = error.original_error
    return (
        original is None
        or type(original) is GraphQLError
        or error.message.startswith("Variable '$")
    )


def mark_request_errors(errors: list[GraphQLError], context: Any) -> None:
    """Give parse and validation errors (and limit refusals) their code; with the
    application/graphql-response+json media type such a request error is an HTTP 400."""
    request_errors = [error for error in errors if _is_request_error(error)]
    for error in request_errors:
        if error.extensions is None:
            error.extensions = {}
        error.extensions.setdefault("code", str(_request_error_code(error)))
        error.message = _SUGGESTION.sub("", error.message)
    log = getattr(context, "request_log", None)
    if log is not None:
        log.outcome = "error"
    response = getattr(context, "response", None)
    if request_errors and response is not None and response.media_type == GRAPHQL_RESPONSE:
        response.status_code = 400


class MaskUnexpectedErrors(SchemaExtension):
    """Replaces unexpected errors by "Unexpected error." with the request id (the traceback
    goes to the log); answers 503 when the database is down."""

    def on_operation(self) -> Iterator[None]:
        yield
        execution = self.execution_context
        parsed = execution.graphql_document is not None  # else it has no operation type
        operation_type = execution.operation_type if parsed else None
        record_operation(
            execution.context,
            execution.operation_name,
            operation_type.value if operation_type else None,
        )
        if execution.result is not None and execution.result.errors:
            execution.result.errors = mask_errors(execution.result.errors, execution.context)


def record_operation(context: Any, name: str | None, operation_type: str | None) -> None:
    """Name the operation in the request's log line."""
    log = getattr(context, "request_log", None)
    if log is not None:
        log.operation_name = name
        log.operation_type = operation_type


def mask_errors(errors: list[GraphQLError], context: Any) -> list[GraphQLError]:
    """Client errors as they are; unexpected ones masked (and logged); 503 when the database
    is down."""
    masked = [_classify(error, getattr(context, "request_id", None)) for error in errors]
    codes = {(error.extensions or {}).get("code") for error in masked}
    response = getattr(context, "response", None)
    if str(ErrorCode.SERVICE_UNAVAILABLE) in codes and response is not None:
        response.status_code = 503
    return masked


def _classify(error: GraphQLError, request_id: str | None) -> GraphQLError:
    original = error.original_error
    if original is None or isinstance(original, ClientError | GraphQLError):
        # e.g. a value the output type cannot represent: the server's fault, not the client's
        if not (error.extensions or {}).get("code"):
            error.extensions = {
                **(error.extensions or {}),
                "code": str(ErrorCode.INTERNAL_SERVER_ERROR),
            }
        return error
    if is_rejected_value(original):
        return GraphQLError(
            "A value in this request cannot be stored or compared (for example a NUL "
            "character in a string, or a date or number out of range).",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": str(ErrorCode.BAD_USER_INPUT), "requestId": request_id},
        )
    if is_connection_failure(original):
        logger.warning("database unreachable during request %s: %r", request_id, original)
        return GraphQLError(
            DATABASE_UNAVAILABLE_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": str(ErrorCode.SERVICE_UNAVAILABLE), "requestId": request_id},
        )
    logger.error(
        "unexpected error in %s (request %s)",
        ".".join(map(str, error.path or [])) or "operation",
        request_id,
        exc_info=original,
    )
    return GraphQLError(
        UNEXPECTED_ERROR_MESSAGE,
        nodes=error.nodes,
        path=error.path,
        extensions={"code": str(ErrorCode.INTERNAL_SERVER_ERROR), "requestId": request_id},
    )
