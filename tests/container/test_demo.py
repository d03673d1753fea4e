"""The README's first command: ./run-demo brings the compose stack up, and RRD files
written by opennms-sim arrive at the receiver."""

from __future__ import annotations

import os
import subprocess
import time

from tests.fixtures.containers import REPO, Engine, free_port, http_get


def test_run_demo_brings_up_the_stack(container_engine: Engine, base_image: str,
                                      rrdsync_image: str):
    project = f"rrdt-demo-{os.getpid()}"
    port = free_port()
    env = {**os.environ, **container_engine.env, "ENGINE": container_engine.name,
           "BASE_IMAGE": base_image, "DEMO_PROJECT": project, "DEMO_HTTP_PORT": str(port)}
    receiver = f"{project}_receiver_1"
    try:
        t0 = time.monotonic()
        up = subprocess.run([str(REPO / "run-demo")], env=env, capture_output=True,
                            text=True, timeout=600)
        assert up.returncode == 0, (up.stdout[-3000:], up.stderr[-3000:])
        print(f"run-demo until /readyz 200: {time.monotonic() - t0:.1f} s")
        assert http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200

        def arrived() -> list[str]:
            proc = container_engine("exec", receiver, "find", "/data/snmp", "-name", "*.rrd",
                                    "-newermt", "-10 seconds", check=False)
            return proc.stdout.split()

        deadline = time.monotonic() + 60
        while not arrived() and time.monotonic() < deadline:
            time.sleep(1)
        assert arrived(), "no freshly updated RRD file at the receiver"
    finally:
        subprocess.run([str(REPO / "run-demo"), "down"], env=env, capture_output=True,
                       timeout=180, check=False)
