"""The benchmark driver: every tool, one after the other, on the same workload and machine.

For each tool: a fresh private sshd on 127.0.0.1 with an empty destination directory, the
observer on that directory, then the tool. Phases:

1. initial sync: from the tool's start until every source file has arrived and the
   destination is byte-identical to the source (checked by comparing every file);
2. updates: the updater rewrites RRD files at the profile's rate for its duration;
3. drain: until the destination holds the last version of every updated file, capped.

Then the tool is stopped and the logs are joined (``bench.analyze``). CPU is read from
/proc for the tool's whole process tree, for its own process, and for the destination's
sshd tree (sshd + the rsync servers it ran); see ``bench.procstat``.
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

from bench import analyze, procstat, report, tools
from bench.tools import REPO, Target
from bench.workload import build_tree

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


ALL = ("rrdsync", "lsyncd-delay1", "lsyncd-default", "rsync-loop-10s", "perfile-watchdog")
PROFILES = {p.name: p for p in [
    Profile("tiny", 200, 20, 10, 20, 60, ("rrdsync", "lsyncd-delay1")),
    Profile("small", 2_000, 50, 60, 30, 180, ALL),
    Profile("opennms-20k", 20_000, 200, 180, 60, 600, ALL),
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


def run_tool(name: str, prof: Profile, src: Path, base: Path, expected: list[str],
             all_files: set[str], py_spy: bool) -> dict:
    work = base / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    os.chmod(work, 0o755)
    sshd = Sshd(workdir=work / "sshd", dest=work / "dest")
    sshd.start()
    assert sshd.proc is not None
    tool_cg = procstat.CpuGroup.make(f"{name}-tool")
    dest_cg = procstat.CpuGroup.make(f"{name}-dest")
    if dest_cg:
        dest_cg.add(sshd.proc.pid)
    target = Target(src=src, user="rrdsync-t", port=sshd.port, key=sshd.client_key,
                    known_hosts=sshd.known_hosts, dest=sshd.dest, workdir=work)
    launch = tools.variant(name)(target)
    res: dict = {"tool": name, "argv": launch.argv,
                 "cpu_method": "cgroup" if tool_cg and dest_cg else "procfs"}
    obs_log = work / "observer.log"
    observer = subprocess.Popen([sys.executable, "-m", "bench.observer", str(sshd.dest),
                                 str(obs_log)], env={**os.environ, "PYTHONPATH": str(REPO)})
    tail = Tail(obs_log)
    deadline = time.monotonic() + 30
    while not (obs_log.exists() and b"!ready" in obs_log.read_bytes()):
        if time.monotonic() > deadline:
            raise RuntimeError("observer did not start")
        time.sleep(0.05)

    busy0, load0, self0 = procstat.system_busy(), procstat.loadavg(), procstat.self_cpu()
    t_start = time.monotonic()
    out = open(work / "tool.log", "wb")  # noqa: SIM115
    argv = launch.argv
    if tool_cg:
        argv = [sys.executable, "-m", "bench.cgexec", str(tool_cg.procs), *argv]
    proc = subprocess.Popen(argv, env=launch.env, stdout=out, stderr=subprocess.STDOUT,
                            cwd=str(REPO), start_new_session=True)
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

    def tree_cpu(snap: dict[int, procstat.Proc]) -> float:
        return tool_cg.cpu() if tool_cg else procstat.tree_cpu(snap, proc.pid)

    def dest_cpu(snap: dict[int, procstat.Proc]) -> float:
        assert sshd.proc is not None
        return dest_cg.cpu() if dest_cg else procstat.tree_cpu(snap, sshd.proc.pid)

    res["initial_cpu_tree_s"] = tree_cpu(procstat.snapshot())
    res["initial_cpu_dest_s"] = dest_cpu(procstat.snapshot())
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
                            str(prof.duration)], env={**os.environ, "PYTHONPATH": str(REPO)})
    while not (gen_log.exists() and b"!start" in gen_log.read_bytes()[-4096:]):
        if gen.poll() is not None:
            raise RuntimeError("updater failed")
        time.sleep(0.05)
    snap = procstat.snapshot()
    cpu0 = {"tree": tree_cpu(snap), "own": procstat.own_cpu(proc.pid), "dest": dest_cpu(snap)}
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
        "ssh_connections": sshd.connections(),
        "drain_s": drain,
        "drain_complete": not pending,
        "updater_cpu_s": gen_cpu,
        "observer_cpu_s": procstat.own_cpu(observer.pid),
    })
    res["steady_own_core_pct"] = 100 * res["steady_cpu_own_s"] / steady_s
    busy1, load1 = procstat.system_busy(), procstat.loadavg()
    wall = time.monotonic() - t_start
    harness = procstat.self_cpu() - self0
    ours = res["cpu_tree_s"] + res["cpu_dest_s"] + gen_cpu + res["observer_cpu_s"] + harness
    res["machine_load"] = {
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

    # 4. join and check
    o = tail.poll()
    lg = analyze.lags(g, o)
    res.update({
        "updates": g.count,
        "updater_rate": g.count / max(1e-9, g.end - g.start) if g.end else None,
        "updater_max_late_s": g.max_late,
        "lag_p50_s": lg.percentile(0.50), "lag_p95_s": lg.percentile(0.95),
        "lag_p99_s": lg.percentile(0.99), "lag_max_s": lg.percentile(1.0),
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
    for cg in (tool_cg, dest_cg):
        if cg:
            cg.close()
    shutil.rmtree(sshd.dest, ignore_errors=True)
    log(f"{name}: p50 {res['lag_p50_s']:.2f} p99 {res['lag_p99_s']:.2f} s, "
        f"undelivered {lg.undelivered}, misplaced {len(misplaced)}, "
        f"ssh {res['ssh_connections']}, cpu tree {res['cpu_tree_s']:.1f} s, "
        f"dest {res['cpu_dest_s']:.1f} s")
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


def prepare_source(prof: Profile, root: Path, fresh: bool) -> Path:
    base = root / prof.name
    src = base / "src"
    marker = base / "tree.json"
    if fresh or not marker.exists():
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True)
        os.chmod(root, 0o755)
        os.chmod(base, 0o755)
        log(f"building {prof.files} RRD files under {src}")
        build_tree(src, prof.files)
        marker.write_text(json.dumps({"files": prof.files}))
    return src


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("profile", choices=sorted(PROFILES))
    ap.add_argument("--tools", help="comma-separated subset of: " + ", ".join(ALL) +
                    "; rrdsync+SETTLE=100ms+... runs rrdsync with RRDSYNC_* settings changed")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/rrdsync-bench"),
                    help="where trees and per-tool work dirs go (default %(default)s)")
    ap.add_argument("--out", type=Path, help="results dir (default bench/results/<profile>)")
    ap.add_argument("--fresh", action="store_true", help="rebuild the source tree")
    ap.add_argument("--py-spy", action="store_true", help="profile rrdsync with py-spy")
    ap.add_argument("--rate", type=float, help="override the profile's update rate")
    ap.add_argument("--duration", type=float, help="override the profile's duration")
    a = ap.parse_args(argv)
    prof = PROFILES[a.profile]
    if a.rate or a.duration:
        prof = Profile(prof.name, prof.files, a.rate or prof.rate, a.duration or prof.duration,
                       prof.drain_cap, prof.initial_cap, prof.tools)
    names = a.tools.split(",") if a.tools else list(prof.tools)
    for n in names:
        try:
            tools.variant(n)
        except KeyError:
            ap.error(f"unknown tool {n!r}")
    out = a.out or REPO / "bench" / "results" / prof.name
    out.mkdir(parents=True, exist_ok=True)
    a.scratch.mkdir(parents=True, exist_ok=True)
    src = prepare_source(prof, a.scratch, a.fresh)
    expected = included_files(src)
    all_files = set(expected)
    base = a.scratch / prof.name / "runs" / time.strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True)
    os.chmod(base.parent, 0o755)
    os.chmod(base, 0o755)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results = []
    doc = {"profile": asdict(prof), "started": started, "machine": machine(),
           "source_files": len(expected), "work_dir": str(base), "results": results}
    for n in names:
        results.append(run_tool(n, prof, src, base, expected, all_files, a.py_spy))
        report.write(doc, out)  # after each tool: a later failure keeps what was measured
    log(f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
