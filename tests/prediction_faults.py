"""Faults injected where both executors call the prediction use case (`graph.mutations._create`):
a failure raised instead, or a stored prediction broken afterwards, so that errors and nulls
arise at every depth of a payload."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from modelql.graph.errors import ClientError, ErrorCode
from modelql.graph.types.nodes import PredictionType
from modelql.services.errors import ErrorCode as DomainCode
from modelql.services.errors import FieldProblem, UserInputError


def _user_error_without_message() -> UserInputError:
    error = UserInputError([])
    error.problems = [FieldProblem(("features",), DomainCode.INVALID_FEATURES, None)]  # type: ignore[arg-type]
    return error


FAILURES: dict[str, Callable[[], Exception]] = {
    "a client error": lambda: ClientError("Cannot load the model.", ErrorCode.MODEL_UNAVAILABLE),
    "a bug": lambda: RuntimeError("a bug"),
    "the database down": lambda: ConnectionRefusedError("database down"),
    "a user error without a message": _user_error_without_message,
}
BREAKAGES: dict[str, tuple[str, Any]] = {
    "no request id": ("request_id", None),
    "no latency": ("latency_ms", None),
    "a latency that is NaN": ("latency_ms", float("nan")),
    "no time": ("created_at", None),
    "a time that is text": ("created_at", "yesterday"),
    "no inputs": ("inputs", None),
    "no id": ("id", None),
    "a label that is a list": ("label", ["a"]),
    "an infinite confidence": ("confidence", float("inf")),
    "a value that is text": ("value", "high"),
    "an unknown routing reason": ("routed_by", "BOGUS"),
    "a class without its label": ("stored_probabilities", [{"label": None, "probability": 0.5}]),
    "a class without its probability": ("stored_probabilities", [{"label": "x"}]),
}
NULL_PREDICTION = "no prediction at all"

Create = Callable[[Any, Any], Awaitable[list[PredictionType]]]


@dataclass(frozen=True)
class Fault:
    call: int
    """Which call of the use case in a request it hits (root fields run one after another)."""
    failure: str | None = None
    """A key of FAILURES: raised instead of calling the use case."""
    breakages: tuple[str, ...] = ()
    """Keys of BREAKAGES, or NULL_PREDICTION: what becomes of prediction `index`."""
    index: int = 0


@st.composite
def faults(draw: st.DrawFn) -> Fault | None:
    """None in about half the draws; else a failure, or a prediction with a few things broken
    (several at a time: a broken field shows only when the document selects it)."""
    kind = draw(st.sampled_from(["none", "none", "breakage", "failure"]))
    call = draw(st.integers(0, 2))
    if kind == "failure":
        return Fault(call, failure=draw(st.sampled_from(sorted(FAILURES))))
    if kind == "breakage":
        names = st.sampled_from([*sorted(BREAKAGES), NULL_PREDICTION])
        breakages = draw(st.lists(names, min_size=1, max_size=4, unique=True))
        return Fault(call, breakages=tuple(breakages), index=draw(st.integers(0, 3)))
    return None


class FaultyCreate:
    """Stands in for `_create`: calls it, except that the `fault.call`-th call of each request
    (counted from `reset`) fails or has its answer broken."""

    def __init__(self, create: Create, fault: Fault | None) -> None:
        self._create = create
        self._fault = fault
        self._calls = 0

    def reset(self) -> None:
        self._calls = 0

    async def __call__(self, context: Any, request: Any) -> list[PredictionType]:
        fault, self._calls = self._fault, self._calls + 1
        if fault is None or fault.call != self._calls - 1:
            return await self._create(context, request)
        if fault.failure is not None:
            raise FAILURES[fault.failure]()
        stored: list[Any] = await self._create(context, request)
        if stored:
            index = fault.index % len(stored)
            for breakage in fault.breakages:
                if breakage == NULL_PREDICTION:
                    stored[index] = None
                    break
                attribute, value = BREAKAGES[breakage]
                setattr(stored[index], attribute, value)
        return stored
