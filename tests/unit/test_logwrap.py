"""rrdsync.logwrap: supervisord's, sshd's and the entrypoint's lines become rrdsync log
lines, and lines that already are log lines pass unchanged."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time

from rrdsync import logwrap
from tests.fixtures.containers import not_log_lines

SUP = "2026-12-02 02:33:00,062"


def _convert(lines: list[str], source: str = "supervisord", fmt: str = "json") -> list[str]:
    return list(logwrap.convert(lines, logwrap.PARSERS[source], fmt))


def _objects(lines: list[str], source: str = "supervisord") -> list[dict]:
    out = _convert(lines, source)
    assert not_log_lines("\n".join(out))[1] == []
    return [json.loads(line) for line in out]


def test_render_is_an_rrdsync_log_line():
    line = logwrap.render("json", "sshd", logging.WARNING, "ssh_login_failed", "no", {"port": 1})
    obj = json.loads(line)
    assert obj["level"] == "WARNING" and obj["logger"] == "sshd"
    assert obj["event"] == "ssh_login_failed" and obj["message"] == "no" and obj["port"] == 1
    assert not_log_lines(line) == (1, [])
    text = logwrap.render("text", "sshd", logging.INFO, "sshd_log", "hello")
    assert logwrap.is_log_line(text, "text") and text.endswith("INFO sshd_log hello")


def test_supervisord_lines_get_level_event_and_program():
    objs = _objects([
        f"{SUP} INFO spawned: 'worker' with pid 12",
        f"{SUP} INFO success: status entered RUNNING state, process has stayed up for > than 2 "
        "seconds (startsecs)",
        f"{SUP} WARN exited: worker (exit status 1; not expected)",
        f"{SUP} INFO gave up: worker entered FATAL state, too many start retries too quickly",
        f"{SUP} INFO waiting for worker, status to die",
        f"{SUP} CRIT Server 'unix_http_server' running without any HTTP authentication "
        "checking",
        f"{SUP} CRIT Supervisor is running as root.",
    ])
    assert [(o["event"], o["level"]) for o in objs] == [
        ("program_spawned", "INFO"), ("program_running", "INFO"),
        ("program_exited", "WARNING"), ("program_fatal", "INFO"),
        ("programs_stopping", "INFO"), ("supervisord_log", "INFO"),
        ("supervisord_log", "CRITICAL")]
    assert objs[0]["program"] == "worker" and objs[0]["pid"] == 12
    assert objs[2]["status"] == "exit status 1; not expected"
    assert {o["logger"] for o in objs} == {"supervisord"}


def test_log_lines_pass_unchanged_and_other_output_is_wrapped():
    mine = '{"time": "2026-12-02T02:33:00.062Z", "level": "INFO", "event": "batch_sent"}'
    out = _convert([mine, "", "   ", "a stray print"])
    assert out[0] == mine and len(out) == 2
    stray = json.loads(out[1])
    assert stray["event"] == "program_output" and stray["message"] == "a stray print"
    assert stray["logger"] == "supervisord.program" and stray["level"] == "WARNING"
    # a JSON value that is not an object is not a log line
    assert json.loads(_convert(["[1, 2]"])[0])["event"] == "program_output"


def test_a_traceback_is_one_line():
    objs = _objects([
        "Traceback (most recent call last):",
        '  File "/opt/rrdsync/lib/server.py", line 1, in handle',
        "    self.wfile.write(body)",
        "ConnectionResetError: [Errno 104] Connection reset by peer",
        f"{SUP} INFO spawned: 'status' with pid 13",
        "Traceback (most recent call last):",  # cut short: still one line at the end
    ])
    assert [o["event"] for o in objs] == ["program_traceback", "program_spawned",
                                          "program_traceback"]
    assert objs[0]["level"] == "ERROR"
    assert objs[0]["message"].splitlines()[-1].startswith("ConnectionResetError")
    assert len(objs[0]["message"].splitlines()) == 4
    text = _convert(["Traceback (most recent call last):", "  x", "E: y"], fmt="text")
    assert len(text) == 1 and "\n" not in text[0] and " | E: y" in text[0]


def test_sshd_lines():
    objs = _objects([
        "Server listening on 0.0.0.0 port 2222.",
        "Accepted publickey for rrdsync from 10.89.0.3 port 40022 ssh2: ED25519 SHA256:abc",
        "Invalid user nobody from 10.89.0.3 port 40030",
        "Connection closed by invalid user nobody 10.89.0.3 port 40030 [preauth]",
        "error: kex_exchange_identification: Connection closed by remote host",
        "Received signal 15; terminating.",
        "Starting session: forced-command (key-option) '/usr/bin/rrsync -wo /data'",
    ], source="sshd")
    assert [(o["event"], o["level"]) for o in objs] == [
        ("sshd_listening", "INFO"), ("ssh_login_accepted", "INFO"),
        ("ssh_login_failed", "WARNING"), ("ssh_login_failed", "WARNING"),
        ("sshd_log", "ERROR"), ("sshd_stopping", "INFO"), ("sshd_log", "INFO")]
    assert objs[0]["port"] == 2222 and objs[1]["user"] == "rrdsync"
    assert objs[1]["client"] == "10.89.0.3"


def test_config_errors():
    (obj,) = _objects(["rrdsync: configuration error: RRDSYNC_SETTLE='soon': a duration"],
                      source="config-error")
    assert obj["event"] == "config_error" and obj["level"] == "ERROR"
    assert "RRDSYNC_SETTLE='soon'" in obj["message"]


def _module(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rrdsync.logwrap", *args], input=stdin,
                          capture_output=True, text=True, timeout=30)


def test_command_line_emit_and_filter():
    proc = _module("emit", "info", "container_start", "starting", "role=sidecar", "uid=10001")
    obj = json.loads(proc.stdout)
    assert (obj["event"], obj["level"], obj["logger"]) == ("container_start", "INFO",
                                                           "rrdsync.entrypoint")
    assert obj["role"] == "sidecar" and obj["uid"] == 10001 and proc.stderr == ""
    proc = _module("--format", "text", "filter", "sshd",
                   stdin="Server listening on :: port 2222.\nbad \xff byte\n")
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all(logwrap.is_log_line(ln, "text") for ln in lines)


def test_run_passes_lines_and_signals_and_exit_status():
    script = ("from rrdsync import logwrap; import sys; sys.exit(logwrap.run(sys.argv[1:], "
              "logwrap.parse_sshd, 'json'))")
    done = subprocess.run([sys.executable, "-c", script, "sh", "-c",
                           "echo 'Server listening on 0.0.0.0 port 1.'; echo oops >&2; exit 3"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert [json.loads(ln)["event"] for ln in done.stdout.splitlines()] == [
        "sshd_listening", "sshd_log"]

    # TERM is passed on; the program's last lines still come out; a stop is exit 0
    proc = subprocess.Popen([sys.executable, "-c", script, "sh", "-c",
                             "trap 'echo \"Received signal 15; terminating.\"; exit 255' TERM;"
                             " echo up; while :; do sleep 0.05; done"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "up" in proc.stdout.readline()
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=10) == 0
    assert json.loads(rest.splitlines()[-1])["event"] == "sshd_stopping"
