"""``rrdsync serve``: ``/healthz``, ``/readyz`` and ``/metrics`` on one port.

The server reads only what workers published in ``RRDSYNC_RUN_DIR`` and judges it at
request time (``verdict.py``), so it answers truthfully while a worker hangs or is dead.
It is a threaded ``http.server`` (a slow scrape never blocks a probe), answers 404 for
unknown paths, 405 for methods other than GET/HEAD, ignores query strings, and logs
probe and scrape requests at DEBUG only (kubelets probe every few seconds). Changes of
the overall verdict are logged at INFO/WARNING, once per change.

Nothing it writes reaches stderr: http.server's own messages (``log_message``,
``log_error``) and socketserver's traceback printer (``handle_error``) are replaced. A
client that hangs up mid-request or mid-response (``ConnectionResetError``,
``BrokenPipeError``, a timeout) is one JSON line at DEBUG; anything else is a bug, logged
at ERROR as one JSON line with the traceback inside.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .. import log
from . import layout
from .api import ServerSettings
from .collector import render
from .layout import RunDirs
from .state import read_all
from .verdict import Report, evaluate

LOG = log.get("status")
# a client that went away: not our fault, nothing to fix
CLIENT_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class StatusApp:
    """What the handlers need: the config, the run dir and the server's start time."""

    def __init__(self, config: ServerSettings, dirs: RunDirs,
                 since: float | None = None) -> None:
        self.config = config
        self.dirs = dirs
        self.since = time.time() if since is None else since
        self._last: dict[str, bool] = {}
        self._last_lock = threading.Lock()

    def report(self) -> Report:
        return evaluate(read_all(self.dirs.health), now=time.time(), since=self.since,
                        liveness_timeout=self.config.liveness_timeout,
                        max_lag=self.config.max_lag)

    def status(self, endpoint: str) -> tuple[int, dict[str, Any]]:
        """HTTP status and JSON body for ``healthz`` or ``readyz``."""
        r = self.report()
        ok = r.live if endpoint == "healthz" else r.ready
        reason = r.reason(endpoint)
        self._note(endpoint, ok, reason)
        body: dict[str, Any] = {
            "status": "ok" if ok else "fail",
            "reason": reason,
            "time": round(r.now, 3),
            "live": r.live,
            "ready": r.ready,
            "liveness_timeout_s": self.config.liveness_timeout,
            "max_lag_s": self.config.max_lag,
            "destinations": {label: {"ready": v.ready, "reason": "; ".join(v.reasons) or None}
                             for label, v in r.destinations().items()},
            "workers": [w.detail(r.now) for w in r.workers],
            "replaced_workers": [{"key": s.key, "pid": s.pid, "last_checkin": s.checkin}
                                 for s in r.replaced],
            "stopped_workers": [{"key": s.key, "pid": s.pid, "last_checkin": s.checkin}
                                for s in r.stopped],
        }
        return (200 if ok else 503), body

    def _note(self, endpoint: str, ok: bool, reason: str | None) -> None:
        """Log a change of an endpoint's answer once, not every probe."""
        with self._last_lock:
            before = self._last.get(endpoint)
            self._last[endpoint] = ok
        if (before is None and ok) or before == ok:
            return
        if ok:
            LOG.info(f"{endpoint}_ok", f"/{endpoint} answers 200")
        else:
            LOG.warning(f"{endpoint}_failing", f"/{endpoint} answers 503: {reason}",
                        reason=reason)


class Handler(BaseHTTPRequestHandler):
    """One request; ``self.server.app`` is the :class:`StatusApp`."""

    server_version = "rrdsync"
    protocol_version = "HTTP/1.1"
    timeout = 30  # a stalled client gives up its thread

    def _route(self, head: bool) -> None:
        path = urlsplit(self.path).path
        if len(path) > 1:
            path = path.rstrip("/")
        app: StatusApp = self.server.app  # type: ignore[attr-defined]
        try:
            code, payload, ctype = self._answer(app, path)
        except Exception as exc:  # answer, never drop the connection
            LOG.exception("http_error", f"error serving {path}", path=path,
                          error=f"{type(exc).__name__}: {exc}")
            code, ctype = 500, "application/json"
            payload = json.dumps({"status": "error", "reason": str(exc)}).encode() + b"\n"
        # a client that hangs up while this is written: handle_error logs it at DEBUG
        self._send(code, payload, ctype, head)

    def _answer(self, app: StatusApp, path: str) -> tuple[int, bytes, str]:
        if path in ("/healthz", "/readyz"):
            code, body = app.status(path[1:])
            return code, json.dumps(body, indent=1).encode() + b"\n", "application/json"
        if path == "/metrics":
            payload, ctype = render(app.dirs.metrics, app.report(), self.headers.get("Accept"))
            return 200, payload, ctype
        body = {"status": "not found", "path": path,
                "endpoints": ["/healthz", "/readyz", "/metrics"]}
        return 404, json.dumps(body).encode() + b"\n", "application/json"

    def _send(self, code: int, payload: bytes, ctype: str, head: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def _not_allowed(self) -> None:
        payload = b'{"status": "method not allowed"}\n'
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # a malformed request line gets a 400 before path and command are known
        path = urlsplit(getattr(self, "path", "") or "").path.rstrip("/") or "/"
        method = getattr(self, "command", None) or "-"
        quiet = path in QUIET_PATHS and code != 500  # 503 is an answer, 500 a fault
        LOG.log(logging.DEBUG if quiet else logging.INFO, "http_request",
                f"{method} {path} {code}", method=method, path=path,
                status=int(code) if str(code).isdigit() else str(code),
                client=self.client_address[0])

    def log_error(self, format: str, *args: Any) -> None:
        """Malformed requests and timeouts (http.server's send_error, handle_one_request)."""
        LOG.debug("http_bad_request", format % args if args else format,
                  client=self.client_address[0])

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("http_message", format % args if args else format,
                  client=self.client_address[0])


class StatusServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], app: StatusApp) -> None:
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(addr, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Replaces socketserver's traceback on stderr (called inside ``except``)."""
        exc = sys.exc_info()[1]
        client = client_address[0] if isinstance(client_address, tuple) else str(client_address)
        if isinstance(exc, CLIENT_GONE):
            LOG.debug("http_client_gone", "the client closed the connection mid-request",
                      client=client, error=f"{type(exc).__name__}: {exc}")
            return
        LOG.exception("http_error", "unexpected error handling a request", client=client,
                      error=f"{type(exc).__name__}: {exc}")


def make_server(config: ServerSettings) -> StatusServer:
    """Bind the server (raises OSError if the address is taken); does not serve yet."""
    dirs = layout.prepare(config.run_dir)
    return StatusServer(config.http_addr, StatusApp(config, dirs))


def serve(config: ServerSettings) -> int:
    """Run the status server until SIGTERM/SIGINT; 0 then, 1 if it cannot listen."""
    host, port = config.http_addr
    try:
        server = make_server(config)
    except OSError as exc:
        LOG.error("serve_listen_failed", f"cannot listen on {host}:{port}", addr=f"{host}:{port}",
                  error=str(exc))
        return 1
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())

    def run() -> None:
        try:
            server.serve_forever(poll_interval=0.2)
        except Exception as exc:  # one JSON line, not threading's traceback on stderr
            LOG.exception("serve_died", "the status server's thread ended",
                          error=f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, name="status-http", daemon=True)
    thread.start()
    LOG.info("serve_listening", "status server listening",
             addr=f"{host}:{server.server_address[1]}", run_dir=str(config.run_dir))
    try:
        while not stop.wait(1.0):
            if not thread.is_alive():
                return 1
    finally:
        server.shutdown()
        server.server_close()
    LOG.info("serve_stopped", "status server stopped")
    return 0
