"""What one request did, filled in by the graph layer and written as one log line per request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RequestLog:
    caller: str | None = None
    operation_name: str | None = None
    operation_type: str | None = None
    outcome: str = "ok"
    predictions_stored: int = 0
