"""The rules of ``/healthz`` and ``/readyz``, as pure functions of published state and "now".

Both the worker (its own check functions, for logging its transitions) and the status
server (the verdict that counts) use these functions, so the two can never disagree about
what "live" or "ready" means. The server evaluates at request time from timestamps, never
from a flag a worker set once: a worker that stops publishing goes stale by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .state import WorkerState


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


def reconcile_problem(st: WorkerState) -> str | None:
    if st.reconciled:
        return None
    init = st.initial or {}
    total = init.get("total")
    progress = f"{init.get('files_checked', 0)}/{total if total is not None else '?'} checked"
    return f"first full reconciliation not completed yet ({progress})"


def failing_problem(st: WorkerState, now: float, max_lag: float) -> str | None:
    if st.failing_since is None:
        return None
    failing = now - st.failing_since
    if failing <= max_lag:
        return None
    err = (st.last_error or {}).get("message") or "unknown error"
    return f"sends failing for {fmt_age(failing)} (max lag {fmt_age(max_lag)}): {err}"


def oldest_pending_age(st: WorkerState, now: float) -> float:
    if st.pending <= 0 or st.oldest_pending_since is None:
        return 0.0
    return max(0.0, now - st.oldest_pending_since)


def backlog_problem(st: WorkerState, now: float, max_lag: float) -> str | None:
    age = oldest_pending_age(st, now)
    if age < max_lag:
        return None
    files = f"{st.pending} file{'s' if st.pending != 1 else ''}"
    return (f"oldest unsent change is {fmt_age(age)} old (max lag {fmt_age(max_lag)}), "
            f"{files} pending")


def readiness_problems(st: WorkerState, now: float, max_lag: float) -> list[str]:
    """Why a live worker is not ready (empty when ready)."""
    found = [reconcile_problem(st), failing_problem(st, now, max_lag),
             backlog_problem(st, now, max_lag)]
    return [p for p in found if p]


@dataclass
class WorkerVerdict:
    state: WorkerState
    live: bool
    ready: bool
    reasons: list[str]

    def detail(self, now: float) -> dict[str, Any]:
        """The per-worker JSON an operator sees on both endpoints."""
        st = self.state
        err = st.last_error
        return {
            "worker": st.identity,
            "key": st.key,
            "hostname": st.hostname,
            "pid": st.pid,
            "started": st.started,
            "live": self.live,
            "ready": self.ready,
            "reason": "; ".join(self.reasons) or None,
            "last_checkin_age_s": round(max(0.0, now - st.checkin), 3),
            "pending_files": st.pending,
            "oldest_pending_age_s": round(oldest_pending_age(st, now), 3),
            "last_success": st.last_success,
            "last_success_age_s": (round(now - st.last_success, 3)
                                   if st.last_success is not None else None),
            "sends_failing_for_s": (round(now - st.failing_since, 3)
                                    if st.failing_since is not None else 0.0),
            "last_error": err,
            "initial_reconciliation": {"completed": st.reconciled, **(st.initial or {})},
            "reconciling": st.reconciling,
            "last_reconcile": st.last_reconcile,
            "last_batch": st.last_batch,
            "ssh": st.ssh or None,
            "watch_overflows": st.watch_overflows,
            "delete_refused": st.delete_refused,
        }


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
    verdicts = []
    for st in sorted(current.values(), key=lambda s: s.identity):
        why_not_live = liveness_problem(st, now, liveness_timeout)
        if why_not_live:
            verdicts.append(WorkerVerdict(st, live=False, ready=False, reasons=[why_not_live]))
            continue
        problems = readiness_problems(st, now, max_lag)
        verdicts.append(WorkerVerdict(st, live=True, ready=not problems, reasons=problems))
    return Report(now=now, workers=verdicts, replaced=replaced, stopped=stopped)
