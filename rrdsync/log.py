"""Logging as events an operator can act on: one JSON object per line.

One API everywhere: ``LOG = log.get("engine")``, then
``LOG.info("batch_sent", files=12, bytes=4096, duration_s=0.2)``. The first argument
is the event name (snake_case, listed with its fields in ``docs/events.md``); an
optional second argument is a sentence for humans. Fields an operator filters on keep
the same names everywhere: ``files``, ``bytes``, ``duration_s``, ``error``,
``destination``. Per-file detail goes to DEBUG only, never to INFO.

``time`` is RFC 3339 in UTC with milliseconds (``2026-12-02T02:33:00.062Z``), the
form Elasticsearch, Loki and Fluent Bit parse without a custom pattern, in both the
JSON and the text format. Records from other libraries (watchdog's warnings) get the
event name ``library_log`` so that every line still carries an ``event``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

LOGGER_NAME = "rrdsync"
LIBRARY_EVENT = "library_log"


def rfc3339(created: float) -> str:
    """``2026-12-02T02:33:00.062Z`` for a Unix time."""
    whole = int(created)
    millis = int((created - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class _EventDefault(logging.Filter):
    """Every record carries an ``event`` (library records included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "event", None):
            record.event = LIBRARY_EVENT
        return True


class _JsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339(record.created)


class _TextFormatter(logging.Formatter):
    """``time level event message key=value ...`` for humans (RRDSYNC_LOG_FORMAT=text)."""

    _skip = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "event",
                                                             "taskName"}

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339(record.created)

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in self._skip)
        event = getattr(record, "event", "")
        text = record.getMessage()
        parts = [base, event, text if text != event else "", extras]
        line = " ".join(p for p in parts if p)
        if record.exc_info:
            line += " " + self.formatException(record.exc_info).replace("\n", " | ")
        return line


def formatter(fmt: str = "json") -> logging.Formatter:
    """The formatter for ``RRDSYNC_LOG_FORMAT`` (also used by the entrypoint's helpers)."""
    if fmt == "json":
        return _JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    return _TextFormatter("%(asctime)s %(levelname)s")


def setup(level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None) -> None:
    """Configure the root logger once; library loggers (watchdog) inherit it."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(_EventDefault())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # watchdog is chatty at DEBUG; its warnings (e.g. queue overflow) still come through.
    logging.getLogger("watchdog").setLevel(max(logging.INFO, logging.getLevelName(level)))


class Log:
    """A named event logger. Methods take the event name first, then an optional
    human sentence, then structured fields (floats are rounded to milliseconds)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def log(self, level: int, event: str, message: str = "", *, exc_info: bool = False,
            **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            extra = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in fields.items()}
            extra["event"] = event
            self.logger.log(level, message or event, extra=extra, exc_info=exc_info)

    def debug(self, event: str, message: str = "", **fields: Any) -> None:
        self.log(logging.DEBUG, event, message, **fields)

    def info(self, event: str, message: str = "", **fields: Any) -> None:
        self.log(logging.INFO, event, message, **fields)

    def warning(self, event: str, message: str = "", **fields: Any) -> None:
        self.log(logging.WARNING, event, message, **fields)

    def error(self, event: str, message: str = "", **fields: Any) -> None:
        self.log(logging.ERROR, event, message, **fields)

    def exception(self, event: str, message: str = "", **fields: Any) -> None:
        """ERROR with the current exception's traceback (inside the JSON object)."""
        self.log(logging.ERROR, event, message, exc_info=True, **fields)


def get(name: str = "") -> Log:
    return Log(logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME))
