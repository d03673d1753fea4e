"""Several destinations from one worker (DESIGN "Several destinations", issue 11), against
real sshd servers behind ``rrsync -wo -no-del``, real rsync and real RRD files updated by
rrdtool, the worker running as the image's user (UID 10001).

What each test tries to break: two destinations kept identical with one SSH connection
each; one destination gone for a while, refusing writes, or down across a SIGKILL of the
worker, while the other keeps its lag (measured per update, printed with ``-s``) and the
failing one catches up with nothing lost; ``ssh://`` ports and an IPv6 literal in one list;
the source watched and walked once whatever the number of destinations.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rrdsync.destination import parse_destinations
from tests.fixtures.rrd import (
    RrdsyncProcess,
    differences,
    make_tree,
    rrd_update,
    wait_for,
)
from tests.fixtures.sshd import (
    RECEIVERS,
    RRSYNC,
    TEST_USER,
    WORKER_GID,
    WORKER_UID,
    Sshd,
    _tree,
    make_sshd,
)
from tests.integration.commands import rrdsync, second_destination

pytestmark = pytest.mark.slow

MAX_LAG = 5.0


@dataclass
class Pair:
    """Two destinations of one worker: ``a`` stays healthy, ``b`` is the one tests break."""

    a: Sshd
    b: Sshd
    env: dict[str, str]

    @property
    def labels(self) -> tuple[str, str]:
        a, b = parse_destinations("RRDSYNC_DEST", self.env["RRDSYNC_DEST"])
        return a.label, b.label

    def key(self, server: Sshd) -> str:
        """The destination's key: its journal is ``STATE_DIR/dest-<key>/pending``."""
        dests = parse_destinations("RRDSYNC_DEST", self.env["RRDSYNC_DEST"])
        return dests[0 if server is self.a else 1].key


@pytest.fixture
def pair(world_dir: Path, worker_env: dict[str, str]) -> Iterator[Pair]:
    """Two sshd servers (``ssh://user@127.0.0.1:PORT/`` each), one client key and one
    known_hosts file for both, as an operator configures two destinations."""
    a = make_sshd(world_dir, "a")
    b = make_sshd(world_dir, "b")
    env = second_destination(a, b, worker_env, world_dir / "known_hosts_both")
    yield Pair(a, b, env)
    a.stop()
    b.stop()


def _log_tail(w: RrdsyncProcess) -> str:
    return "\n".join(ln for ln in w.output().splitlines() if '"rsync_start"' not in ln)[-6000:]


def identical(w: RrdsyncProcess, src: Path, dst: Path, timeout: float = 30) -> float:
    """Wait until ``dst`` is byte-identical to ``src``; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    diff = differences(src, dst)
    while diff and time.monotonic() < deadline:
        time.sleep(0.1)
        diff = differences(src, dst)
    if diff:
        raise AssertionError(f"{len(diff)} files differ at {dst} after {timeout}s, e.g. "
                             f"{diff[:5]}\n--- worker log ---\n{_log_tail(w)}")
    return time.monotonic() - start


def reconciled(w: RrdsyncProcess, labels: tuple[str, ...], timeout: float = 30) -> None:
    """Wait for each destination's first full reconciliation to finish."""
    for label in labels:
        w.wait_event("reconcile_finished", timeout=timeout,
                     pred=lambda e, lb=label: e.get("ok") and e.get("destination") == lb)


def lag(f: Path, src: Path, dst: Path, timeout: float = 20) -> float:
    """One rrdtool update of ``f``, then the seconds until ``dst`` holds exactly that version
    (the change as the destination's users see it: settle + batching + rsync)."""
    rrd_update(f)
    t0 = time.monotonic()
    want = f.read_bytes()
    target = dst / f.relative_to(src)
    while time.monotonic() - t0 < timeout:
        try:
            if target.read_bytes() == want:
                return time.monotonic() - t0
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"{target} did not get its update within {timeout}s")


def lags(files: list[Path], src: Path, dst: Path, count: int | None = None,
         seconds: float | None = None, each=lambda: None) -> list[float]:
    """Lags of updates made one after the other (``count`` of them, or for ``seconds``),
    calling ``each`` between two."""
    out: list[float] = []
    start = time.monotonic()
    i = 0
    while (count is not None and i < count) or (
            seconds is not None and time.monotonic() - start < seconds):
        out.append(lag(files[i % len(files)], src, dst))
        i += 1
        each()
        time.sleep(0.1)
    return out


def summary(values: list[float]) -> str:
    q = statistics.quantiles(values, n=10, method="inclusive") if len(values) >= 2 else values
    return (f"n={len(values)} p50={statistics.median(values):.3f}s "
            f"p90={q[-1]:.3f}s max={max(values):.3f}s")


def _readonly(server: Sshd) -> None:
    """The destination starts refusing every write (its key forced into ``rrsync -ro``);
    sshd restarts so the established master goes and the next login gets the new command."""
    server.stop()
    server.write_authorized_keys(RECEIVERS["rrsync-ro"].format(rrsync=RRSYNC, dest=server.dest))
    server.start()


def _writable(server: Sshd) -> None:
    server.stop()
    server.write_authorized_keys(RECEIVERS["rrsync"].format(rrsync=RRSYNC, dest=server.dest))
    server.start()


# -- both healthy ---------------------------------------------------------------------------


def test_two_destinations_identical_under_updates(pair: Pair, source, start_worker):
    """Each destination ends byte-identical under a stream of rrdtool updates and new
    files, over one SSH connection per destination."""
    files = make_tree(source, nodes=2, resources=2, files=2)
    w = start_worker(pair.env)
    reconciled(w, pair.labels)
    identical(w, source, pair.a.dest)
    identical(w, source, pair.b.dest)

    for round_ in range(5):
        for f in files:
            rrd_update(f)
        if round_ == 2:
            files += make_tree(source / "later", nodes=1, resources=1, files=2)
        time.sleep(0.2)
    identical(w, source, pair.a.dest)
    identical(w, source, pair.b.dest)

    sent = {lb: sum(e.get("files", 0) for e in w.events("batch_sent")
                    if e.get("destination") == lb) for lb in pair.labels}
    assert all(n >= len(files) for n in sent.values()), sent
    assert (pair.a.connections(), pair.b.connections()) == (1, 1)
    assert w.stop() == 0


# -- one destination gone, refusing, or down across a restart --------------------------------


def _freeze(server: Sshd, sig: int) -> None:
    """SIGSTOP/SIGCONT the whole sshd tree: a destination that hangs (TCP stays open,
    nothing answers), unlike one whose connections are refused."""
    assert server.proc is not None
    for pid in _tree(server.proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_one_destination_down_the_other_keeps_its_lag(pair: Pair, source, start_worker,
                                                      start_status, outage):
    """While ``b`` is gone for 20 s (``stopped``: sshd killed, sessions cut, connections
    refused; ``frozen``: sshd SIGSTOPped, so connections and transfers hang until
    RRDSYNC_TIMEOUT), ``a``'s updates keep arriving as fast as before and the worker stays
    live (liveness timeout 3 s) and ready (an outage shorter than RRDSYNC_MAX_LAG); when
    ``b`` returns it gets everything, soon."""
    env = {**pair.env, "RRDSYNC_LIVENESS_TIMEOUT": "3s"}
    files = make_tree(source, nodes=1, resources=2, files=2)
    _, status = start_status(env)
    w = start_worker(env)
    reconciled(w, pair.labels)
    identical(w, source, pair.b.dest)
    label_b = pair.labels[1]
    probes: list[tuple[int, int]] = []

    before = lags(files, source, pair.a.dest, count=15)
    mark = len(w.events())
    if outage == "stopped":
        pair.b.stop()
    else:
        _freeze(pair.b, signal.SIGSTOP)
    for f in files:
        rrd_update(f)
    during = lags(files, source, pair.a.dest, seconds=20, each=lambda: probes.append(
        (status.code("/healthz"), status.code("/readyz"))))
    make_tree(source / "while-b-down", nodes=1, resources=1, files=2)
    identical(w, source, pair.a.dest, timeout=10)
    w.wait_event("send_failed", since=mark, timeout=20,
                 pred=lambda e: e.get("destination") == label_b)
    assert differences(source, pair.b.dest), "b was down: something must be missing there"
    failures = w.events("send_failed", since=mark)
    assert {e["destination"] for e in failures} == {label_b}
    assert set(probes) == {(200, 200)}, probes
    _, body = status.get("/readyz")
    b = body["workers"][0]["destinations"][label_b]
    assert b["ready"] is True and b["pending_files"] >= len(files) and b["activity"], b
    print(f"\n[{outage}] b's activity: {b['activity']!r}; last error: "
          f"{(b['last_error'] or {}).get('message')!r}")

    back = time.monotonic()
    if outage == "stopped":
        pair.b.start()
    else:
        _freeze(pair.b, signal.SIGCONT)
    catch_up = identical(w, source, pair.b.dest, timeout=40)
    print(f"[{outage}] healthy destination's lag before b's outage: {summary(before)}"
          f"\n[{outage}] healthy destination's lag during b's outage: {summary(during)}"
          f"\n[{outage}] b's catch-up after it returned: {catch_up:.2f}s "
          f"({len(failures)} failed attempts while down; "
          f"{time.monotonic() - back:.2f}s until checked)")
    identical(w, source, pair.a.dest, timeout=10)
    # nothing about b touched a: one connection all along
    assert pair.a.connections() == 1
    if outage == "stopped":
        assert pair.b.connections() == 2  # b reconnected once
    assert statistics.median(during) <= statistics.median(before) * 2 + 0.3, (before, during)
    assert max(during) < 5.0, during
    assert catch_up < 30.0
    assert w.stop() == 0


def test_one_destination_refusing_writes_readyz(pair: Pair, source, start_worker,
                                                start_status):
    """``b`` starts refusing writes (rrsync ``-ro``): ``a`` keeps flowing; ``/readyz`` (a
    real ``rrdsync serve``) turns 503 once ``b`` has failed for RRDSYNC_MAX_LAG, naming
    ``b`` not ready with a reason and ``a`` ready; back to 200 once ``b`` takes writes."""
    env = {**pair.env, "RRDSYNC_MAX_LAG": f"{MAX_LAG:g}s"}
    files = make_tree(source, nodes=1, resources=2, files=2)
    _, status = start_status(env)
    w = start_worker(env)
    status.wait_code("/readyz", 200, timeout=30)
    label_a, label_b = pair.labels

    _readonly(pair.b)
    mark = len(w.events())
    rrd_update(files[0])
    refused_at = time.monotonic()
    failed = w.wait_event("send_failed", since=mark, timeout=20,
                          pred=lambda e: e.get("destination") == label_b)
    flowing = lags(files, source, pair.a.dest, count=10)
    to_503 = status.wait_code("/readyz", 503, timeout=MAX_LAG + 20)
    after = time.monotonic() - refused_at
    # not before RRDSYNC_MAX_LAG: nothing in b's backlog nor its failures is older
    assert after >= MAX_LAG - 0.2, after
    code, body = status.get("/readyz")
    assert code == 503 and label_b in body["reason"] and label_a not in body["reason"]
    (wk,) = body["workers"]
    a, b = wk["destinations"][label_a], wk["destinations"][label_b]
    assert a["ready"] is True and a["reason"] is None and a["pending_files"] == 0
    assert b["ready"] is False and b["pending_files"] >= 1
    assert "sends failing" in b["reason"] or "oldest unsent change" in b["reason"], b
    assert b["last_error"] and b["last_error"]["message"]
    assert body["destinations"][label_a]["ready"] is True
    assert body["destinations"][label_b]["ready"] is False
    more = lags(files, source, pair.a.dest, count=10)  # still flowing while b is not ready
    print(f"\nhealthy destination's lag while b refuses writes: {summary(flowing + more)}"
          f"\n/readyz 503 {after:.2f}s after b's first refused change (max lag {MAX_LAG:g}s;"
          f" waited {to_503:.2f}s after the lags); b's error: {failed.get('error')!r}"
          f"\nb's reason: {b['reason']!r}")
    assert max(flowing + more) < 5.0
    m = status.metrics()
    failed = 'rrdsync_batches_total{{destination="{}",result="failed"}}'
    assert m[failed.format(label_b)] >= 1 and m[failed.format(label_a)] == 0
    assert m[f'rrdsync_destination_ready{{destination="{label_a}"}}'] == 1
    assert m[f'rrdsync_destination_ready{{destination="{label_b}"}}'] == 0
    assert m["rrdsync_ready"] == 0

    _writable(pair.b)
    back = status.wait_code("/readyz", 200, timeout=40)
    identical(w, source, pair.b.dest, timeout=10)
    print(f"/readyz 200 again {back:.2f}s after b takes writes again")
    assert w.stop() == 0


def test_path_unwritable_at_one_destination_only(pair: Pair, source, start_worker,
                                                 start_status):
    """A directory ``b``'s receiver may not write (root's, 0755): those files fail at ``b``
    only, on their own (side=destination, in b's status only); ``a`` gets everything,
    and ``b`` every other file; once writable, ``b`` gets them too."""
    files = make_tree(source, nodes=2, resources=2, files=2)
    blocked = pair.b.dest / "snmp/1/if0"
    blocked.mkdir(parents=True)
    for d in (pair.b.dest / "snmp", pair.b.dest / "snmp/1"):
        os.chown(d, pair.b.user.pw_uid, pair.b.user.pw_gid)
    os.chmod(blocked, 0o755)  # root's
    _, status = start_status(pair.env)
    w = start_worker(pair.env)
    label_a, label_b = pair.labels
    reconciled(w, pair.labels)
    failing = w.wait_event("path_failing", pred=lambda e: e["side"] == "destination")
    assert failing["destination"] == label_b and failing["path"].startswith("snmp/1/if0/")
    healthy = [f for f in files if "snmp/1/if0/" not in str(f)]
    for f in files:
        rrd_update(f)
    identical(w, source, pair.a.dest, timeout=10)
    stuck = {os.path.relpath(f, source) for f in source.glob("snmp/1/if0/*")}
    wait_for(lambda: set(differences(source, pair.b.dest)) == stuck, timeout=10,
             what="b to hold everything but the unwritable directory")
    dests = status.get("/readyz")[1]["workers"][0]["destinations"]
    assert dests[label_a]["failing_paths"]["destination"] == 0
    assert dests[label_b]["failing_paths"]["destination"] == len(stuck), dests[label_b]
    b_lags = [lag(f, source, pair.b.dest) for f in healthy[:4]]
    print(f"\nb's lag for writable paths while {len(stuck)} of its paths fail: "
          f"{summary(b_lags)}")
    assert max(b_lags) < 3
    assert not [e for e in w.events("path_failing") if e["destination"] == label_a]

    os.chown(blocked, pair.b.user.pw_uid, pair.b.user.pw_gid)
    identical(w, source, pair.b.dest, timeout=40)  # retried with its own backoff (5 s..)
    assert w.stop() == 0


def _journal(state: Path, key: str) -> list[str]:
    p = state / f"dest-{key}" / "pending"
    return [os.fsdecode(x) for x in p.read_bytes().split(b"\0") if x] if p.exists() else []


def test_sigkill_while_one_destination_down(pair: Pair, source, start_worker):
    """``b`` goes down; changes are made; the worker is SIGKILLed; more changes while it is
    dead; it restarts with ``b`` still down; more changes; ``b`` returns: both destinations
    get everything (``b``'s unconfirmed paths survive in its own journal)."""
    files = make_tree(source, nodes=2, resources=2, files=2)
    state = Path(pair.env["RRDSYNC_STATE_DIR"])
    w = start_worker(pair.env)
    reconciled(w, pair.labels)
    identical(w, source, pair.b.dest)
    label_a, label_b = pair.labels

    pair.b.stop()
    mark = len(w.events())
    for f in files[:4]:
        rrd_update(f)
    w.wait_event("send_failed", since=mark, timeout=20,
                 pred=lambda e: e.get("destination") == label_b)
    identical(w, source, pair.a.dest, timeout=10)
    rels = {os.path.relpath(f, source) for f in files[:4]}
    # b's journal holds them; a's, nothing left to send (each written once a second)
    wait_for(lambda: rels <= set(_journal(state, pair.key(pair.b)))
             and not _journal(state, pair.key(pair.a)), timeout=5,
             what="b's journal to list the unsent changes, a's to be empty")
    assert sorted(p.name for p in state.glob("dest-*")) == sorted(
        f"dest-{pair.key(s)}" for s in (pair.a, pair.b))
    w.kill()

    for f in files[2:]:  # while the worker is dead (b still down)
        rrd_update(f)
    make_tree(source / "while-dead", nodes=1, resources=1, files=2)
    w2 = start_worker(pair.env)
    identical(w2, source, pair.a.dest, timeout=30)
    for f in files[:3]:  # the restarted worker is running, b still down
        rrd_update(f)
    identical(w2, source, pair.a.dest, timeout=10)
    resumed = {e["destination"]: e["files"] for e in w2.events("journal_resumed")}
    assert resumed.get(label_b, 0) >= len(rels) and label_a not in resumed, resumed
    assert differences(source, pair.b.dest)

    pair.b.start()
    catch_up = identical(w2, source, pair.b.dest, timeout=40)
    identical(w2, source, pair.a.dest, timeout=10)
    print(f"\nb's catch-up after a worker restart while it was down: {catch_up:.2f}s")
    assert w2.stop() == 0


def test_sigterm_while_one_destination_hangs(pair: Pair, source, start_worker):
    """SIGTERM while ``b`` hangs (sshd SIGSTOPped mid-transfer) and ``a`` is healthy: the
    worker still exits 0 within 10 s (the drain deadline is shared, not per destination),
    and after a restart with ``b`` back both have everything."""
    files = make_tree(source, nodes=1, resources=2, files=2)
    w = start_worker(pair.env)
    reconciled(w, pair.labels)
    label_b = pair.labels[1]
    _freeze(pair.b, signal.SIGSTOP)
    try:
        mark = len(w.events())
        for f in files:
            rrd_update(f)
        w.wait_event("rsync_start", since=mark, timeout=10,
                     pred=lambda e: e.get("destination") == label_b)
        identical(w, source, pair.a.dest, timeout=10)
        time.sleep(0.5)
        t0 = time.monotonic()
        w.signal(signal.SIGTERM)
        assert w.proc is not None
        code = w.proc.wait(timeout=15)
        took = time.monotonic() - t0
    finally:
        pair.b.stop()
    print(f"\nSIGTERM with b hung: exit {code} after {took:.2f}s")
    assert code == 0, _log_tail(w)
    assert took < 10, f"stopped after {took:.1f}s\n{_log_tail(w)}"
    pair.b.start()
    w2 = start_worker(pair.env)
    identical(w2, source, pair.b.dest, timeout=30)
    identical(w2, source, pair.a.dest, timeout=10)
    assert w2.stop() == 0


def test_once_with_one_destination_down(pair: Pair, source, world_dir):
    """``rrdsync once`` with ``b`` down: exit 1, and ``a`` got the whole tree anyway."""
    make_tree(source, nodes=1, resources=2, files=2)
    pair.b.stop()
    t0 = time.monotonic()
    r = rrdsync({**pair.env, "RRDSYNC_TIMEOUT": "3s"}, "once", home=world_dir / "home",
                timeout=60)
    took = time.monotonic() - t0
    print(f"\nonce with b down: exit {r.returncode} after {took:.2f}s")
    assert r.returncode == 1, r.stderr.decode()[-3000:]
    assert not differences(source, pair.a.dest)
    assert pair.b.connections() == 0


def _same_second_edit(path: Path, like: Path) -> None:
    """Change ``path``'s bytes in place, size and whole-second mtime kept equal to ``like``'s
    (the change rsync's quick check cannot see; only a journal or --ignore-times can)."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    st = like.stat()
    ns = (st.st_mtime_ns // 1_000_000_000) * 1_000_000_000 + 500_000_000
    os.utime(path, ns=(ns, ns))
    assert path.stat().st_size == like.stat().st_size


@pytest.mark.parametrize("dests", [1, 2])
def test_upgrade_keeps_the_single_destination_journal(pair: Pair, source, start_worker,
                                                      dests):
    """A state dir from a release with one destination (one ``pending`` file at its root)
    listing a change the old worker had seen but not sent, and that the quick check cannot
    see (same size, same second). Upgraded with the same destination, or with a second one
    added at the same time, the change still reaches the old destination."""
    files = make_tree(source, nodes=1, resources=1, files=2)
    env = pair.env if dests == 2 else {
        **pair.env, "RRDSYNC_DEST": pair.env["RRDSYNC_DEST"].split(",")[0]}
    w = start_worker(env)
    reconciled(w, pair.labels[:dests])
    identical(w, source, pair.a.dest)
    assert w.stop() == 0
    state = Path(env["RRDSYNC_STATE_DIR"])
    for d in state.glob("dest-*"):  # as the old release left it: one journal, at the root
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    rel = os.path.relpath(files[0], source)
    _same_second_edit(files[0], pair.a.dest / rel)
    legacy = state / "pending"
    legacy.write_bytes(rel.encode() + b"\0")
    os.chown(legacy, WORKER_UID, WORKER_GID)
    old = time.time() - 600  # the old worker's last touch, long before the edit
    os.utime(legacy, (old, old))

    w2 = start_worker(env)
    reconciled(w2, pair.labels[:dests])
    identical(w2, source, pair.a.dest, timeout=10)
    if dests == 2:
        identical(w2, source, pair.b.dest, timeout=10)
    resumed = {e["destination"]: e["files"] for e in w2.events("journal_resumed")}
    assert resumed.get(pair.labels[0]) == 1, resumed
    assert not legacy.exists()
    assert w2.stop() == 0


# -- destination forms ------------------------------------------------------------------------


def test_ssh_url_port_and_ipv6_literal(world_dir: Path, worker_env, source, start_worker):
    """``ssh://user@127.0.0.1:PORT/`` (its own port) and ``user@[::1]:/`` (port from
    RRDSYNC_SSH_PORT) in one list: both reached at the right address and kept identical."""
    a = make_sshd(world_dir, "a")
    b = make_sshd(world_dir, "b", ipv6=True)
    try:
        b.client_key = a.client_key
        b.write_authorized_keys()
        known = world_dir / "known_hosts_both"
        known.write_text(a.known_hosts.read_text() + b.known_hosts.read_text())
        dest = f"ssh://{TEST_USER}@127.0.0.1:{a.port}/,{TEST_USER}@[::1]:/"
        env = {**worker_env, **a.env(), "RRDSYNC_DEST": dest, "RRDSYNC_SSH_PORT": str(b.port),
               "RRDSYNC_KNOWN_HOSTS": str(known)}
        files = make_tree(source, nodes=1, resources=2, files=2)
        w = start_worker(env)
        labels = (f"ssh://127.0.0.1:{a.port}/", "[::1]:/")
        reconciled(w, labels)
        for f in files:
            rrd_update(f)
        identical(w, source, a.dest)
        identical(w, source, b.dest)
        connected = {e["destination"]: (e["host"], e["port"]) for e in w.events("ssh_connected")}
        assert connected == {labels[0]: ("127.0.0.1", a.port), labels[1]: ("::1", b.port)}
        assert f"Accepted publickey for {TEST_USER} from ::1 " in b.log.read_text()
        assert (a.connections(), b.connections()) == (1, 1)
        assert w.stop() == 0
    finally:
        a.stop()
        b.stop()


# -- cost -----------------------------------------------------------------------------------


def _inotify_watches(pid: int) -> int:
    """Watches the process holds: one ``inotify wd:`` line per watch in its fds' fdinfo."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                n += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue
    return n


def test_source_watched_and_walked_once(pair: Pair, source, start_worker):
    """With two destinations the source has one set of watches and one walk per full pass,
    every destination completing each pass from that one walk (not timed)."""
    make_tree(source, nodes=3, resources=2, files=2)
    # the root and every directory under it but lost+found (root-only: never watched)
    dirs = sum(1 for d, _, _ in os.walk(source) if d != str(source / "lost+found"))
    w = start_worker({**pair.env, "RRDSYNC_RESCAN_INTERVAL": "2s"})
    reconciled(w, pair.labels)
    assert w.proc is not None
    watches = _inotify_watches(w.proc.pid)
    wait_for(lambda: len(w.events("source_walked")) >= 4, timeout=30,
             what="four walks of the source")
    assert w.stop() == 0

    walks = w.events("source_walked")
    started = w.events("reconcile_started")
    finished = {lb: [e for e in w.events("reconcile_finished") if e.get("destination") == lb]
                for lb in pair.labels}
    print(f"\n{watches} inotify watches for {dirs} directories; {len(walks)} walks, "
          f"{len(started)} passes started, passes finished per destination: "
          f"{ {lb: len(v) for lb, v in finished.items()} }")
    assert len(walks) == len(started)
    for lb, done in finished.items():
        assert all(e["ok"] for e in done), lb
        # each pass walked once is completed by each destination (the last may be cut)
        assert len(walks) - 1 <= len(done) <= len(walks), (lb, len(done), len(walks))
    assert len(w.events("watch_started")) == 1
    assert watches == dirs, (watches, dirs)  # one watch per directory, not one per destination


def test_full_passes_while_one_destination_is_down(pair: Pair, source, start_worker):
    """Full passes go on for ``a`` while ``b`` is down (nothing is walked again for ``b``);
    ``b``, back, completes a pass from the walks already made (skipping those it missed,
    the newest covers them) and ends identical."""
    files = make_tree(source, nodes=2, resources=2, files=2)
    w = start_worker({**pair.env, "RRDSYNC_RESCAN_INTERVAL": "2s"})
    reconciled(w, pair.labels)
    label_a, label_b = pair.labels

    def finished(label: str, since: int) -> list[dict]:
        return [e for e in w.events("reconcile_finished", since=since)
                if e.get("destination") == label]

    pair.b.stop()
    mark = len(w.events())
    for i in range(4):
        rrd_update(files[i])
        # a's passes while b is down: one per walk
        wait_for(lambda n=i: len(finished(label_a, mark)) > n, timeout=20,
                 what="a full pass completed by a")
    walks_down = len(w.events("source_walked", since=mark))
    assert not finished(label_b, mark)
    pair.b.start()
    back = len(w.events())
    done = w.wait_event("reconcile_finished", since=back, timeout=40,
                        pred=lambda e: e.get("destination") == label_b)
    identical(w, source, pair.b.dest, timeout=20)
    identical(w, source, pair.a.dest, timeout=10)
    assert w.stop() == 0
    walks = len(w.events("source_walked"))
    print(f"\n{walks_down} walks while b was down; b completed its pass "
          f"({done['reason']}, ok={done['ok']}) {done['duration_s']:.1f}s after it started; "
          f"{walks} walks in all, passes finished: a {len(finished(label_a, 0))}, "
          f"b {len(finished(label_b, 0))}")
    assert done["ok"]
    assert walks == len(w.events("reconcile_started"))
    assert len(finished(label_a, 0)) >= walks - 1
    assert len(finished(label_b, 0)) < len(finished(label_a, 0))
