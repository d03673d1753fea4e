"""The network between a tool and its destination: a namespace, a veth pair, tbf and a relay.

Layout (one per benchmark process)::

    host namespace                         namespace rrdbench-<pid>
    tool --tcp--> rb<pid>h ==veth== rb<pid>n --> relay (delay) --> sshd on 127.0.0.1
          10.222.x.1/30   tbf rate R    tbf rate R   10.222.x.2:PORT

- **Bandwidth**: ``tc qdisc ... tbf`` on the egress of both veth ends (upstream on the host
  end, downstream on the namespace end), so each direction has rate R.
- **Delay**: ``netem`` is not in this kernel; ``bench.relay`` holds each chunk for the
  one-way delay in each direction (and 1.5 RTT before a new connection's first byte, for
  the TCP handshake). It runs inside the namespace, in its own cgroup: its CPU is reported
  separately and is not the tool's cost.
- **Bytes on the wire**: the host end's interface counters (``tx_bytes``: towards the
  destination, ``rx_bytes``: back), which count every frame the tool's TCP connection
  carried, headers and ACKs included. GSO super-packets that tbf does not split (only on
  a fast link, where they fit in its burst) carry one set of headers for up to 64 KB, so
  on ``lan`` the header share is undercounted by up to ~4 %; payload is exact.

Names carry the owning process id (``rrdbench-<pid>``, ``rb<pid>h``): ``cleanup_stale``
removes those whose process is gone (a crashed run), killing what still runs inside them,
and never touches another live run's. The /30 is chosen from 10.222.0.0/16 by pid, skipping
any prefix already in use on the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "rrdbench-"
LINK_PREFIX = "rb"
SUBNET = ipaddress.ip_network("10.222.0.0/16")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.fixtures.sshd import SSHD, Sshd  # noqa: E402


@dataclass(frozen=True)
class Link:
    """What the path between the tool and its destination looks like."""

    rate_mbit: float
    rtt_ms: float
    queue_ms: float = 20.0  # tbf's queue (its "latency"): added delay when the link is full

    @property
    def delay_s(self) -> float:
        return self.rtt_ms / 2000

    @property
    def rate_bytes(self) -> float:
        return self.rate_mbit * 1e6 / 8

    def tbf(self) -> list[str]:
        # burst: at least 16 KB, and 2 ms at the rate so a fast link is not timer-bound
        burst = max(16 * 1024, int(self.rate_bytes * 0.002))
        return ["tbf", "rate", f"{self.rate_mbit:g}mbit", "burst", str(burst),
                "latency", f"{self.queue_ms:g}ms"]

    def relay_limit(self) -> int:
        """Bytes the relay holds per direction: twice what the delay line has in flight."""
        return max(256 * 1024, int(2 * self.rate_bytes * self.delay_s))

    def describe(self) -> str:
        return f"{self.rate_mbit:g} Mbit/s, {self.rtt_ms:g} ms RTT"


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str, prefix: str, suffix: str = "") -> int | None:
    core = name[len(prefix):len(name) - len(suffix)] if suffix else name[len(prefix):]
    return int(core) if name.startswith(prefix) and core.isdigit() else None


def cleanup_stale() -> list[str]:
    """Remove namespaces and links of benchmark runs whose process is gone; returns names."""
    removed = []
    for line in _run(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        pid = _owner(name, PREFIX)
        if pid is None or _alive(pid):
            continue
        # processes a crashed run left inside (its relay, its sshd) keep the namespace alive
        for p in _run(["ip", "netns", "pids", name], check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(p), signal.SIGKILL)
        _run(["ip", "netns", "del", name], check=False)
        removed.append(name)
    for line in _run(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        pid = _owner(name, LINK_PREFIX, "h")
        if pid is not None and not _alive(pid):
            _run(["ip", "link", "del", name], check=False)
            removed.append(name)
    return removed


def _pick_subnet(pid: int) -> ipaddress.IPv4Network:
    used = _run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    nets = list(SUBNET.subnets(new_prefix=30))
    for i in range(len(nets)):
        net = nets[(pid + i) % len(nets)]
        if f" {net[1]}/" not in used and f" {net[2]}/" not in used:
            return net
    raise RuntimeError("no free /30 in 10.222.0.0/16")


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the benchmark process dies (even by SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class NetModel:
    """The namespace, veth pair and tbf qdiscs; ``up()`` builds them, ``down()`` removes."""

    def __init__(self, link: Link) -> None:
        pid = os.getpid()
        self.link = link
        self.ns = f"{PREFIX}{pid}"
        self.host_if = f"{LINK_PREFIX}{pid}h"
        self.ns_if = f"{LINK_PREFIX}{pid}n"
        self.net = _pick_subnet(pid)
        self.host_ip, self.ns_ip = str(self.net[1]), str(self.net[2])
        self.delay_s = link.delay_s  # the relay's setting; calibrate() corrects it
        self.calibration: dict = {}

    def up(self) -> NetModel:
        cleanup_stale()
        self.down()
        ip, ns, plen = "ip", self.ns, self.net.prefixlen
        cmds = [
            [ip, "netns", "add", ns],
            [ip, "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
             "netns", ns],
            [ip, "addr", "add", f"{self.host_ip}/{plen}", "dev", self.host_if],
            [ip, "-n", ns, "addr", "add", f"{self.ns_ip}/{plen}", "dev", self.ns_if],
            [ip, "link", "set", self.host_if, "up"],
            [ip, "-n", ns, "link", "set", self.ns_if, "up"],
            [ip, "-n", ns, "link", "set", "lo", "up"],
            ["tc", "qdisc", "replace", "dev", self.host_if, "root", *self.link.tbf()],
            ["tc", "-n", ns, "qdisc", "replace", "dev", self.ns_if, "root", *self.link.tbf()],
        ]
        try:
            for c in cmds:
                r = _run(c, check=False)
                if r.returncode:
                    raise RuntimeError(f"{' '.join(c)}: {r.stderr.strip()}")
            # no IPv6 autoconfiguration chatter in the byte counters
            for c in (["sysctl", "-qw", f"net.ipv6.conf.{self.host_if}.disable_ipv6=1"],
                      ["ip", "netns", "exec", ns, "sysctl", "-qw",
                       f"net.ipv6.conf.{self.ns_if}.disable_ipv6=1"]):
                _run(c, check=False)
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        for p in _run(["ip", "netns", "pids", self.ns], check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(p), signal.SIGKILL)
        _run(["ip", "netns", "del", self.ns], check=False)
        _run(["ip", "link", "del", self.host_if], check=False)

    def __enter__(self) -> NetModel:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs: same pid)."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.exec_argv(argv), preexec_fn=die_with_parent, **kw)

    def counters(self) -> tuple[int, int]:
        """(bytes sent towards the destination, bytes received from it) on the host end."""
        base = Path("/sys/class/net") / self.host_if / "statistics"
        return int((base / "tx_bytes").read_text()), int((base / "rx_bytes").read_text())

    def start_relay(self, maps: dict[int, int], services: dict[str, int],
                    cgroup_procs: Path | None = None) -> subprocess.Popen:
        """A relay in the namespace: ns_ip:port -> 127.0.0.1:target for each of ``maps``,
        and the measuring services on ns_ip:port. Started under ``bench.cgexec`` when a
        cgroup is given, so its CPU is counted on its own."""
        argv = [sys.executable, "-m", "bench.relay", "--delay", f"{self.delay_s:.6f}",
                "--limit", str(self.link.relay_limit())]
        for port, target in maps.items():
            argv += ["--map", f"{self.ns_ip}:{port}=127.0.0.1:{target}"]
        for name, port in services.items():
            argv += ["--service", f"{name}={self.ns_ip}:{port}"]
        argv = self.exec_argv(argv)
        if cgroup_procs is not None:  # joined outside: ip netns exec hides /sys/fs/cgroup
            argv = [sys.executable, "-m", "bench.cgexec", str(cgroup_procs), *argv]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, cwd=str(REPO),
                                preexec_fn=die_with_parent)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            proc.kill()
            raise RuntimeError("relay did not start")
        return proc


class BenchSshd(Sshd):
    """The private sshd of ``tests.fixtures.sshd``, dying with the benchmark process, and
    over a link run inside the model's namespace.

    There it listens on the namespace's own 127.0.0.1; the relay listens on ``ns_ip`` at the
    same port and forwards there, so every byte to and from sshd crosses the veth and the
    delay."""

    def __init__(self, workdir: Path, dest: Path, net: NetModel | None = None) -> None:
        self.net = net
        # plain sshd, no rrsync (the fixture's default since the engine rework): lsyncd's
        # stock ``-s`` would be refused, and every tool must get the same receiver
        super().__init__(workdir=workdir, dest=dest, receiver="plain")
        # set to a cgroup's cgroup.procs: sshd joins it before its first instruction, so a
        # connection accepted right after a (re)start is counted too
        self.cgroup_procs: Path | None = None
        if net is not None:
            pub = self.host_key.with_suffix(".pub").read_text().split()[:2]
            self.known_hosts.write_text(f"[{net.ns_ip}]:{self.port} {' '.join(pub)}\n")

    @property
    def destination(self) -> str:
        addr = self.net.ns_ip if self.net else "127.0.0.1"
        return f"{self.user.pw_name}@{addr}:{self.dest}"

    def start(self) -> None:
        Path("/run/sshd").mkdir(exist_ok=True)
        argv = [SSHD, "-D", "-e", "-f", str(self.config)]
        if self.cgroup_procs is not None:
            argv = [sys.executable, str(REPO / "bench" / "cgexec.py"), str(self.cgroup_procs),
                    *argv]
        # after a stop (bench.fanout's outage) the log already says "listening": only what
        # this start writes counts
        offset = self.log.stat().st_size if self.log.exists() else 0
        log = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        if self.net is not None:
            self.proc = self.net.popen(argv, stdout=log, stderr=log)
        else:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log,
                                         preexec_fn=die_with_parent)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                f.seek(offset)
                if b"Server listening on" in f.read():
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")


SERVICE_PORTS = {"echo": 7, "sink": 9, "source": 19}


def calibrate(net: NetModel, pings: int = 20) -> dict:
    """Set the relay's delay so that the measured RTT is the link's.

    The relay's own hand-offs and the scheduler add a little to every chunk (~0.1-0.2 ms per
    direction on an idle machine, more on a busy one): measured at the nominal delay, then
    taken off once."""
    target = net.link.rtt_ms
    net.delay_s = net.link.delay_s
    relay = net.start_relay({}, SERVICE_PORTS)
    try:
        first = _pings(net.ns_ip, pings)
        net.delay_s = max(0.0, net.link.delay_s - (first - target) / 2000)
    finally:
        relay.kill()
        relay.wait()
    net.calibration = {"nominal_delay_ms": net.link.delay_s * 1000,
                       "rtt_at_nominal_ms": first, "delay_ms": net.delay_s * 1000}
    return net.calibration


def _pings(addr: str, n: int) -> float:
    with socket.create_connection((addr, SERVICE_PORTS["echo"]), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"x")
        s.recv(1)
        samples = []
        for _ in range(n):
            t = time.monotonic()
            s.sendall(b"x")
            s.recv(1)
            samples.append((time.monotonic() - t) * 1000)
    return statistics.median(samples)


def measure(addr: str, link: Link, pings: int = 10) -> dict:
    """RTT and throughput through the model, from the host side, via the relay's services.

    - ``rtt_ms``: median time for one byte to come back on an open connection;
    - ``first_echo_ms``: connect + first echo on a new connection (handshake emulated: ~2 RTT);
    - ``up_mbit``/``down_mbit``: TCP payload throughput of a ~1 s transfer each way, with
      the transfer's own round trips taken out.
    """
    out: dict = {}
    t0 = time.monotonic()
    with socket.create_connection((addr, SERVICE_PORTS["echo"]), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"x")
        s.recv(1)
        out["first_echo_ms"] = (time.monotonic() - t0) * 1000
        samples = []
        for _ in range(pings):
            t = time.monotonic()
            s.sendall(b"x")
            s.recv(1)
            samples.append((time.monotonic() - t) * 1000)
    out["rtt_ms"] = statistics.median(samples)
    out["rtt_min_ms"] = min(samples)
    out["rtt_max_ms"] = max(samples)
    rtt = out["rtt_ms"] / 1000
    nbytes = max(1 << 20, int(link.rate_bytes * 1.0))

    with socket.create_connection((addr, SERVICE_PORTS["sink"]), timeout=60) as s:
        f = s.makefile("rb")
        f.readline()  # "ok": the connection is through the (emulated) handshake
        block = b"\x5a" * (256 * 1024)
        t = time.monotonic()
        left = nbytes
        while left > 0:
            s.sendall(block[:left])
            left -= min(left, len(block))
        s.shutdown(socket.SHUT_WR)
        got = int(f.readline())
        elapsed = time.monotonic() - t
    out["up_mbit"] = got * 8 / max(1e-6, elapsed - rtt) / 1e6

    with socket.create_connection((addr, SERVICE_PORTS["source"]), timeout=60) as s:
        t = time.monotonic()
        s.sendall(f"{nbytes}\n".encode())
        first = s.recv(256 * 1024)
        t_first = time.monotonic()
        got = len(first)
        while data := s.recv(256 * 1024):
            got += len(data)
        elapsed = time.monotonic() - t_first
    out["down_mbit"] = (got - len(first)) * 8 / max(1e-6, elapsed) / 1e6
    out["first_byte_ms"] = (t_first - t) * 1000
    return out
