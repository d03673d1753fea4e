"""CPU and memory of whole process trees.

CPU of a tree comes from a cgroup (cgroup v1 ``cpuacct`` or v2 ``cpu.stat``): each tool and
each destination sshd runs in its own group, which its descendants inherit, and the kernel
keeps counting the CPU of members that have exited. Summing utime+stime+cutime+cstime over
a tree from /proc is not enough: the CPU of a process that is not reaped by a waiting
parent is lost to the tree (measured: the CPU of sshd's session process and of the rsync
server it runs never reaches the sshd listener's cutime); that sum is kept only as a
fallback where no cgroup can be made. Memory is sampled: the peak of the summed RSS of the
tree at sample times, and the kernel's own high-water mark (VmHWM) for one process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Proc:
    pid: int
    ppid: int
    cpu: float  # own utime+stime, seconds
    child_cpu: float  # reaped children's cutime+cstime, seconds
    rss: int  # bytes


def _read_stat(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw.rsplit(b")", 1)[1].split()
    # fields after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    # ... rss(21)
    try:
        ppid = int(rest[1])
        ut, st, cut, cst = (int(x) for x in rest[11:15])
        rss = int(rest[21]) * PAGE
    except (IndexError, ValueError):
        return None
    return Proc(pid, ppid, (ut + st) / TICK, (cut + cst) / TICK, rss)


def snapshot() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            p = _read_stat(int(entry))
            if p is not None:
                procs[p.pid] = p
    return procs


def tree(procs: dict[int, Proc], root: int) -> list[Proc]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            out.append(procs[pid])
            todo.extend(children.get(pid, ()))
    return out


def tree_cpu(procs: dict[int, Proc], root: int) -> float:
    return sum(p.cpu + p.child_cpu for p in tree(procs, root))


def tree_rss(procs: dict[int, Proc], root: int) -> int:
    return sum(p.rss for p in tree(procs, root))


def own_cpu(pid: int) -> float:
    p = _read_stat(pid)
    return p.cpu if p else 0.0


def vm_hwm(pid: int) -> int:
    """Peak resident set of one process (bytes), from the kernel; 0 when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def system_busy() -> float:
    """CPU seconds the whole machine spent not idle since boot (all cores)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICK


def system_steal() -> float:
    """CPU seconds the hypervisor took from this machine's cores since boot (all cores)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (fields[7] if len(fields) > 7 else 0) / TICK


def self_cpu() -> float:
    """CPU seconds of this process (the harness) itself."""
    t = os.times()
    return t.user + t.system


def disk_written() -> int:
    """Sectors written so far to the machine's block devices (not loop or RAM devices,
    whose writes reach a real one anyway)."""
    total = 0
    with open("/proc/diskstats") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 9 and not parts[2].startswith(("loop", "ram", "zram")):
                total += int(parts[9])
    return total


def warm(root: Path) -> int:
    """Read every file under ``root`` once; the bytes read. The first tool of a run met a
    source tree evicted from the page cache by whatever ran before (a CI run, the 100k
    tree) and paid the disk reads for every tool after it: 10.7 s against 6.2-6.8 s for the
    same initial sync at opennms-20k. On an OpenNMS host the RRDs are hot: the collectors
    write every one of them every few minutes."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), "rb") as f:
                    while chunk := f.read(1 << 20):
                        total += len(chunk)
            except OSError:
                pass
    return total


def wait_disk_idle(quiet_s: float = 3.0, cap_s: float = 120.0,
                   slack_sectors: int = 2048) -> float:
    """Wait until the disks have written at most ``slack_sectors`` (1 MiB) in each second
    of ``quiet_s`` seconds running, at most ``cap_s``; the seconds waited. ``os.sync()``
    returns once the page cache is written, but the kernel goes on for seconds after a
    large tree's build, a destination's deletion or another job (journal commits, loop
    devices' backing files), and a tool whose initial sync ran in that time measured up
    to 70 % slower (10.7 s against 6.3-6.8 s at opennms-20k)."""
    start = time.monotonic()
    last, calm = disk_written(), 0.0
    while time.monotonic() - start < cap_s:
        time.sleep(1.0)
        cur = disk_written()
        calm = calm + 1.0 if cur - last <= slack_sectors else 0.0
        last = cur
        if calm >= quiet_s:
            break
    return time.monotonic() - start


def loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        a, b, c = f.read().split()[:3]
    return float(a), float(b), float(c)


@dataclass
class Sampler:
    """Samples the summed RSS of some trees every ``interval`` seconds in a thread."""

    roots: dict[str, int]
    interval: float = 0.5
    peak_rss: dict[str, int] = field(default_factory=dict)
    load_samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def sample(self) -> None:
        procs = snapshot()
        for name, root in self.roots.items():
            rss = tree_rss(procs, root)
            if rss > self.peak_rss.get(name, 0):
                self.peak_rss[name] = rss
        self.load_samples.append(loadavg()[0])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


def now() -> float:
    return time.monotonic()


class CpuGroup:
    """A cgroup counting the CPU of everything started in it, including exited members."""

    V1 = Path("/sys/fs/cgroup/cpuacct")
    V2 = Path("/sys/fs/cgroup")

    def __init__(self, name: str) -> None:
        leaf = f"rrdsync-bench-{os.getpid()}-{name}"
        if (self.V1 / "cpuacct.usage").exists():
            self.path, self.v2 = self.V1 / leaf, False
        elif (self.V2 / "cgroup.controllers").exists():
            self.path, self.v2 = self.V2 / leaf, True
        else:
            raise OSError("no cgroup hierarchy with CPU accounting")
        self.path.mkdir(exist_ok=True)

    @classmethod
    def make(cls, name: str) -> CpuGroup | None:
        try:
            return cls(name)
        except OSError:
            return None

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def add(self, pid: int) -> None:
        self.procs.write_text(str(pid))

    def cpu(self) -> float:
        """User+system CPU seconds of every process that ever was in the group."""
        if self.v2:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
            return 0.0
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        """Remove the group (its members are gone by then; leftovers go to the parent)."""
        with contextlib.suppress(OSError):
            for pid in self.procs.read_text().split():
                with contextlib.suppress(OSError):
                    (self.path.parent / "cgroup.procs").write_text(pid)
            self.path.rmdir()
