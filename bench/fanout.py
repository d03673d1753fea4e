"""Several destinations (issue 11): one rrdsync to two sshd, one of them stopped for a while.

``python -m bench fanout-20k`` runs, in one invocation and on the same source tree:

1. ``single``: rrdsync with the ``opennms-20k`` settings (every setting at its default,
   ``host:/path`` with ``RRDSYNC_SSH_PORT``) to one destination, no outage: the baseline
   of "sender CPU <= 2x one destination";
2. ``fanout``: the same rrdsync to two destinations (``RRDSYNC_DEST=ssh://…:PORT_A/…,
   ssh://…:PORT_B/…``, one client key, one known_hosts with both host keys). Halfway
   through the update phase destination ``b``'s sshd is killed — the listener *and* its
   established sessions (``Sshd.stop()``: a host that went away, not a polite close) — and
   started again ``outage_s`` later on the same port with the same host key.

Each destination is a private sshd (``bench.netmodel.BenchSshd``, plain, on 127.0.0.1) with
its own fresh journaled ext4 (``bench.destfs``: two receivers are two servers with two
disks), its own observer process (``bench.observer``) and its own CPU cgroup, which sshd
joins before its first instruction, on the restart too. The updater's log is joined with
each destination's observer log (``bench.analyze.deliveries``); every update is then placed
by the time it was made: *before* the outage, *during* it (the sshd down), *after* it
returned. Per destination: lag percentiles per period, catch-up (from the return until the
stopped destination holds every update made before the return), nothing lost, SSH
connections, receiver CPU; for the sender, rrdsync's whole tree (ssh and rsync included)
and its own process, whole run, steady phase and per period.

Nothing here runs over the network model: the loopback numbers are what ``opennms-20k``
measures, which is what the baseline is for.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from bench import analyze, destfs, netmodel, procstat, report, tools
from bench.netmodel import BenchSshd
from bench.run import Tail, log, machine, prepare_source, stop_group
from bench.tools import REPO, Target

sys.path.insert(0, str(REPO))
from tests.fixtures.rrd import differences, included_files

# the bar (issue 11)
HEALTHY_P99_RATIO = 1.10  # the healthy destination's p99 during the outage / before it
CATCH_UP_S = 30.0  # the stopped one holds everything made before its return within this
SENDER_CPU_RATIO = 2.0  # two destinations' sender CPU / one destination's, same invocation


@dataclass(frozen=True)
class FanoutProfile:
    name: str
    files: int
    rate: float
    duration: float
    drain_cap: float  # from the end of the updates (or the return, if later)
    initial_cap: float
    outage_s: float
    outage_at: float = 0.5  # fraction of the update phase when destination b is stopped
    quiet_s: float = 2.0  # pause between the observers' switch to hashing and the updates


PROFILES = {p.name: p for p in [
    # the smoke test (tests/bench/test_fanout.py): seconds, not a measurement
    FanoutProfile("fanout-tiny", 50, 20, 6, 20, 60, outage_s=2, quiet_s=0.5),
    FanoutProfile("fanout-small", 2_000, 50, 30, 30, 180, outage_s=10),
    # opennms-20k's workload: 20,000 RRDs, 200 updates/s for 180 s, drain capped at 60 s
    FanoutProfile("fanout-20k", 20_000, 200, 180, 60, 600, outage_s=60),
]}


@dataclass
class Dest:
    """One destination: its sshd, filesystem, observer and CPU group."""

    name: str
    sshd: BenchSshd
    cg: procstat.CpuGroup | None
    obs_log: Path
    observer: subprocess.Popen | None = None
    tail: Tail | None = None
    conns0: int = 0
    label: str = ""
    marks: dict[str, float] = field(default_factory=dict)  # receiver CPU at the phase marks

    def cpu(self) -> float:
        if self.cg:
            return self.cg.cpu()
        return procstat.tree_cpu(procstat.snapshot(), self.sshd.proc.pid) if self.sshd.proc \
            else 0.0


def _start_observer(d: Dest) -> None:
    d.observer = subprocess.Popen([sys.executable, "-m", "bench.observer", str(d.sshd.dest),
                                   str(d.obs_log)],
                                  env={**os.environ, "PYTHONPATH": str(REPO)},
                                  preexec_fn=netmodel.die_with_parent)
    d.tail = Tail(d.obs_log)


def _wait_ready(d: Dest) -> None:
    deadline = time.monotonic() + 30
    while not (d.obs_log.exists() and b"!ready" in d.obs_log.read_bytes()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"observer of {d.name} did not start")
        time.sleep(0.05)


def _pct(lg: analyze.Lags) -> dict:
    return {"updates": lg.total, "undelivered": lg.undelivered,
            "p50_s": lg.percentile(0.50), "p95_s": lg.percentile(0.95),
            "p99_s": lg.percentile(0.99), "p999_s": lg.percentile(0.999),
            "max_s": lg.percentile(1.0)}


def _when(text: str | None) -> float | None:
    """An rrdsync log line's ``time`` (RFC 3339 UTC) as a Unix time."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def reported_events(path: Path) -> dict[str, dict]:
    """What rrdsync said per destination label: batches, failed sends, SSH connects, and
    the Unix times it logged ``destination_recovered``."""
    out: dict[str, dict] = {}
    with open(path, "rb") as f:
        for raw in f:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(ev, dict) or not ev.get("destination"):
                continue
            r = out.setdefault(str(ev["destination"]), {
                "batches": 0, "send_failed": 0, "ssh_connected": 0, "recovered_at": []})
            name = ev.get("event")
            if name == "sync_summary":
                r["batches"] += int(ev.get("batches") or 0)
            elif name == "send_failed":
                r["send_failed"] += 1
            elif name == "ssh_connected":
                r["ssh_connected"] += 1
            elif name == "destination_recovered":
                t = _when(ev.get("time"))
                if t is not None:
                    r["recovered_at"].append(t)
            elif name == "reconcile_finished" and ev.get("reason") == "startup":
                r["startup_reconcile_s"] = ev.get("duration_s")
    return out


def run_case(case: str, prof: FanoutProfile, src: Path, base: Path, expected: list[str],
             all_files: set[str], dest_roots: list[Path], outage: bool,
             py_spy: bool = False) -> dict:
    """One rrdsync to ``len(dest_roots)`` destinations; with ``outage`` the last one's sshd
    is stopped for ``prof.outage_s`` halfway through the updates."""
    work = base / case
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    os.chmod(work, 0o755)
    names = ["a", "b", "c", "d"][:len(dest_roots)]
    dests: list[Dest] = []
    for n, root in zip(names, dest_roots, strict=True):
        sshd = BenchSshd(workdir=work / f"sshd-{n}", dest=root / "dest")
        cg = procstat.CpuGroup.make(f"{case}-dest-{n}")
        if cg:
            sshd.cgroup_procs = cg.procs
        dests.append(Dest(n, sshd, cg, work / f"observer-{n}.log"))
    # one client key and one known_hosts for every destination, as an operator has them
    first = dests[0].sshd
    known = work / "known_hosts"
    known.write_text("".join(d.sshd.known_hosts.read_text() for d in dests))
    for d in dests[1:]:
        d.sshd.client_key = first.client_key
        d.sshd.write_authorized_keys()
    for d in dests:
        d.sshd.start()
        d.conns0 = d.sshd.connections()
    target = Target(src=src, user="rrdsync-t", port=first.port, key=first.client_key,
                    known_hosts=first.known_hosts, dest=first.dest, workdir=work)
    launch = tools.rrdsync(target)  # opennms-20k's settings: every tuning at its default
    if len(dests) > 1:
        entries = [f"ssh://rrdsync-t@127.0.0.1:{d.sshd.port}{d.sshd.dest}" for d in dests]
        launch.env["RRDSYNC_DEST"] = ",".join(entries)
        launch.env["RRDSYNC_KNOWN_HOSTS"] = str(known)
        del launch.env["RRDSYNC_SSH_PORT"]  # every entry names its own
        for d, e in zip(dests, entries, strict=True):
            d.label = e.replace("rrdsync-t@", "")
    else:
        first_label = launch.env["RRDSYNC_DEST"].replace("rrdsync-t@", "")
        dests[0].label = first_label
    tool_cg = procstat.CpuGroup.make(f"{case}-tool")
    res: dict = {"case": case, "argv": launch.argv, "rrdsync_dest": launch.env["RRDSYNC_DEST"],
                 "cpu_method": "cgroup" if tool_cg and all(d.cg for d in dests) else "procfs"}
    for d in dests:
        _start_observer(d)
    for d in dests:
        _wait_ready(d)

    busy0, load0, self0 = procstat.system_busy(), procstat.loadavg(), procstat.self_cpu()
    steal0 = procstat.system_steal()
    t_start = time.monotonic()
    out = open(work / "tool.log", "wb")  # noqa: SIM115
    argv = launch.argv
    if tool_cg:
        argv = [sys.executable, "-m", "bench.cgexec", str(tool_cg.procs), *argv]
    proc = subprocess.Popen(argv, env=launch.env, stdout=out, stderr=subprocess.STDOUT,
                            cwd=str(REPO), start_new_session=True,
                            preexec_fn=netmodel.die_with_parent)
    out.close()
    roots = {"tool": proc.pid}
    for d in dests:
        assert d.sshd.proc is not None
        roots[f"dest-{d.name}"] = d.sshd.proc.pid
    sampler = procstat.Sampler(roots).start()

    def tree_cpu() -> float:
        return tool_cg.cpu() if tool_cg else procstat.tree_cpu(procstat.snapshot(), proc.pid)

    cpu_marks: dict[str, tuple[float, float, float]] = {}  # name -> (time, tree, own)

    def mark(name: str) -> None:
        cpu_marks[name] = (time.monotonic(), tree_cpu(), procstat.own_cpu(proc.pid))
        for d in dests:
            d.marks[name] = d.cpu()

    mark("start")
    log(f"{case}: rrdsync started (pid {proc.pid}) to {len(dests)} destination(s), waiting "
        f"for the initial sync of {len(expected)} files")

    # 1. initial sync, every destination
    want = set(expected)
    initial: dict[str, float | None] = {d.name: None for d in dests}
    next_check = {d.name: 0.0 for d in dests}
    deadline = t_start + prof.initial_cap
    while time.monotonic() < deadline and any(v is None for v in initial.values()):
        if proc.poll() is not None:
            log(f"{case}: rrdsync exited early with {proc.returncode}")
            break
        for d in dests:
            assert d.tail is not None
            if initial[d.name] is not None:
                continue
            o = d.tail.poll()
            seen_all = want.issubset(o.first_seen.keys())
            if (seen_all or o.watch_failures) and time.monotonic() >= next_check[d.name]:
                if not differences(src, d.sshd.dest):
                    seen = d.tail.poll().first_seen
                    initial[d.name] = (max(seen[r] for r in want) if want.issubset(seen.keys())
                                       else time.monotonic()) - t_start
                else:
                    next_check[d.name] = time.monotonic() + (2 if seen_all else 5)
        time.sleep(0.2)
    mark("initial")
    for d in dests:
        v = initial[d.name]
        log(f"{case}: {d.name} initial sync {f'{v:.1f} s' if v is not None else 'NOT reached'}")
    if proc.poll() is not None:
        sampler.stop()
        text = (work / "tool.log").read_text(errors="replace").strip().splitlines()
        res["failed"] = f"exited with {proc.returncode}: " + " ".join(text[-3:])[-400:]
        _teardown(dests, tool_cg)
        return res

    # 2. updates, with the outage halfway through
    os.sync()  # what the initial sync left dirty would be written back mid-run otherwise
    for d in dests:
        assert d.observer is not None and d.tail is not None
        d.observer.send_signal(signal.SIGUSR1)
    for d in dests:
        assert d.tail is not None
        while d.tail.poll().hashing_since is None:
            time.sleep(0.05)
    time.sleep(prof.quiet_s)
    gen_log = work / "updates.log"
    gen = subprocess.Popen([sys.executable, "-m", "bench.workload", "update", str(src),
                            str(gen_log), "--rate", str(prof.rate), "--duration",
                            str(prof.duration)], env={**os.environ, "PYTHONPATH": str(REPO)},
                           preexec_fn=netmodel.die_with_parent)
    t0 = None
    while t0 is None:
        if gen.poll() is not None:
            raise RuntimeError("updater failed")
        if gen_log.exists():
            for line in gen_log.read_bytes()[-4096:].splitlines():
                if line.startswith(b"!start\t"):
                    t0 = float(line.split(b"\t")[1])
        time.sleep(0.02)
    mark("steady")
    spy = None
    if py_spy:
        exe = Path(sys.executable).parent / "py-spy"
        spy = subprocess.Popen([str(exe) if exe.exists() else "py-spy", "record",
                                "--pid", str(proc.pid), "--rate", "50", "--nonblocking",
                                "--format", "raw", "-o", str(work / "py-spy.txt")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stopped = dests[-1] if outage else None
    t_stop = t0 + prof.duration * prof.outage_at
    t_stopped = t_returned = None
    wall_returned = None
    log(f"{case}: updating at {prof.rate:g}/s for {prof.duration:g} s"
        + (f"; {stopped.name}'s sshd down from {t_stop - t0:.0f} s for {prof.outage_s:g} s"
           if stopped else ""))
    gen_cpu = None
    t_gen_end = None
    while True:
        now = time.monotonic()
        if stopped is not None and t_stopped is None and now >= t_stop:
            mark("outage")
            t_stopped = time.monotonic()
            stopped.sshd.stop()  # the listener and every established session, SIGKILL
            res["stop_took_s"] = time.monotonic() - t_stopped
            log(f"{case}: {stopped.name}'s sshd stopped")
        elif stopped is not None and t_stopped is not None and t_returned is None \
                and now >= t_stopped + prof.outage_s:
            t_begin = time.monotonic()
            stopped.sshd.start()  # same port, same host key, same destination
            t_returned, wall_returned = time.monotonic(), time.time()
            res["start_took_s"] = t_returned - t_begin
            assert stopped.sshd.proc is not None
            sampler.roots[f"dest-{stopped.name}"] = stopped.sshd.proc.pid
            mark("return")
            log(f"{case}: {stopped.name}'s sshd listening again")
        if gen_cpu is None:
            pid, status, ru = os.wait4(gen.pid, os.WNOHANG)
            if pid:
                gen.returncode = os.waitstatus_to_exitcode(status)
                gen_cpu = ru.ru_utime + ru.ru_stime
                t_gen_end = time.monotonic()
                mark("updates_end")
        if gen_cpu is not None and (stopped is None or t_returned is not None):
            break
        time.sleep(0.02)
    assert t_gen_end is not None
    g = analyze.read_genlog(gen_log)

    # 3. drain: every destination holds the last version of every updated file
    t_drain0 = max(t_gen_end, t_returned or 0.0)
    deadline = t_drain0 + prof.drain_cap
    final = {g.rels[i]: dg for i, dg in g.final.items()}
    pending = {d.name: dict(final) for d in dests}
    drained_at: dict[str, float] = {}
    while any(pending.values()) and time.monotonic() < deadline:
        for d in dests:
            assert d.tail is not None
            left = pending[d.name]
            if not left:
                continue
            o = d.tail.poll()
            for rel in list(left):
                arr = o.arrivals.get(rel)
                if arr and any(dg == left[rel] for _, dg in arr[-3:]):
                    del left[rel]
            if not left:
                drained_at[d.name] = time.monotonic() - t_gen_end
        time.sleep(0.2)
    drain = time.monotonic() - t_gen_end
    behind = {n: len(v) for n, v in pending.items() if v}
    log(f"{case}: drain " + (f"capped, behind {behind}" if behind else "complete")
        + f" after {drain:.1f} s")
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
    mark("end")
    sampler.sample()
    sampler.stop()

    # sender
    t_end, tree_end, own_end = cpu_marks["end"]
    _, tree_init, _ = cpu_marks["initial"]
    ts, tree_s, own_s = cpu_marks["steady"]
    sender: dict = {
        "cpu_tree_s": tree_end, "cpu_own_s": own_end, "initial_cpu_tree_s": tree_init,
        "steady_cpu_tree_s": tree_end - tree_s, "steady_cpu_own_s": own_end - own_s,
        "steady_seconds": t_end - ts,
        "peak_rss_tree_mb": sampler.peak_rss.get("tool", 0) / 2**20,
        "peak_rss_own_mb": procstat.vm_hwm(proc.pid) / 2**20,
    }
    sender["steady_own_core_pct"] = 100 * sender["steady_cpu_own_s"] / max(1e-9, t_end - ts)
    sender["periods"] = _periods(cpu_marks, ["steady", "outage", "return", "updates_end", "end"])
    observer_cpu = sum(procstat.own_cpu(d.observer.pid) for d in dests if d.observer)
    res["sender"] = sender
    busy1, load1 = procstat.system_busy(), procstat.loadavg()
    wall = time.monotonic() - t_start
    harness = procstat.self_cpu() - self0
    ours = tree_end + sum(d.marks["end"] for d in dests) + (gen_cpu or 0.0) + observer_cpu \
        + harness
    res["machine_load"] = {
        "steal_cpu_s": procstat.system_steal() - steal0,
        "loadavg_start": load0, "loadavg_end": load1,
        "loadavg_1m_max": max(sampler.load_samples or [0.0]),
        "busy_cpu_s": busy1 - busy0, "wall_s": wall,
        "other_cpu_s": max(0.0, busy1 - busy0 - ours),
        "other_cores": max(0.0, busy1 - busy0 - ours) / wall,
    }
    rc, took = stop_group(proc, 15)
    res.update({"exit_code": rc, "stop_s": took, "updater_cpu_s": gen_cpu,
                "observer_cpu_s": observer_cpu, "updates": g.count,
                "updater_rate": g.count / max(1e-9, g.end - g.start) if g.end else None,
                "updater_max_late_s": g.max_late, "drain_s": drain,
                "drain_complete": not behind})
    if stopped is not None:
        assert t_stopped is not None and t_returned is not None
        res["outage"] = {"destination": stopped.name, "label": stopped.label,
                         "stop_s": t_stopped - t0, "return_s": t_returned - t0,
                         "length_s": t_returned - t_stopped}
    reported = reported_events(work / "tool.log")

    # 4. join per destination
    res["destinations"] = []
    for d in dests:
        assert d.observer is not None and d.tail is not None
        d.observer.send_signal(signal.SIGTERM)
        d.observer.wait(timeout=10)
        o = d.tail.poll()
        dl = analyze.deliveries(g, o)
        r: dict = {"name": d.name, "label": d.label, "port": d.sshd.port,
                   "role": ("stopped" if d is stopped else "healthy" if stopped else "single"),
                   "initial_sync_s": initial[d.name],
                   "drained_after_updates_s": drained_at.get(d.name),
                   "unknown_contents": dl.unknown_contents, "regressions": dl.regressions,
                   "observer_overflows": o.overflows,
                   "observer_watch_failures": o.watch_failures}
        r["all"] = _pct(dl.window())
        if stopped is not None:
            assert t_stopped is not None and t_returned is not None
            r["before"] = _pct(dl.window(-math.inf, t_stopped))
            r["during"] = _pct(dl.window(t_stopped, t_returned))
            r["after"] = _pct(dl.window(t_returned, math.inf))
        if d is stopped:
            assert t_returned is not None and wall_returned is not None
            made = [t + lag for t, lag in dl.records if t < t_returned]
            r["catch_up_s"] = max(0.0, max(made) - t_returned) if made else 0.0
            later = [t for arr in o.arrivals.values() for t, _ in arr if t >= t_returned]
            r["first_arrival_after_return_s"] = min(later) - t_returned if later else None
            rec = [t for t in reported.get(d.label, {}).get("recovered_at", [])
                   if t >= wall_returned - 1]
            r["recovered_logged_after_return_s"] = min(rec) - wall_returned if rec else None
        r["undelivered"] = r["all"]["undelivered"]
        misplaced, temps = [], []
        for dirpath, _dirs, files in os.walk(d.sshd.dest):
            for fn in files:
                rel = os.path.relpath(os.path.join(dirpath, fn), d.sshd.dest)
                if rel not in all_files:
                    (temps if fn.startswith(".") else misplaced).append(rel)
        r["misplaced"], r["misplaced_examples"] = len(misplaced), sorted(misplaced)[:5]
        r["temp_leftovers"], r["temp_examples"] = len(temps), sorted(temps)[:5]
        diff = differences(src, d.sshd.dest)
        r["differ_after_drain"], r["differ_examples"] = len(diff), diff[:5]
        r["ssh_connections"] = d.sshd.connections() - d.conns0
        r["cpu_dest_s"] = d.marks["end"] - d.marks["start"]
        r["initial_cpu_dest_s"] = d.marks["initial"] - d.marks["start"]
        r["steady_cpu_dest_s"] = d.marks["end"] - d.marks["steady"]
        r["peak_rss_dest_mb"] = sampler.peak_rss.get(f"dest-{d.name}", 0) / 2**20
        r["reported"] = {k: v for k, v in reported.get(d.label, {}).items()
                         if k != "recovered_at"}
        # (seconds since the first update, lag or inf), thinned for the plot
        step = max(1, len(dl.records) // 4000)
        r["lag_sample"] = [(round(t - t0, 3), round(lag, 4) if not math.isinf(lag) else lag)
                           for t, lag in sorted(dl.records)[::step]]
        res["destinations"].append(r)
        a = r["all"]
        log(f"{case}: {d.name} ({r['role']}) p50 {a['p50_s']:.2f} p99 {a['p99_s']:.2f} max "
            f"{a['max_s']:.2f} s, undelivered {a['undelivered']}/{a['updates']}, differ "
            f"{len(diff)}, ssh {r['ssh_connections']}, receiver cpu {r['cpu_dest_s']:.1f} s"
            + (f", catch-up {r['catch_up_s']:.1f} s" if "catch_up_s" in r else ""))
    log(f"{case}: sender cpu tree {sender['cpu_tree_s']:.1f} s (steady "
        f"{sender['steady_cpu_tree_s']:.1f} s), own {sender['cpu_own_s']:.1f} s")
    _teardown(dests, tool_cg)
    return res


def _periods(marks: dict[str, tuple[float, float, float]], order: list[str]) -> list[dict]:
    """Sender CPU between consecutive marks, as seconds and cores."""
    out = []
    seq = [m for m in order if m in marks]
    for a, b in itertools.pairwise(seq):
        (ta, ca, oa), (tb, cb, ob) = marks[a], marks[b]
        out.append({"from": a, "to": b, "seconds": tb - ta, "cpu_tree_s": cb - ca,
                    "cpu_own_s": ob - oa, "tree_cores": (cb - ca) / max(1e-9, tb - ta)})
    return out


def _teardown(dests: list[Dest], tool_cg: procstat.CpuGroup | None) -> None:
    for d in dests:
        if d.observer is not None and d.observer.poll() is None:
            d.observer.kill()
            d.observer.wait()
        d.sshd.stop()
    for cg in (tool_cg, *(d.cg for d in dests)):
        if cg:
            cg.close()


def run_all(prof: FanoutProfile, src: Path, base: Path, expected: list[str], doc: dict,
            out: Path, baseline: bool, ext4: bool, py_spy: bool) -> None:
    all_files = set(expected)
    # one tree per destination filesystem (sparse: only what is written takes space)
    fs_size = prof.files * (38_232 + 2 * 4096) + (1 << 30)
    cases = ([("single", 1, False)] if baseline else []) + [("fanout", 2, True)]
    for case, n, outage in cases:
        with contextlib.ExitStack() as stack:
            roots = []
            for i in range(n):
                parent = base / f"{case}-fs{i}"
                if ext4:
                    root = stack.enter_context(destfs.DestFs(parent, fs_size))
                    doc.setdefault("dest_fs", "a journaled ext4 of its own per destination, "
                                   "on a loop device: " + destfs.DestFs.describe(root))
                else:
                    root = parent
                    root.mkdir(parents=True, exist_ok=True)
                    os.chmod(root, 0o755)
                    doc.setdefault("dest_fs", "scratch directory")
                roots.append(root)
            doc["results"].append(run_case(case, prof, src, base, expected, all_files, roots,
                                           outage, py_spy and case == "fanout"))
        doc["targets"] = targets(doc)
        report.write(doc, out)  # after each case: a later failure keeps what was measured


def targets(doc: dict) -> list[dict]:
    """The bar of issue 11, each with the figures it was judged on."""
    by = {r["case"]: r for r in doc["results"] if "failed" not in r}
    fan, single = by.get("fanout"), by.get("single")
    out: list[dict] = []
    if fan is None:
        return out
    ds = {d["role"]: d for d in fan["destinations"]}
    h, s = ds.get("healthy"), ds.get("stopped")
    if h is not None:
        before, during = h["before"]["p99_s"], h["during"]["p99_s"]
        ok = before is not None and during is not None and during <= HEALTHY_P99_RATIO * before
        out.append({"target": "healthy destination: p99 during the outage within 10 % of its "
                    "p99 before", "measured": f"{_f(during)} s during vs {_f(before)} s before"
                    f" (×{_ratio(during, before)})", "met": ok})
    if s is not None:
        lost = s["undelivered"] + s["differ_after_drain"] + s["unknown_contents"] \
            + s["regressions"]
        out.append({"target": "stopped destination: nothing lost",
                    "measured": f"{s['undelivered']}/{s['all']['updates']} undelivered, "
                    f"{s['differ_after_drain']} differ after the drain, "
                    f"{s['unknown_contents']} torn, {s['regressions']} regressions",
                    "met": lost == 0})
        c = s.get("catch_up_s")
        out.append({"target": f"stopped destination: catches up within {CATCH_UP_S:g} s of "
                    "returning", "measured": f"{_f(c)} s (first arrival "
                    f"{_f(s.get('first_arrival_after_return_s'))} s after the return)",
                    "met": c is not None and not math.isinf(c) and c <= CATCH_UP_S})
    if single is not None:
        a, b = fan["sender"]["steady_cpu_tree_s"], single["sender"]["steady_cpu_tree_s"]
        wa, wb = fan["sender"]["cpu_tree_s"], single["sender"]["cpu_tree_s"]
        out.append({"target": "sender CPU (rrdsync's tree, updates + drain) ≤ 2× the "
                    "single-destination run", "measured": f"{a:.1f} s vs {b:.1f} s "
                    f"(×{_ratio(a, b)}); whole run incl. initial sync {wa:.1f} vs {wb:.1f} s "
                    f"(×{_ratio(wa, wb)})", "met": a <= SENDER_CPU_RATIO * b})
    return out


def _f(x: float | None) -> str:
    if x is None:
        return "—"
    return "∞" if math.isinf(x) else f"{x:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0 or math.isinf(a) or math.isinf(b):
        return "—"
    return f"{a / b:.2f}"


def _terminate(_sig: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("profile", choices=sorted(PROFILES))
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the single-destination run (no sender CPU target then)")
    ap.add_argument("--outage", type=float, help="override the profile's outage (seconds)")
    ap.add_argument("--rate", type=float, help="override the profile's update rate")
    ap.add_argument("--duration", type=float, help="override the profile's duration")
    ap.add_argument("--dest-fs", choices=("ext4", "scratch"), default="ext4",
                    help="ext4: each destination on a fresh journaled ext4 (default); "
                    "scratch: in the scratch directory's filesystem")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/rrdsync-bench"),
                    help="where trees and work dirs go (default %(default)s)")
    ap.add_argument("--out", type=Path, help="results dir (default bench/results/<profile>)")
    ap.add_argument("--fresh", action="store_true", help="rebuild the source tree")
    ap.add_argument("--py-spy", action="store_true",
                    help="profile rrdsync with py-spy during the fanout run's updates")
    a = ap.parse_args(argv)
    prof = PROFILES[a.profile]
    over = {k: v for k, v in (("rate", a.rate), ("duration", a.duration),
                              ("outage_s", a.outage)) if v}
    if over:
        prof = FanoutProfile(**{**asdict(prof), **over})
    out = a.out or REPO / "bench" / "results" / prof.name
    out.mkdir(parents=True, exist_ok=True)
    a.scratch.mkdir(parents=True, exist_ok=True)
    os.chmod(a.scratch, 0o755)
    signal.signal(signal.SIGTERM, _terminate)
    src, tree = prepare_source(prof.files, a.scratch, a.fresh)
    expected = included_files(src)
    base = a.scratch / prof.name / "runs" / time.strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True)
    for p in (base.parent.parent, base.parent, base):
        os.chmod(p, 0o755)
    doc = {"kind": "fanout", "profile": asdict(prof),
           "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
           "tree": tree, "source_files": len(expected), "work_dir": str(base),
           "targets_def": {"healthy_p99_ratio": HEALTHY_P99_RATIO, "catch_up_s": CATCH_UP_S,
                           "sender_cpu_ratio": SENDER_CPU_RATIO},
           "results": []}
    run_all(prof, src, base, expected, doc, out, not a.no_baseline, a.dest_fs == "ext4",
            a.py_spy)
    for t in doc.get("targets", []):
        log(f"target {'met' if t['met'] else 'NOT met'}: {t['target']}: {t['measured']}")
    log(f"results in {out}")
    return 0
