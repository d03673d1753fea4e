"""image/healthcheck, run as the image runs it (no arguments, the role from the run dir),
against stand-ins for the status server and sshd on the loopback."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "image" / "healthcheck"


def _run(run_dir: Path, role: str, **env: str) -> subprocess.CompletedProcess[str]:
    (run_dir / "role").write_text(role + "\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    return subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          env={**clean, "RRDSYNC_RUN_DIR": str(run_dir), **env}, timeout=30)


@pytest.fixture
def status_server() -> Iterator[tuple[int, list[int]]]:
    """A /healthz that answers the first status in the list (200 by default)."""
    answer = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answer[0] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], answer
    server.shutdown()
    server.server_close()


def test_sidecar_asks_healthz_on_the_loopback_for_a_wildcard_address(tmp_path, status_server):
    port, answer = status_server
    for addr in (f"0.0.0.0:{port}", f"[::]:{port}", f"127.0.0.1:{port}", f":{port}"):
        assert _run(tmp_path, "sidecar", RRDSYNC_HTTP_ADDR=addr).returncode == 0, addr
    answer[0] = 503
    r = _run(tmp_path, "sidecar", RRDSYNC_HTTP_ADDR=f"0.0.0.0:{port}")
    assert r.returncode == 1 and "503" in r.stderr


def test_sidecar_with_a_bad_address_fails_and_says_why(tmp_path):
    r = _run(tmp_path, "sidecar", RRDSYNC_HTTP_ADDR="::1:8080")
    assert r.returncode == 1 and "brackets" in r.stderr


def test_receiver_wants_an_ssh_banner_on_the_listen_port(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]

        def answer(banner: bytes) -> None:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(banner)

        for banner, rc in ((b"SSH-2.0-OpenSSH_9.2\r\n", 0), (b"HTTP/1.1 400\r\n", 1)):
            t = threading.Thread(target=answer, args=(banner,))
            t.start()
            assert _run(tmp_path, "receiver", RRDSYNC_LISTEN_PORT=str(port)).returncode == rc
            t.join()
    assert _run(tmp_path, "receiver", RRDSYNC_LISTEN_PORT="0").returncode == 1
