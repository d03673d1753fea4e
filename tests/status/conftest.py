"""Unit-test helpers: an in-process status server on a temp run dir, stub worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rrdsync.status.server import StatusServer, make_server
from tests.fixtures.status import Settings, StatusClient

ROOT = Path(__file__).resolve().parents[2]
LIVENESS = 1.0
MAX_LAG = 2.0


class StubWorker:
    """``tests.status.stub_worker`` as a child process, driven line by line."""

    def __init__(self, run_dir: Path, liveness: float, max_lag: float,
                 env: dict[str, str] | None = None, source: str = "/data",
                 dests: tuple[str, ...] = ()) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
        full_env.update(env or {})
        full_env["PYTHONPATH"] = str(ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.status.stub_worker", str(run_dir), str(liveness),
             str(max_lag), source, *dests],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=full_env, cwd=ROOT)
        first = self._ack()
        self.key = first.split()[1]

    def _ack(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("ok"), f"stub worker said {line!r}"
        return line

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        self._ack()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    return d


@pytest.fixture
def config(run_dir: Path) -> Settings:
    return Settings(run_dir=run_dir, liveness_timeout=LIVENESS, max_lag=MAX_LAG)


@pytest.fixture
def server(config: Settings) -> Iterator[StatusServer]:
    srv = make_server(config)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def client(server: StatusServer) -> StatusClient:
    return StatusClient(server.server_address[1])


@pytest.fixture
def stub(run_dir: Path):
    """Start stub workers publishing into ``run_dir``; all killed after the test."""
    made: list[StubWorker] = []

    def start(env: dict[str, str] | None = None, source: str = "/data",
              dests: tuple[str, ...] = ()) -> StubWorker:
        w = StubWorker(run_dir, LIVENESS, MAX_LAG, env, source, dests)
        made.append(w)
        return w

    yield start
    for w in made:
        w.kill()
