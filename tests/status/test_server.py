"""The HTTP side of ``rrdsync serve``: routing, concurrency, formats, logs and signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from rrdsync import __version__
from tests.fixtures.sshd import free_port
from tests.fixtures.status import StatusClient

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_paths_are_404_and_query_strings_are_ignored(client: StatusClient, stub):
    stub()
    code, body = client.get("/nope")
    assert code == 404 and body["endpoints"] == ["/healthz", "/readyz", "/metrics"]
    assert client.code("/") == 404
    assert client.code("/healthz?verbose=1&x=%20") == 200
    assert client.code("/healthz/") == 200
    assert client.get("/metrics?name[]=rrdsync_live")[0] == 200
    assert client.code("/readyz?") == 503


def test_head_and_other_methods(client: StatusClient):
    with socket.create_connection(("127.0.0.1", client.port), timeout=5) as s:
        s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = s.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 503") and reply.endswith(b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", client.port), timeout=5) as s:
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                  b"Connection: close\r\n\r\n")
        reply = s.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD" in reply


def test_a_stalled_client_does_not_block_other_requests(client: StatusClient):
    stalled = [socket.create_connection(("127.0.0.1", client.port)) for _ in range(3)]
    for s in stalled:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")  # never finishes its headers
    try:
        start = time.monotonic()
        for _ in range(5):
            assert client.code("/healthz") == 503
        assert time.monotonic() - start < 2
    finally:
        for s in stalled:
            s.close()


def test_metrics_parse_with_prometheus_clients_parser(client: StatusClient, stub):
    w = stub()
    w.send("batch ok 0 2 2048")
    w.send("overflow")
    w.send("ssh")
    code, text, headers = client.raw("/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert families["rrdsync_files_sent"].type == "counter"
    assert families["rrdsync_replication_lag_seconds"].type == "histogram"
    assert families["rrdsync_pending_files"].type == "gauge"
    m = client.metrics()
    d = 'destination="dest:/srv/rrd"'
    assert m["rrdsync_watch_overflows_total"] == 1
    assert m[f"rrdsync_ssh_reconnects_total{{{d}}}"] == 1
    assert m[f'rrdsync_replication_lag_seconds_bucket{{{d},le="0.5"}}'] == 2
    assert m[f'rrdsync_failing_files{{{d},side="source"}}'] == 0
    assert m[f"rrdsync_initial_sync_files_expected{{{d}}}"] == 0
    assert m[f'rrdsync_build_info{{version="{__version__}"}}'] == 1
    gauges_named_total = [f.name for f in families.values()
                          if f.type == "gauge" and f.name.endswith("_total")]
    assert gauges_named_total == []
    # OpenMetrics for scrapers that ask for it
    req_code, om, om_headers = _get_with_accept(client, "application/openmetrics-text")
    assert req_code == 200 and "openmetrics" in om_headers["Content-Type"]
    assert om.rstrip().endswith("# EOF")


def _get_with_accept(client: StatusClient, accept: str):
    import urllib.request

    req = urllib.request.Request(client.base + "/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read().decode(), dict(r.headers)


def test_rrdsync_serve_logs_json_quietly_and_stops_on_sigterm(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    env.update(RRDSYNC_RUN_DIR=str(tmp_path / "run"), RRDSYNC_HTTP_ADDR=f"127.0.0.1:{port}",
               PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "rrdsync", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        client = StatusClient(port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.code("/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        for _ in range(3):
            client.code("/healthz")
            client.code("/readyz")
            client.code("/metrics")
        client.code("/favicon.ico")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    records = [json.loads(line) for line in out.decode().splitlines()]
    events = [r.get("event") for r in records]
    assert "serve_listening" in events and "serve_stopped" in events
    assert all(e and "." not in e for e in events), events
    requests = [r for r in records if r.get("event") == "http_request"]
    assert [r["path"] for r in requests] == ["/favicon.ico"]  # probes/scrapes: DEBUG only
    # the first failing probe is logged once, not once per probe
    assert events.count("healthz_failing") == 1
    assert err == b""


def test_rrdsync_serve_exits_1_when_the_port_is_taken(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
        env.update(RRDSYNC_RUN_DIR=str(tmp_path / "run"),
                   RRDSYNC_HTTP_ADDR=f"127.0.0.1:{port}", PYTHONPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-m", "rrdsync", "serve"], env=env,
                              capture_output=True, timeout=20, cwd=ROOT)
    assert proc.returncode == 1
    assert any(json.loads(line).get("event") == "serve_listen_failed"
               for line in proc.stdout.decode().splitlines())


def test_a_damaged_metrics_file_does_not_blank_the_page(client: StatusClient, stub, run_dir):
    w = stub()
    w.send("batch ok 0 2 20")
    (run_dir / "metrics" / "counter_garbage.db").write_bytes(b"\xff" * 100)
    (run_dir / "metrics" / "gauge_max_torn.db").write_bytes(b"\x10\x00\x00\x00")
    (run_dir / "metrics" / "README").write_text("not a metrics file")
    m = client.metrics()
    assert m['rrdsync_files_sent_total{destination="dest:/srv/rrd"}'] == 2


def _serve(tmp_path: Path, level: str = "DEBUG") -> tuple[subprocess.Popen, StatusClient]:
    """``rrdsync serve`` as a process; its stdout and stderr (what an operator sees) go to
    files, so a chatty DEBUG log never fills a pipe and blocks the server."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    env.update(RRDSYNC_RUN_DIR=str(tmp_path / "run"), RRDSYNC_HTTP_ADDR=f"127.0.0.1:{port}",
               RRDSYNC_LOG_LEVEL=level, PYTHONPATH=str(ROOT))
    with open(tmp_path / "serve.out", "wb") as out, open(tmp_path / "serve.err", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "rrdsync", "serve"], env=env,
                                stdout=out, stderr=err, cwd=ROOT)
    client = StatusClient(port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.code("/healthz")
            return proc, client
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), the way a killed or timed-out client goes."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_that_hang_up_never_put_a_traceback_on_stderr(tmp_path: Path):
    proc, client = _serve(tmp_path)
    try:
        # 1. half a request line, then gone; half the headers, then gone (plain and RST)
        for data, rst in ((b"GET /hea", False), (b"GET /metrics HTTP/1.1\r\nHost: x", True),
                          (b"GET /readyz HTTP/1.1\r\n", False)):
            s = socket.create_connection(("127.0.0.1", client.port), timeout=5)
            s.sendall(data)
            _reset(s) if rst else s.close()
        # 2. gone while the response is written: many pipelined requests, a tiny receive
        #    window that is never read, then an RST while the server is blocked writing
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", client.port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 3000)
        time.sleep(1.0)
        _reset(s)
        # 3. a request line far too long (http.server answers 414 itself)
        s = socket.create_connection(("127.0.0.1", client.port), timeout=5)
        s.sendall(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
        _reset(s)
        time.sleep(0.5)
        assert client.code("/healthz") == 503  # still serving
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    out, err = (tmp_path / "serve.out").read_bytes(), (tmp_path / "serve.err").read_bytes()
    assert proc.returncode == 0
    assert err == b"", err.decode(errors="replace")
    records = [json.loads(line) for line in out.decode().splitlines()]  # JSON lines only
    gone = [r for r in records if r["event"] == "http_client_gone"]
    assert gone, [r["event"] for r in records]
    assert all(r["level"] == "DEBUG" and "exc_info" not in r for r in gone)
    # the pipelined connection was reset while the server was writing to it
    assert any(("Broken pipe" in r["error"] or "reset" in r["error"]) for r in gone), gone
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], records


def test_a_real_bug_is_one_json_error_line_with_the_traceback_inside(server, client, caplog,
                                                                     monkeypatch):
    from rrdsync.status import server as server_mod

    def broken(self, endpoint):
        raise KeyError("a bug")

    monkeypatch.setattr(server_mod.StatusApp, "status", broken)
    with caplog.at_level("DEBUG", logger="rrdsync.status"):
        code, body = client.get("/healthz")
        try:
            raise ValueError("another bug")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 1))
        try:
            raise BrokenPipeError(32, "Broken pipe")
        except BrokenPipeError:
            server.handle_error(None, ("127.0.0.1", 2))
    assert code == 500 and body["status"] == "error"
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.event for r in errors] == ["http_error", "http_error"]
    assert all(r.exc_info for r in errors)
    gone = [r for r in caplog.records if r.event == "http_client_gone"]
    assert len(gone) == 1 and gone[0].levelname == "DEBUG"
    # the JSON formatter puts the traceback inside the one JSON object
    from rrdsync.log import formatter

    line = formatter("json").format(errors[1])
    assert "\n" not in line and "ValueError: another bug" in json.loads(line)["exc_info"]
