"""Logging as events an operator can act on: one JSON object per line.

Every record carries an ``event`` name and, where they apply, the fields
``files``, ``bytes``, ``duration_s`` and ``error``. Per-file detail goes to DEBUG
only, never to INFO.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

LOGGER_NAME = "rrdsync"


class _TextFormatter(logging.Formatter):
    """``time level event key=value ...`` for humans (RRDSYNC_LOG_FORMAT=text)."""

    _skip = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "event"}

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in self._skip)
        event = getattr(record, "event", "")
        parts = [base, event, record.getMessage() if record.getMessage() != event else "", extras]
        return " ".join(p for p in parts if p)


def setup(level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None) -> None:
    """Configure the root logger once; library loggers (watchdog) inherit it."""
    handler = logging.StreamHandler(stream or sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        ))
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # watchdog is chatty at DEBUG; its warnings (e.g. queue overflow) still come through.
    logging.getLogger("watchdog").setLevel(max(logging.INFO, logging.getLevelName(level)))


def get(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def event(logger: logging.Logger, level: int, name: str, message: str = "", **fields: Any) -> None:
    """Log one named event with structured fields (``files``, ``bytes``, ``duration_s``...)."""
    if logger.isEnabledFor(level):
        fields = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in fields.items()}
        logger.log(level, message or name, extra={"event": name, **fields})
