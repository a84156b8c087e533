"""Scalars as ModelQL reads them, where Strawberry's own would let a client's value through to
a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dateutil.parser
import strawberry
from strawberry.exceptions import StrawberryInputCoercionError


def parse_datetime(value: object) -> datetime:
    """Strawberry's DateTime parsing (ISO 8601), refusing an instant outside the years 1 to
    9999 in UTC (such as 9999-12-31T23:00:00-05:00): nothing can compare or store it. A
    coercion error is the client's (BAD_USER_INPUT, or a validation error for a literal)."""
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(f"DateTime expects an ISO 8601 string, got {value!r}.")
    try:
        moment = dateutil.parser.isoparse(value)
    except (ValueError, OverflowError) as error:
        raise StrawberryInputCoercionError(
            f"Value cannot represent a DateTime: {value!r}. {error}"
        ) from None
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise StrawberryInputCoercionError(
                f"{value!r} is outside the years 1 to 9999 in UTC."
            ) from None
    return moment


SCALARS: dict[object, Any] = {
    datetime: strawberry.scalar(
        name="DateTime",
        description="Date with time (isoformat)",
        serialize=datetime.isoformat,
        parse_value=parse_datetime,
    )
}
"""The schema's `scalar_map`: the same names and descriptions as Strawberry's (the SDL does
not change)."""
