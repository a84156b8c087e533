"""GraphQL errors meant for the client, and masking of everything else."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

logger = logging.getLogger("modelql.graph")

UNEXPECTED_ERROR_MESSAGE = "Unexpected error."


class ErrorCode(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
    PAGE_SIZE_EXCEEDED = "PAGE_SIZE_EXCEEDED"
    TIMEOUT = "TIMEOUT"


class ClientError(Exception):
    """An error the client caused or must know about; its message and code reach the client."""

    def __init__(self, message: str, code: ErrorCode, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": str(code), **details}


def bad_input(message: str, argument: str) -> ClientError:
    return ClientError(message, ErrorCode.BAD_USER_INPUT, argument=argument)


def is_client_facing(error: GraphQLError) -> bool:
    """Parse and validation errors and ClientErrors are shown; anything else is masked."""
    original = error.original_error
    return original is None or isinstance(original, (ClientError, GraphQLError))


class MaskUnexpectedErrors(SchemaExtension):
    """Replaces unexpected errors by "Unexpected error." with the request id; logs them whole."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", None)
        result.errors = [self._mask(error, request_id) for error in result.errors]

    @staticmethod
    def _mask(error: GraphQLError, request_id: str | None) -> GraphQLError:
        if is_client_facing(error):
            if "code" not in error.extensions:
                error.extensions["code"] = (
                    "GRAPHQL_PARSE_FAILED"
                    if error.message.startswith("Syntax Error")
                    else "GRAPHQL_VALIDATION_FAILED"
                )
            return error
        logger.error(
            "unexpected error in %s (request %s)",
            ".".join(map(str, error.path or [])) or "operation",
            request_id,
            exc_info=error.original_error,
        )
        return GraphQLError(
            UNEXPECTED_ERROR_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": str(ErrorCode.INTERNAL_SERVER_ERROR), "requestId": request_id},
        )
