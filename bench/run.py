"""The benchmark driver: every tool, one after the other, on the same workload and machine.

For each tool: a fresh private sshd with an empty destination directory (on 127.0.0.1, or
for a profile with a link, inside the network model's namespace behind a shaped veth pair
and a delay relay: ``bench.netmodel``), the observer on that directory, then the tool.
Phases:

1. initial sync: from the tool's start until every source file has arrived and the
   destination is byte-identical to the source (checked by comparing every file);
2. updates: the updater rewrites RRD files at the profile's rate for its duration;
3. drain: until the destination holds the last version of every updated file, capped.

Then the tool is stopped and the logs are joined (``bench.analyze``). CPU comes from a
cgroup each for the tool's whole process tree, the destination's sshd tree (sshd + the
rsync servers it ran) and the relay; the tool's own process from /proc; see
``bench.procstat``. Over a link, bytes on the wire come from the veth's counters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import analyze, destfs, netmodel, procstat, report, tools
from bench.netmodel import BenchSshd, Link, NetModel
from bench.tools import REPO, Target
from bench.workload import EMPTY_MODEL, ROWS_MODEL, build_tree

sys.path.insert(0, str(REPO))
from tests.fixtures.rrd import differences, included_files
from tests.fixtures.sshd import Sshd


@dataclass(frozen=True)
class Profile:
    name: str
    files: int
    rate: float
    duration: float
    drain_cap: float
    initial_cap: float
    tools: tuple[str, ...]
    link: Link | None = None  # None: loopback


ALL = ("rrdsync", "lsyncd-delay1", "lsyncd-default", "rsync-loop-10s", "perfile-watchdog")
ALL_Z = (*ALL, "lsyncd-delay1-compress")
WAN = Link(rate_mbit=20, rtt_ms=40)
LAN = Link(rate_mbit=1000, rtt_ms=0.5, queue_ms=2)
PROFILES = {p.name: p for p in [
    Profile("tiny", 200, 20, 10, 20, 60, ("rrdsync", "lsyncd-delay1")),
    Profile("wan-tiny", 50, 10, 5, 20, 60, ("rrdsync", "lsyncd-delay1"), WAN),
    Profile("small", 2_000, 50, 60, 30, 180, ALL),
    Profile("wan-small", 2_000, 50, 60, 30, 300, ALL_Z, WAN),
    Profile("lan-small", 2_000, 50, 60, 30, 180, ALL_Z, LAN),
    Profile("opennms-20k", 20_000, 200, 180, 60, 600, ALL_Z),
    Profile("wan-20k", 20_000, 200, 180, 60, 1500, ALL_Z, WAN),
    Profile("lan-20k", 20_000, 200, 180, 60, 600, ALL_Z, LAN),
    Profile("opennms-100k", 100_000, 333, 300, 120, 1800,
            ("rrdsync", "lsyncd-delay1", "lsyncd-default")),
]}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except OSError:
            return "missing"
        first = ((out.stdout or out.stderr).strip().splitlines() or [""])[0]
        return " ".join(first.replace("Version:", "").split()[:4]).rstrip(",")

    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "rrdsync"], capture_output=True,
                           text=True).stdout.strip()
    return {
        "rrdsync_commit": head + (" + uncommitted changes in rrdsync/" if dirty else ""),
        "cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "rsync": version(["rsync", "--version"]), "ssh": version(["ssh", "-V"]),
        "lsyncd": version(["lsyncd", "--version"]),
        "rrdtool": " ".join(version(["rrdtool"]).split()[:2]),
    }


class Tail:
    """Follows the observer's log as it grows."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.log = path, 0, analyze.ObsLog()

    def poll(self) -> analyze.ObsLog:
        if self.path.exists():
            self.log, self.offset = analyze.read_obslog(self.path, self.offset, self.log)
        return self.log


def stop_group(proc: subprocess.Popen, grace: float) -> tuple[int | None, float]:
    t0 = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if rc is None:
        proc.wait()
    return rc, took


def ssh_true(sshd: Sshd, addr: str) -> float:
    """Seconds for ``ssh host true``: what a new SSH connection costs over this path."""
    t = time.monotonic()
    subprocess.run(["ssh", "-p", str(sshd.port), "-i", str(sshd.client_key),
                    "-o", f"UserKnownHostsFile={sshd.known_hosts}",
                    "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                    f"{sshd.user.pw_name}@{addr}", "true"], check=True, capture_output=True,
                   timeout=60)
    return time.monotonic() - t


class Wire:
    """Bytes on the wire between the phases (zeros on loopback, where there is no wire)."""

    def __init__(self, net: NetModel | None) -> None:
        self.net = net
        self.marks: dict[str, tuple[int, int]] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = self.net.counters() if self.net else (0, 0)

    def between(self, a: str, b: str) -> tuple[int, int]:
        (u0, d0), (u1, d1) = self.marks[a], self.marks[b]
        return u1 - u0, d1 - d0


def run_tool(name: str, prof: Profile, src: Path, base: Path, expected: list[str],
             all_files: set[str], py_spy: bool, net: NetModel | None = None,
             dest_root: Path | None = None) -> dict:
    work = base / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    os.chmod(work, 0o755)
    dest = (dest_root / name) if dest_root else work / "dest"
    # what the tree's build or the previous tool left in the page cache is written out
    # now, not while this tool's initial sync writes
    os.sync()
    procstat.warm(src)
    waited = procstat.wait_disk_idle()
    if waited > 4.5:
        log(f"{name}: waited {waited:.0f} s for the disks to go idle")
    sshd = BenchSshd(workdir=work / "sshd", dest=dest, net=net)
    sshd.start()
    assert sshd.proc is not None
    tool_cg = procstat.CpuGroup.make(f"{name}-tool")
    dest_cg = procstat.CpuGroup.make(f"{name}-dest")
    if dest_cg:
        dest_cg.add(sshd.proc.pid)
    res: dict = {"tool": name, "disk_idle_wait_s": round(waited, 1)}
    relay = relay_cg = None
    if net:
        relay_cg = procstat.CpuGroup.make(f"{name}-relay")
        relay = net.start_relay({sshd.port: sshd.port}, netmodel.SERVICE_PORTS,
                                relay_cg.procs if relay_cg else None)
        res["network"] = netmodel.measure(net.ns_ip, net.link)
        res["network"]["ssh_true_s"] = ssh_true(sshd, net.ns_ip)
        n = res["network"]
        log(f"{name}: path RTT {n['rtt_ms']:.2f} ms, up {n['up_mbit']:.1f} / down "
            f"{n['down_mbit']:.1f} Mbit/s, ssh true {n['ssh_true_s']:.2f} s")
    conns0 = sshd.connections()
    relay_cpu0 = relay_cg.cpu() if relay_cg else 0.0

    def relay_cpu() -> float:
        return (relay_cg.cpu() if relay_cg else 0.0) - relay_cpu0

    wire = Wire(net)
    target = Target(src=src, user="rrdsync-t", port=sshd.port, key=sshd.client_key,
                    known_hosts=sshd.known_hosts, dest=sshd.dest, workdir=work,
                    addr=net.ns_ip if net else "127.0.0.1")
    launch = tools.variant(name)(target)
    res.update({"argv": launch.argv,
                "cpu_method": "cgroup" if tool_cg and dest_cg else "procfs"})
    obs_log = work / "observer.log"
    # every child dies with the harness, even a killed one (the namespace's processes too)
    observer = subprocess.Popen([sys.executable, "-m", "bench.observer", str(sshd.dest),
                                 str(obs_log)], env={**os.environ, "PYTHONPATH": str(REPO)},
                                preexec_fn=netmodel.die_with_parent)
    tail = Tail(obs_log)
    deadline = time.monotonic() + 30
    while not (obs_log.exists() and b"!ready" in obs_log.read_bytes()):
        if time.monotonic() > deadline:
            raise RuntimeError("observer did not start")
        time.sleep(0.05)

    busy0, load0, self0 = procstat.system_busy(), procstat.loadavg(), procstat.self_cpu()
    steal0 = procstat.system_steal()
    wire.mark("start")
    t_start = time.monotonic()
    out = open(work / "tool.log", "wb")  # noqa: SIM115
    argv = launch.argv
    if tool_cg:
        argv = [sys.executable, "-m", "bench.cgexec", str(tool_cg.procs), *argv]
    proc = subprocess.Popen(argv, env=launch.env, stdout=out, stderr=subprocess.STDOUT,
                            cwd=str(REPO), start_new_session=True,
                            preexec_fn=netmodel.die_with_parent)
    out.close()
    sampler = procstat.Sampler({"tool": proc.pid, "dest": sshd.proc.pid}).start()
    log(f"{name}: started (pid {proc.pid}), waiting for the initial sync of {len(expected)} files")

    # 1. initial sync
    want = set(expected)
    initial = None
    deadline = t_start + prof.initial_cap
    next_check = 0.0
    while time.monotonic() < deadline:
        o = tail.poll()
        if proc.poll() is not None:
            log(f"{name}: exited early with {proc.returncode}")
            break
        # the observer cannot see a directory it failed to watch: then compare in full
        complete = want.issubset(o.first_seen.keys()) or o.watch_failures > 0
        if complete and time.monotonic() >= next_check:
            diff = differences(src, sshd.dest)
            if not diff:
                # the destination may have been completed by an arrival the observer logs later
                seen = tail.poll().first_seen
                if want.issubset(seen.keys()):
                    initial = max(seen[r] for r in want) - t_start
                else:  # some directory unwatched: the time of this comparison bounds it
                    initial = time.monotonic() - t_start
                break
            next_check = time.monotonic() + (2 if want.issubset(o.first_seen.keys()) else 5)
        time.sleep(0.2)
    res["initial_sync_s"] = initial
    wire.mark("initial")
    if proc.poll() is not None:
        # e.g. a setting this rrdsync does not know yet: no update phase to measure
        sampler.stop()
        observer.kill()
        observer.wait()
        if relay is not None:
            relay.kill()
            relay.wait()
        sshd.stop()
        for cg in (tool_cg, dest_cg, relay_cg):
            if cg:
                cg.close()
        text = (work / "tool.log").read_text(errors="replace").strip().splitlines()
        res["failed"] = f"exited with {proc.returncode}: " + " ".join(text[-3:])[-400:]
        return res

    def tree_cpu(snap: dict[int, procstat.Proc]) -> float:
        return tool_cg.cpu() if tool_cg else procstat.tree_cpu(snap, proc.pid)

    def dest_cpu(snap: dict[int, procstat.Proc]) -> float:
        assert sshd.proc is not None
        return dest_cg.cpu() if dest_cg else procstat.tree_cpu(snap, sshd.proc.pid)

    res["initial_cpu_tree_s"] = tree_cpu(procstat.snapshot())
    res["initial_cpu_dest_s"] = dest_cpu(procstat.snapshot())
    res["initial_cpu_relay_s"] = relay_cpu()
    res["wire_initial_up_bytes"], res["wire_initial_down_bytes"] = wire.between("start",
                                                                                "initial")
    log(f"{name}: initial sync {f'{initial:.1f} s' if initial is not None else 'NOT reached'}")

    # 2. updates. First write back what the initial sync left dirty in the page cache
    # (~1.8 GB at 20k): the kernel would otherwise flush it ~30 s later, in the middle of
    # the update phase, and stall every writer on the machine for seconds.
    os.sync()
    observer.send_signal(signal.SIGUSR1)
    while tail.poll().hashing_since is None:
        time.sleep(0.05)
    time.sleep(2)
    gen_log = work / "updates.log"
    gen = subprocess.Popen([sys.executable, "-m", "bench.workload", "update", str(src),
                            str(gen_log), "--rate", str(prof.rate), "--duration",
                            str(prof.duration)], env={**os.environ, "PYTHONPATH": str(REPO)},
                           preexec_fn=netmodel.die_with_parent)
    while not (gen_log.exists() and b"!start" in gen_log.read_bytes()[-4096:]):
        if gen.poll() is not None:
            raise RuntimeError("updater failed")
        time.sleep(0.05)
    snap = procstat.snapshot()
    cpu0 = {"tree": tree_cpu(snap), "own": procstat.own_cpu(proc.pid), "dest": dest_cpu(snap),
            "relay": relay_cpu()}
    wire.mark("steady")
    spy = None
    if py_spy and launch.own_python:
        exe = Path(sys.executable).parent / "py-spy"
        spy = subprocess.Popen([str(exe) if exe.exists() else "py-spy", "record",
                                "--pid", str(proc.pid), "--rate", "50",
                                "--nonblocking", "--format", "raw", "-o",
                                str(work / "py-spy.txt")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log(f"{name}: updating at {prof.rate}/s for {prof.duration} s")
    _, _, gen_ru = os.wait4(gen.pid, 0)
    gen.returncode = 0
    gen_cpu = gen_ru.ru_utime + gen_ru.ru_stime
    g = analyze.read_genlog(gen_log)

    # 3. drain
    t_gen_end = time.monotonic()
    pending = {g.rels[i]: d for i, d in g.final.items()}
    deadline = t_gen_end + prof.drain_cap
    while pending and time.monotonic() < deadline:
        o = tail.poll()
        for rel in list(pending):
            arr = o.arrivals.get(rel)
            if arr and any(d == pending[rel] for _, d in arr[-3:]):
                del pending[rel]
        time.sleep(0.2)
    drain = time.monotonic() - t_gen_end
    log(f"{name}: drain {'complete' if not pending else f'capped, {len(pending)} behind'}"
        f" after {drain:.1f} s")
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()

    snap = procstat.snapshot()
    wire.mark("end")
    sampler.sample()
    sampler.stop()
    steady_s = time.monotonic() - g.start
    res.update({
        "cpu_tree_s": tree_cpu(snap),
        "cpu_own_s": procstat.own_cpu(proc.pid),
        "cpu_dest_s": dest_cpu(snap),
        "steady_cpu_tree_s": tree_cpu(snap) - cpu0["tree"],
        "steady_cpu_own_s": procstat.own_cpu(proc.pid) - cpu0["own"],
        "steady_cpu_dest_s": dest_cpu(snap) - cpu0["dest"],
        "steady_seconds": steady_s,
        "peak_rss_tree_mb": sampler.peak_rss.get("tool", 0) / 2**20,
        "peak_rss_own_mb": procstat.vm_hwm(proc.pid) / 2**20,
        "peak_rss_dest_mb": sampler.peak_rss.get("dest", 0) / 2**20,
        "ssh_connections": sshd.connections() - conns0,
        "cpu_relay_s": relay_cpu(),
        "steady_cpu_relay_s": relay_cpu() - cpu0["relay"],
        "drain_s": drain,
        "drain_complete": not pending,
        "updater_cpu_s": gen_cpu,
        "observer_cpu_s": procstat.own_cpu(observer.pid),
    })
    res["steady_own_core_pct"] = 100 * res["steady_cpu_own_s"] / steady_s
    up, down = wire.between("steady", "end")
    res.update({"wire_steady_up_bytes": up, "wire_steady_down_bytes": down,
                "wire_total_up_bytes": wire.between("start", "end")[0],
                "wire_total_down_bytes": wire.between("start", "end")[1]})
    busy1, load1 = procstat.system_busy(), procstat.loadavg()
    wall = time.monotonic() - t_start
    harness = procstat.self_cpu() - self0
    ours = (res["cpu_tree_s"] + res["cpu_dest_s"] + gen_cpu + res["observer_cpu_s"] + harness
            + res["cpu_relay_s"])
    res["machine_load"] = {
        "steal_cpu_s": procstat.system_steal() - steal0,
        "loadavg_start": load0, "loadavg_end": load1,
        "loadavg_1m_max": max(sampler.load_samples or [0.0]),
        "busy_cpu_s": busy1 - busy0, "wall_s": wall,
        "other_cpu_s": max(0.0, busy1 - busy0 - ours),
        "other_cores": max(0.0, busy1 - busy0 - ours) / wall,
    }
    rc, took = stop_group(proc, 15)
    res["exit_code"], res["stop_s"] = rc, took
    observer.send_signal(signal.SIGTERM)
    observer.wait(timeout=10)
    if relay is not None:
        relay.kill()
        relay.wait()

    # 4. join and check
    o = tail.poll()
    lg = analyze.lags(g, o)
    res.update({
        "updates": g.count,
        "updater_rate": g.count / max(1e-9, g.end - g.start) if g.end else None,
        "updater_max_late_s": g.max_late,
        "lag_p50_s": lg.percentile(0.50), "lag_p95_s": lg.percentile(0.95),
        "lag_p99_s": lg.percentile(0.99), "lag_p999_s": lg.percentile(0.999),
        "lag_max_s": lg.percentile(1.0),
        "lag_max_delivered_s": lg.lags[-1] if lg.lags else None,
        "undelivered": lg.undelivered, "unknown_contents": lg.unknown_contents,
        "regressions": lg.regressions, "observer_overflows": o.overflows,
        "observer_watch_failures": o.watch_failures,
    })
    misplaced = []
    for dirpath, _dirs, names in os.walk(sshd.dest):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), sshd.dest)
            if rel not in all_files:
                misplaced.append(rel)
    delivered = g.count - lg.undelivered
    if net and delivered:
        res["wire_up_per_update"] = up / delivered
        res["wire_down_per_update"] = down / delivered
    res["misplaced"] = len(misplaced)
    res["misplaced_examples"] = sorted(misplaced)[:5]
    diff = differences(src, sshd.dest)
    res["differ_after_drain"] = len(diff)
    res["differ_examples"] = diff[:5]
    # the lag sample, thinned for the plot
    step = max(1, len(lg.lags) // 4000)
    res["lag_sample"] = [round(x, 4) for x in lg.lags[::step]]
    res["reported"] = reported_events(work / "tool.log")
    sshd.stop()
    for cg in (tool_cg, dest_cg, relay_cg):
        if cg:
            cg.close()
    shutil.rmtree(sshd.dest, ignore_errors=True)
    log(f"{name}: p50 {res['lag_p50_s']:.2f} p99 {res['lag_p99_s']:.2f} "
        f"p99.9 {res['lag_p999_s']:.2f} s, undelivered {lg.undelivered}, "
        f"misplaced {len(misplaced)}, ssh {res['ssh_connections']}, "
        f"cpu tree {res['cpu_tree_s']:.1f} s, dest {res['cpu_dest_s']:.1f} s"
        + (f", wire/update up {res.get('wire_up_per_update', 0):.0f} B down "
           f"{res.get('wire_down_per_update', 0):.0f} B, relay cpu {res['cpu_relay_s']:.1f} s"
           if net else ""))
    return res


def reported_events(path: Path) -> dict:
    """What rrdsync said about itself: startup reconciliation time, batches, errors."""
    out: dict = {"batches": 0, "errors": 0}
    with open(path, "rb") as f:
        for raw in f:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(ev, dict):
                continue
            name = ev.get("event")
            if name == "reconcile_finished" and ev.get("reason") == "startup":
                out["startup_reconcile_s"] = ev.get("duration_s")
            elif name == "sync_summary":
                out["batches"] += int(ev.get("batches") or 0)
            elif name == "watch_overflow":
                out["watch_overflows"] = out.get("watch_overflows", 0) + 1
            if ev.get("level") in ("ERROR", "CRITICAL"):
                out["errors"] += 1
    return out


def prepare_source(files: int, root: Path, fresh: bool,
                   empty: bool = False) -> tuple[Path, dict]:
    """The profile's source tree, built once and reused while its rows model is current.
    Profiles with the same file count share one tree (``tree-<files>``)."""
    base = root / (f"tree-{files}" + ("-empty" if empty else ""))
    src = base / "src"
    marker = base / "tree.json"
    facts: dict = {}
    if marker.exists():
        facts = json.loads(marker.read_text())
    model = EMPTY_MODEL if empty else ROWS_MODEL
    if fresh or facts.get("rows_model") != model or facts.get("files") != files:
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True)
        os.chmod(root, 0o755)
        os.chmod(base, 0o755)
        log(f"building {files} RRD files under {src}")
        facts = build_tree(src, files, fill=not empty)
        marker.write_text(json.dumps(facts))
    return src, facts


def parse_link(text: str) -> Link | None:
    """``none`` (loopback) or ``RATE_MBIT:RTT_MS``, e.g. ``20:40``."""
    if text == "none":
        return None
    rate, rtt = text.split(":")
    return Link(rate_mbit=float(rate), rtt_ms=float(rtt))


def _terminate(_sig: int, _frame: object) -> None:
    raise SystemExit(143)  # unwinds through the finally blocks that remove the namespace


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("fanout-"):  # several destinations: bench.fanout
        from bench import fanout
        return fanout.main(argv)
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0],
                                 epilog="fanout-tiny, fanout-small, fanout-20k: one rrdsync "
                                 "to two destinations, one stopped halfway (python -m bench "
                                 "fanout-small --help)")
    ap.add_argument("profile", choices=sorted(PROFILES))
    ap.add_argument("--tools", help="comma-separated subset of: " + ", ".join(ALL_Z) +
                    "; rrdsync+SETTLE=100ms+... runs rrdsync with RRDSYNC_* settings changed")
    ap.add_argument("--compression", action="store_true",
                    help="compare rrdsync's compression choices instead: rrdsync, "
                    + ", ".join(tools.COMPRESSION))
    ap.add_argument("--rows", choices=("filled", "empty"), default="filled",
                    help="filled: every RRD its own rows (default); empty: identical fresh "
                    "rrdtool create copies, the workload of the runs before issue 12")
    ap.add_argument("--dest-fs", choices=("ext4", "scratch"), default="ext4",
                    help="ext4: destinations on a fresh journaled ext4 (loop device, the "
                    "default); scratch: in the scratch directory's filesystem")
    ap.add_argument("--link",
                    help="RATE_MBIT:RTT_MS (e.g. 20:40) or none: override the profile's path")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/rrdsync-bench"),
                    help="where trees and per-tool work dirs go (default %(default)s)")
    ap.add_argument("--out", type=Path, help="results dir (default bench/results/<profile>)")
    ap.add_argument("--fresh", action="store_true", help="rebuild the source tree")
    ap.add_argument("--py-spy", action="store_true", help="profile rrdsync with py-spy")
    ap.add_argument("--rate", type=float, help="override the profile's update rate")
    ap.add_argument("--duration", type=float, help="override the profile's duration")
    a = ap.parse_args(argv)
    prof = PROFILES[a.profile]
    if a.rate or a.duration or a.link:
        prof = Profile(prof.name, prof.files, a.rate or prof.rate, a.duration or prof.duration,
                       prof.drain_cap, prof.initial_cap, prof.tools,
                       parse_link(a.link) if a.link else prof.link)
    names = a.tools.split(",") if a.tools else list(prof.tools)
    if a.compression:
        names = ["rrdsync", *tools.COMPRESSION]
    for n in names:
        try:
            tools.variant(n)
        except KeyError:
            ap.error(f"unknown tool {n!r}")
    suffix = ("-compression" if a.compression else "") + (f"-link{a.link}" if a.link else "") \
        + ("-empty-rows" if a.rows == "empty" else "")
    out = a.out or REPO / "bench" / "results" / (prof.name + suffix.replace(":", "-"))
    out.mkdir(parents=True, exist_ok=True)
    a.scratch.mkdir(parents=True, exist_ok=True)
    os.chmod(a.scratch, 0o755)  # the destination's user walks through it to its directory
    signal.signal(signal.SIGTERM, _terminate)
    src, tree = prepare_source(prof.files, a.scratch, a.fresh, empty=a.rows == "empty")
    expected = included_files(src)
    all_files = set(expected)
    base = a.scratch / prof.name / "runs" / time.strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True)
    os.chmod(base.parent.parent, 0o755)
    os.chmod(base.parent, 0o755)
    os.chmod(base, 0o755)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results: list[dict] = []
    doc = {"profile": asdict(prof), "started": started, "machine": machine(), "tree": tree,
           "source_files": len(expected), "work_dir": str(base), "results": results}
    # destinations: twice one tree (a tool's is deleted before the next starts) + 1 GiB
    fs_size = prof.files * (38_232 + 2 * 4096) * 2 + (1 << 30)
    with contextlib.ExitStack() as stack:
        dest_root = None
        if a.dest_fs == "ext4":
            try:
                dest_root = stack.enter_context(destfs.DestFs(base, fs_size))
                doc["dest_fs"] = "ext4 on a loop device: " + destfs.DestFs.describe(dest_root)
            except (OSError, subprocess.CalledProcessError) as e:
                err = getattr(e, "stderr", b"") or str(e)
                err = err.decode(errors="replace") if isinstance(err, bytes) else err
                log(f"no loop-mounted ext4 for the destinations ({err.strip()}): using the "
                    "scratch directory")
                doc["dest_fs"] = f"scratch directory (loop-mounted ext4 failed: {err.strip()})"
        else:
            doc["dest_fs"] = "scratch directory"
        run_all(names, prof, src, base, expected, all_files, a.py_spy, dest_root, doc, out)
    log(f"results in {out}")
    return 0


def run_all(names: list[str], prof: Profile, src: Path, base: Path, expected: list[str],
            all_files: set[str], py_spy: bool, dest_root: Path | None, doc: dict,
            out: Path) -> None:
    results = doc["results"]
    net = NetModel(prof.link).up() if prof.link else None
    try:
        if net:
            cal = netmodel.calibrate(net)
            doc["network"] = {"link": asdict(net.link), "namespace": net.ns,
                              "host_if": net.host_if, "addresses": [net.host_ip, net.ns_ip],
                              "calibration": cal}
            log(f"network model {net.link.describe()}: {net.ns}, relay delay "
                f"{cal['delay_ms']:.3f} ms per direction")
        for n in names:
            results.append(run_tool(n, prof, src, base, expected, all_files, py_spy, net,
                                    dest_root))
            report.write(doc, out)  # after each tool: a later failure keeps what was measured
    finally:
        if net:
            net.down()


if __name__ == "__main__":
    raise SystemExit(main())
