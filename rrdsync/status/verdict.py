"""The rules of ``/healthz`` and ``/readyz``, as pure functions of published state and "now".

Both the worker (its own check functions, for logging its transitions) and the status
server (the verdict that counts) use these functions, so the two can never disagree about
what "live" or "ready" means. The server evaluates at request time from timestamps, never
from a flag a worker set once: a worker that stops publishing goes stale by itself.

Liveness is per worker (its sync loop checks in). Readiness is per destination: its first
full reconciliation completed, its sends have not been failing for longer than
``max_lag``, and its oldest unsent change is younger than ``max_lag``. A worker is ready
when its journal is writable and every one of its destinations is ready. Paths that fail
on their own at the source are shown, never a readiness failure; paths the destination
refuses are part of the unsent backlog the engine reports, so they count through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .state import DestinationState, WorkerState


def fmt_age(seconds: float) -> str:
    """``42.0s``, ``6m12s``, ``2h03m``: short, for reasons an operator reads."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def liveness_problem(st: WorkerState, now: float, timeout: float) -> str | None:
    """Why a worker is not live, or None. Silent longer than ``timeout`` is not live."""
    silent = now - st.checkin
    if silent > timeout:
        return f"no check-in for {fmt_age(silent)} (liveness timeout {fmt_age(timeout)})"
    return None


def reconcile_problem(ds: DestinationState) -> str | None:
    if ds.reconciled:
        return None
    init = ds.initial or {}
    total = init.get("total")
    progress = f"{init.get('files_checked', 0)}/{total if total is not None else '?'} checked"
    return f"first full reconciliation not completed yet ({progress})"


def failing_problem(ds: DestinationState, now: float, max_lag: float) -> str | None:
    if ds.failing_since is None:
        return None
    failing = now - ds.failing_since
    if failing <= max_lag:
        return None
    err = (ds.last_error or {}).get("message") or "unknown error"
    return f"sends failing for {fmt_age(failing)} (max lag {fmt_age(max_lag)}): {err}"


def oldest_pending_age(ds: DestinationState, now: float) -> float:
    if ds.pending <= 0 or ds.oldest_pending_since is None:
        return 0.0
    return max(0.0, now - ds.oldest_pending_since)


def _files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"


def backlog_problem(ds: DestinationState, now: float, max_lag: float) -> str | None:
    age = oldest_pending_age(ds, now)
    if age < max_lag:
        return None
    text = (f"oldest unsent change is {fmt_age(age)} old (max lag {fmt_age(max_lag)}), "
            f"{_files(ds.pending)} pending")
    refused = ds.failing_count("destination")
    if refused:
        text += f" ({refused} of them unwritable at the destination)"
    return text


def destination_problems(ds: DestinationState, now: float, max_lag: float) -> list[str]:
    """Why a destination of a live worker is not ready (empty when it is)."""
    found = [reconcile_problem(ds), failing_problem(ds, now, max_lag),
             backlog_problem(ds, now, max_lag)]
    return [p for p in found if p]


def journal_problem(st: WorkerState) -> str | None:
    if not st.journal_problem:
        return None
    return f"pending-change journal not writable: {st.journal_problem.get('error') or '?'}"


def readiness_problems(st: WorkerState, now: float, max_lag: float) -> list[str]:
    """Why a live worker is not ready (empty when ready): worker-level problems, then one
    entry per destination that is not ready, prefixed with its label."""
    found = [p for p in (journal_problem(st),) if p]
    if not st.destinations:
        found.append("no destination published yet")
    for label, ds in st.destinations.items():
        problems = destination_problems(ds, now, max_lag)
        if problems:
            found.append(f"{label}: " + "; ".join(problems))
    return found


@dataclass
class DestinationVerdict:
    ready: bool
    reasons: list[str]


def _age(now: float, then: float | None) -> float | None:
    return round(max(0.0, now - then), 3) if then is not None else None


def destination_detail(ds: DestinationState, verdict: DestinationVerdict,
                       now: float) -> dict[str, Any]:
    """One destination's JSON, as an operator reads it on both endpoints."""
    failing = ds.failing_paths or {}
    return {
        "ready": verdict.ready,
        "reason": "; ".join(verdict.reasons) or None,
        "reasons": verdict.reasons,
        "pending_files": ds.pending,
        "oldest_pending_age_s": round(oldest_pending_age(ds, now), 3),
        "last_success": ds.last_success,
        "last_success_age_s": _age(now, ds.last_success),
        "sends_failing_for_s": _age(now, ds.failing_since) or 0.0,
        "last_error": ds.last_error,
        "failing_paths": {
            "source": ds.failing_count("source"),
            "destination": ds.failing_count("destination"),
            "examples": list(failing.get("examples") or []),
            "since": failing.get("since"),
        },
        "activity": ds.activity,
        "initial_reconciliation": {"completed": ds.reconciled, **(ds.initial or {})},
        "last_reconcile": ds.last_reconcile,
        "last_batch": ds.last_batch,
        "ssh": ds.ssh or None,
        "delete_refused": ds.delete_refused,
    }


@dataclass
class WorkerVerdict:
    state: WorkerState
    live: bool
    ready: bool
    reasons: list[str]
    destinations: dict[str, DestinationVerdict] = field(default_factory=dict)

    def detail(self, now: float) -> dict[str, Any]:
        """The per-worker JSON an operator sees on both endpoints.

        The worker-level ``pending_files``/``oldest_pending_age_s``/``last_success``/
        ``last_error`` summarise its destinations (sum, worst, oldest, newest); the
        ``destinations`` map has each one's own state and readiness.
        """
        st = self.state
        dests = st.destinations.values()
        successes = [d.last_success for d in dests]
        errors = [{**d.last_error, "destination": d.label} for d in dests if d.last_error]
        return {
            "worker": st.identity,
            "key": st.key,
            "hostname": st.hostname,
            "pid": st.pid,
            "version": st.version or None,
            "started": st.started,
            "live": self.live,
            "ready": self.ready,
            "reason": "; ".join(self.reasons) or None,
            "last_checkin_age_s": round(max(0.0, now - st.checkin), 3),
            "pending_files": sum(d.pending for d in dests),
            "oldest_pending_age_s": round(max((oldest_pending_age(d, now) for d in dests),
                                              default=0.0), 3),
            "last_success": (None if not successes or None in successes
                             else min(s for s in successes if s is not None)),
            "last_error": max(errors, key=lambda e: e.get("time") or 0, default=None),
            "journal_problem": st.journal_problem,
            "activity": st.activity,
            "last_rescan": st.last_rescan,
            "watch_overflows": st.watch_overflows,
            "destinations": {
                label: destination_detail(ds, self.destinations.get(
                    label, DestinationVerdict(False, ["worker not live"])), now)
                for label, ds in st.destinations.items()
            },
        }


def judge_worker(st: WorkerState, now: float, liveness_timeout: float,
                 max_lag: float) -> WorkerVerdict:
    """One worker's verdict: liveness first, then journal and every destination."""
    why_not_live = liveness_problem(st, now, liveness_timeout)
    if why_not_live:
        dests = {label: DestinationVerdict(False, [f"worker not live: {why_not_live}"])
                 for label in st.destinations}
        return WorkerVerdict(st, live=False, ready=False, reasons=[why_not_live],
                             destinations=dests)
    dests = {}
    for label, ds in st.destinations.items():
        problems = destination_problems(ds, now, max_lag)
        dests[label] = DestinationVerdict(ready=not problems, reasons=problems)
    problems = readiness_problems(st, now, max_lag)
    return WorkerVerdict(st, live=True, ready=not problems, reasons=problems,
                         destinations=dests)


@dataclass
class Report:
    """The server's view at one instant: current workers and what they add up to."""

    now: float
    workers: list[WorkerVerdict]
    replaced: list[WorkerState] = field(default_factory=list)
    stopped: list[WorkerState] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return bool(self.workers) and all(w.live for w in self.workers)

    @property
    def ready(self) -> bool:
        return self.live and all(w.ready for w in self.workers)

    def live_keys(self) -> set[str]:
        return {w.state.key for w in self.workers if w.live}

    def destinations(self) -> dict[str, DestinationVerdict]:
        """Each destination label over all current workers: ready only where every
        worker that replicates to it is live and ready for it."""
        out: dict[str, DestinationVerdict] = {}
        for w in self.workers:
            for label, v in w.destinations.items():
                seen = out.setdefault(label, DestinationVerdict(True, []))
                seen.ready = seen.ready and v.ready
                seen.reasons.extend(v.reasons)
        return out

    def reason(self, endpoint: str) -> str | None:
        """One line for the operator: why ``endpoint`` (healthz/readyz) is not OK."""
        if not self.workers and self.stopped:
            return "no worker running: the last one stopped cleanly"
        if not self.workers:
            return "no worker has published its state since the status server started"
        ok = self.live if endpoint == "healthz" else self.ready
        if ok:
            return None
        parts = []
        for w in self.workers:
            if not w.live or (endpoint == "readyz" and not w.ready):
                why = w.reasons[0] if endpoint == "healthz" else "; ".join(w.reasons)
                parts.append(f"{w.state.identity} (pid {w.state.pid}): {why}")
        return "; ".join(parts)


def evaluate(states: list[WorkerState], *, now: float, since: float,
             liveness_timeout: float, max_lag: float) -> Report:
    """Judge the workers that published since ``since`` (the server's start).

    Older files belong to a previous life of the run dir and are ignored. Of several
    incarnations of one identity only the newest counts: a restarted worker replaces its
    predecessor, whose file stays on disk as evidence but no longer decides anything.
    A worker that stopped cleanly (``close()``) no longer counts: with no other worker the
    answer is 503 ("no worker running"), a ``rrdsync once`` that finished beside a running
    worker leaves that worker in charge, and a dead incarnation followed by one that
    stopped cleanly is replaced like any predecessor.
    """
    by_identity: dict[str, list[WorkerState]] = {}
    for st in sorted((s for s in states if s.written >= since),
                     key=lambda s: (s.started, s.pid)):
        by_identity.setdefault(st.identity, []).append(st)
    current: dict[str, WorkerState] = {}
    replaced: list[WorkerState] = []
    stopped: list[WorkerState] = []
    for ident, incarnations in by_identity.items():
        running = [s for s in incarnations if not s.stopped]
        stopped.extend(s for s in incarnations if s.stopped)
        if not running:
            continue
        newest = running[-1]
        replaced.extend(running[:-1])
        stopped_later = any(s.started > newest.started for s in incarnations if s.stopped)
        if stopped_later and liveness_problem(newest, now, liveness_timeout):
            replaced.append(newest)  # a dead one, followed by one that stopped cleanly
            continue
        current[ident] = newest
    verdicts = [judge_worker(st, now, liveness_timeout, max_lag)
                for st in sorted(current.values(), key=lambda s: s.identity)]
    return Report(now=now, workers=verdicts, replaced=replaced, stopped=stopped)
