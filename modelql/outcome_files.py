"""Reading the CSV files `modelql outcomes import` accepts."""

from __future__ import annotations

import csv
import uuid
from datetime import datetime
from pathlib import Path

from modelql.graph.errors import ClientError
from modelql.graph.types.node import from_global_id
from modelql.services.outcomes import NO_PREDICTION, OutcomeRequest

COLUMNS = ("prediction_id", "request_id", "batch_index", "label", "value", "observed_at")


class OutcomeFileError(ValueError):
    """A file that cannot be read as outcomes (its line says where)."""


def read_outcomes(path: Path) -> list[OutcomeRequest]:
    """One outcome per row: `prediction_id` (a global id or the plain UUID) or `request_id`
    (and `batch_index`), `label` or `value`, optional `observed_at` (ISO 8601)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        try:
            unknown = sorted(set(reader.fieldnames or ()) - set(COLUMNS))
            if unknown or not reader.fieldnames:
                raise OutcomeFileError(
                    f"{path}: columns must be among {', '.join(COLUMNS)}; unknown: {unknown}"
                )
            return [_outcome(path, reader.line_num, row) for row in reader]
        except UnicodeDecodeError as error:
            raise OutcomeFileError(
                f"{path}: not UTF-8 text (near line {reader.line_num + 1}); save it as UTF-8"
            ) from error
        except csv.Error as error:
            raise OutcomeFileError(f"{path}, line {reader.line_num}: {error}") from error


def _outcome(path: Path, line: int, row: dict[str, str]) -> OutcomeRequest:
    cells = {name: (row.get(name) or "").strip() or None for name in COLUMNS}
    try:
        return OutcomeRequest(
            prediction_id=_prediction_id(cells["prediction_id"]),
            request_id=cells["request_id"],
            batch_index=int(cells["batch_index"]) if cells["batch_index"] is not None else None,
            label=cells["label"],
            value=float(cells["value"]) if cells["value"] is not None else None,
            observed_at=datetime.fromisoformat(cells["observed_at"])
            if cells["observed_at"] is not None
            else None,
        )
    except ValueError as error:
        raise OutcomeFileError(f"{path}, line {line}: {error}") from error


def _prediction_id(text: str | None) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    try:
        type_name, key = from_global_id(text)
    except ClientError:
        return NO_PREDICTION
    return key if type_name == "Prediction" else NO_PREDICTION
