"""Logging set-up: short coloured lines in a terminal, JSON lines (python-json-logger) elsewhere
or when asked; API keys are redacted from every line."""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import datetime
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

# mql_<12 hex lookup prefix>_<secret>: the prefix may be shown, the secret never.
_API_KEY = re.compile(r"(mql_[0-9a-f]{12}_)[A-Za-z0-9_\-]+")
# Third-party start-up chatter a person at a terminal does not need (warnings still show).
_QUIET_IN_TERMINAL = ("alembic", "uvicorn.error", "modelql.embedded_postgres")
_QUIET_ALWAYS = ("httpx", "httpcore", "asyncio")
_COLOURS = {"green": "32", "yellow": "33", "red": "31", "dim": "2", "bold": "1"}


def redact(text: str) -> str:
    """The text with the secret part of any API key replaced."""
    return _API_KEY.sub(r"\1[redacted]", text)


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message and the record's `extra=` fields."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class ConsoleFormatter(logging.Formatter):
    """`12:01:02 200 POST /graphql mutation Score ok 12.3 ms 2 stored`, coloured when allowed."""

    def __init__(self, *, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def _paint(self, text: str, colour: str) -> str:
        return f"\033[{_COLOURS[colour]}m{text}\033[0m" if self.colour else text

    def format(self, record: logging.LogRecord) -> str:
        clock = self._paint(datetime.fromtimestamp(record.created).strftime("%H:%M:%S"), "dim")
        body = self._request(record) if record.name == "modelql.access" else self._event(record)
        return redact(f"{clock} {body}")

    def _request(self, record: logging.LogRecord) -> str:
        status = getattr(record, "status", 0)
        colour = "green" if status < 400 else "yellow" if status < 500 else "red"
        parts = [self._paint(str(status), colour), record.getMessage().rsplit(" ", 1)[0]]
        operation = getattr(record, "operation_type", None)
        if operation:
            parts.append(f"{operation} {getattr(record, 'operation_name', None) or '-'}")
        parts.append(getattr(record, "outcome", ""))
        parts.append(f"{getattr(record, 'duration_ms', 0.0):.1f} ms")
        stored = getattr(record, "predictions_stored", 0)
        if stored:
            parts.append(f"{stored} stored")
        caller = getattr(record, "caller", None)
        if caller:
            parts.append(self._paint(f"by {caller}", "dim"))
        return " ".join(parts)

    def _event(self, record: logging.LogRecord) -> str:
        level = record.levelname
        if record.levelno >= logging.WARNING:
            level = self._paint(level, "red" if record.levelno >= logging.ERROR else "yellow")
        source = "" if record.name.startswith("modelql") else f"{record.name}: "
        line = f"{level} {source}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str, *, json_lines: bool | None, stream: TextIO | None = None) -> None:
    """Log to `stream` (stderr): JSON lines when asked, or by default when it is not a terminal;
    else one readable line per event, coloured unless NO_COLOR is set."""
    stream = stream or sys.stderr
    terminal = stream.isatty()
    use_json = not terminal if json_lines is None else json_lines
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        RedactingJsonFormatter()
        if use_json
        else ConsoleFormatter(colour=terminal and "NO_COLOR" not in os.environ)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True
    quiet = _QUIET_ALWAYS + (() if use_json else _QUIET_IN_TERMINAL)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
