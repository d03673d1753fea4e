"""``rrdsync serve``: ``/healthz``, ``/readyz`` and ``/metrics`` on one port.

The server reads only what workers published in ``RRDSYNC_RUN_DIR`` and judges it at
request time (``verdict.py``), so it answers truthfully while a worker hangs or is dead.
It is a threaded ``http.server`` (a slow scrape never blocks a probe), answers 404 for
unknown paths, 405 for methods other than GET/HEAD, ignores query strings, and logs
probe and scrape requests at DEBUG only (kubelets probe every few seconds). Changes of
the overall verdict are logged at INFO/WARNING, once per change.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ..config import ServeConfig as Config  # transitional
from . import layout
from .collector import render
from .layout import RunDirs
from .state import read_all
from .verdict import Report, evaluate

log = logging.getLogger("rrdsync.status")

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class StatusApp:
    """What the handlers need: the config, the run dir and the server's start time."""

    def __init__(self, config: Config, dirs: RunDirs, since: float | None = None) -> None:
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
            log.info("%s OK", endpoint, extra={"event": f"status.{endpoint}.ok"})
        else:
            log.warning("%s failing: %s", endpoint, reason,
                        extra={"event": f"status.{endpoint}.fail", "reason": reason})


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
            if path in ("/healthz", "/readyz"):
                code, body = app.status(path[1:])
                self._send(code, json.dumps(body, indent=1).encode() + b"\n",
                           "application/json", head)
            elif path == "/metrics":
                payload, ctype = render(app.dirs.metrics, app.report(),
                                        self.headers.get("Accept"))
                self._send(200, payload, ctype, head)
            else:
                body = {"status": "not found", "path": path,
                        "endpoints": ["/healthz", "/readyz", "/metrics"]}
                self._send(404, json.dumps(body).encode() + b"\n", "application/json", head)
        except Exception as exc:  # answer, never drop the connection
            log.exception("error serving %s", path, extra={"event": "status.http_error"})
            body = {"status": "error", "reason": str(exc)}
            self._send(500, json.dumps(body).encode() + b"\n", "application/json", head)

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
        path = urlsplit(self.path).path.rstrip("/") or "/"
        quiet = path in QUIET_PATHS and code != 500  # 503 is an answer, 500 a fault
        log.log(logging.DEBUG if quiet else logging.INFO, "%s %s %s", self.command, path, code,
                extra={"event": "http.request", "method": self.command, "path": path,
                       "status": int(code) if str(code).isdigit() else code,
                       "client": self.client_address[0]})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args, extra={"event": "http.message"})


class StatusServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], app: StatusApp) -> None:
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(addr, Handler)


def make_server(config: Config) -> StatusServer:
    """Bind the server (raises OSError if the address is taken); does not serve yet."""
    dirs = layout.prepare(config)
    return StatusServer(config.http_addr, StatusApp(config, dirs))


def serve(config: Config) -> int:
    """Run the status server until SIGTERM/SIGINT; 0 then, 1 if it cannot listen."""
    host, port = config.http_addr
    try:
        server = make_server(config)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc,
                  extra={"event": "serve.listen_failed", "error": str(exc)})
        return 1
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="status-http", daemon=True)
    thread.start()
    log.info("status server listening on %s:%s", host, server.server_address[1],
             extra={"event": "serve.listening", "addr": f"{host}:{server.server_address[1]}",
                    "run_dir": str(config.run_dir)})
    try:
        while not stop.wait(1.0):
            if not thread.is_alive():
                log.error("status server thread ended", extra={"event": "serve.died"})
                return 1
    finally:
        server.shutdown()
        server.server_close()
    log.info("status server stopped", extra={"event": "serve.stopped"})
    return 0
