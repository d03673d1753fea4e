"""One log stream per container: other programs' lines become rrdsync log lines.

supervisord (the sidecar role), sshd (the receiver role) and the container's shell
entrypoint write plain text. So that every line a container writes is one JSON object (or,
with ``RRDSYNC_LOG_FORMAT=text``, one text line) with rrdsync's ``time``, ``level``,
``logger``, ``message`` and ``event``, their lines pass through here and are rendered by
rrdsync's own formatter (:func:`rrdsync.log.formatter`)::

    python -m rrdsync.logwrap [--format F] emit LEVEL EVENT MESSAGE [KEY=VALUE ...]
    python -m rrdsync.logwrap [--format F] filter supervisord|sshd|config-error

``filter`` copies stdin to stdout line by line: lines that already are log lines (the
programs supervisord runs write them) pass unchanged; the source's own lines are parsed
(level, program, pid, ...) and given an event name (``program_spawned``,
``ssh_login_accepted``, ...); anything else a program printed becomes a
``program_output`` line, and a Python traceback one ``program_traceback`` line holding
the whole traceback. ``config-error`` makes every plain line an ERROR ``config_error``
(the entrypoint's validation). The receiver runs sshd through :func:`run`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from . import log

Fields = dict[str, object]
# logger, level, event, message, extra fields
Line = tuple[str, int, str, str, Fields]

_TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")
_TRACEBACK = "Traceback (most recent call last):"


@functools.cache
def _formatter(fmt: str) -> logging.Formatter:
    return log.formatter("text" if fmt == "text" else "json")


def render(fmt: str, logger: str, level: int, event: str, message: str,
           fields: Fields | None = None) -> str:
    """One log line (without newline) in rrdsync's format, stamped now."""
    record = logging.LogRecord(logger, level, "", 0, message, None, None)
    record.event = event
    record.__dict__.update(fields or {})
    return _formatter(fmt).format(record)


def is_log_line(line: str, fmt: str) -> bool:
    """Whether a line already is a log line in this format (then it passes unchanged)."""
    if fmt == "text":
        return _TEXT_LINE.match(line) is not None
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _match(line: str, table: list[tuple[re.Pattern[str], str]]) -> tuple[str, Fields] | None:
    for pattern, event in table:
        m = pattern.search(line)
        if m:
            fields: Fields = {k: int(v) if v.isdigit() else v
                              for k, v in m.groupdict().items() if v is not None}
            return event, fields
    return None


# --- supervisord -----------------------------------------------------------------------

_SUPERVISORD_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (CRIT|ERRO|WARN|INFO|DEBG|TRAC|BLAT) (.*)")
_SUPERVISORD_LEVELS = {"CRIT": logging.CRITICAL, "ERRO": logging.ERROR,
                       "WARN": logging.WARNING, "INFO": logging.INFO}
_SUPERVISORD_EVENTS = [
    (re.compile(r"^spawned: '(?P<program>[^']+)' with pid (?P<pid>\d+)"), "program_spawned"),
    (re.compile(r"^success: (?P<program>\S+) entered RUNNING"), "program_running"),
    (re.compile(r"^exited: (?P<program>\S+) \((?P<status>.*)\)"), "program_exited"),
    (re.compile(r"^stopped: (?P<program>\S+) \((?P<status>.*)\)"), "program_stopped"),
    (re.compile(r"^gave up: (?P<program>\S+) entered FATAL"), "program_fatal"),
    (re.compile(r"^waiting for (?P<program>.+) to die"), "programs_stopping"),
    (re.compile(r"^spawnerr: (?P<error>.*)"), "program_spawn_error"),
    (re.compile(r"^supervisord started with pid (?P<pid>\d+)"), "supervisord_started"),
]
# The control socket sits in the private run dir (mode 0700), so it needs no password;
# supervisord's CRIT about that would page someone at every start.
_SUPERVISORD_HARMLESS = re.compile(r"running without any HTTP authentication checking")


def parse_supervisord(line: str) -> Line:
    m = _SUPERVISORD_LINE.fullmatch(line)
    if m is None:  # a program printed something that is not a log line
        return "supervisord.program", logging.WARNING, "program_output", line, {}
    level = _SUPERVISORD_LEVELS.get(m[1], logging.DEBUG)
    message = m[2]
    if _SUPERVISORD_HARMLESS.search(message):
        level = logging.INFO
    event, fields = _match(message, _SUPERVISORD_EVENTS) or ("supervisord_log", {})
    return "supervisord", level, event, message, fields


# --- sshd (the receiver role; sshd -e) -----------------------------------------------

_SSHD_EVENTS = [
    (re.compile(r"^Server listening on (?P<address>\S+) port (?P<port>\d+)"), "sshd_listening"),
    (re.compile(r"^Accepted publickey for (?P<user>\S+) from (?P<client>\S+)"),
     "ssh_login_accepted"),
    (re.compile(r"^(Failed publickey|Invalid user|Connection closed by (authenticating|invalid)"
                r" user|Disconnected from (authenticating|invalid) user)"), "ssh_login_failed"),
    (re.compile(r"^Received signal (?P<signal>\d+); terminating"), "sshd_stopping"),
]


def parse_sshd(line: str) -> Line:
    level = logging.INFO
    if line.startswith(("error: ", "fatal: ")):
        level = logging.ERROR
    event, fields = _match(line, _SSHD_EVENTS) or ("sshd_log", {})
    if event == "ssh_login_failed":
        level = logging.WARNING
    return "sshd", level, event, line, fields


def parse_config_error(line: str) -> Line:
    return "rrdsync.entrypoint", logging.ERROR, "config_error", line, {}


PARSERS: dict[str, Callable[[str], Line]] = {
    "supervisord": parse_supervisord, "sshd": parse_sshd, "config-error": parse_config_error}


def convert(lines: Iterable[str], parse: Callable[[str], Line], fmt: str) -> Iterator[str]:
    """Log lines for raw lines (without newlines); blank lines are dropped."""
    block: list[str] = []

    def traceback() -> str:
        logger = parse(block[0])[0]
        text = ("\n" if fmt != "text" else " | ").join(block)
        return render(fmt, logger, logging.ERROR, "program_traceback", text)

    for line in lines:
        if block:  # a traceback ends with its first line that is not indented
            block.append(line)
            if not line.startswith((" ", "\t")):
                yield traceback()
                block = []
        elif not line.strip():
            continue
        elif is_log_line(line, fmt):
            yield line
        elif line.startswith(_TRACEBACK):
            block = [line]
        else:
            logger, level, event, message, fields = parse(line)
            yield render(fmt, logger, level, event, message, fields)
    if block:
        yield traceback()


def _decoded(stream: IO[bytes]) -> Iterator[str]:
    for raw in stream:
        yield raw.decode("utf-8", "backslashreplace").rstrip("\r\n")


def pump(stream: IO[bytes], parse: Callable[[str], Line], fmt: str,
         out: IO[str] | None = None) -> None:
    """Copy ``stream`` to ``out`` (stdout) as log lines, each flushed at once."""
    out = out or sys.stdout
    for line in convert(_decoded(stream), parse, fmt):
        out.write(line + "\n")
        out.flush()


def run(argv: list[str], parse: Callable[[str], Line], fmt: str) -> int:
    """Run ``argv`` with its stdout and stderr turned into log lines on our stdout.

    TERM, INT and HUP are passed on. The exit status is the program's, except that a
    program stopped by a TERM or INT we passed on counts as a clean stop (0), as it did
    when it ran on its own."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    stopped: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP:
            stopped.append(signum)
        proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    assert proc.stdout is not None
    pump(proc.stdout, parse, fmt)
    rc = proc.wait()
    return 0 if stopped else rc


def _fields(pairs: list[str]) -> Fields:
    fields: Fields = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"logwrap: expected KEY=VALUE, got {pair!r}")
        fields[key] = int(value) if value.isdigit() else value
    return fields


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rrdsync.logwrap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", default="json", help="json (default) or text")
    sub = p.add_subparsers(dest="command", required=True)
    emit = sub.add_parser("emit", help="write one log line")
    emit.add_argument("--logger", default="rrdsync.entrypoint")
    emit.add_argument("level", type=str.upper,
                      choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    emit.add_argument("event")
    emit.add_argument("message")
    emit.add_argument("fields", nargs="*", metavar="KEY=VALUE")
    filt = sub.add_parser("filter", help="stdin to stdout as log lines")
    filt.add_argument("source", choices=sorted(PARSERS))
    args = p.parse_args(argv)

    if args.command == "emit":
        level = logging.getLevelName(args.level)
        print(render(args.format, args.logger, level, args.event, args.message,
                     _fields(args.fields)), flush=True)
        return 0
    # A filter lives as long as its writers: a stop signal is for them, and we end at EOF
    # once they are gone, with every line they wrote.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    pump(sys.stdin.buffer, PARSERS[args.source], args.format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
