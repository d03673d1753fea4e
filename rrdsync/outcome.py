"""What one rsync run means for each path it carried: arrived, back to pending, or failing
on its own. A pure function of the run's result and the files' signatures, so that its
decision table is unit-tested without rsync.

- A run that did not complete (cut, refused, timed out, ended at the stop deadline)
  confirms nothing: every path goes back with its first-change time, and the
  destination backs off.
- A completed run (0, 23, 24) confirms every path no error names. Paths an error names
  fail on their own (quarantined with their own backoff); a path whose file changed
  while it was sent (its signature differs before and after) goes back to be sent again.
- A destination-side error that names none of the run's paths cannot be pinned on one:
  the whole run goes back, unless the run carried a single path, which is then the one.
  The caller halves its batches after such a run, so a lone bad path is isolated in a
  few runs instead of stalling every batch for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .batch import Entry
from .prepare import Sig
from .rsync_output import Attribution
from .transfer import Result


@dataclass
class PathFailed:
    path: str
    side: str  # "source" | "destination"
    error: str
    entry: Entry


@dataclass
class Outcome:
    confirmed: dict[str, Entry] = field(default_factory=dict)  # arrived, or nothing to send
    lags: list[float] = field(default_factory=list)  # change seen -> at destination, per file
    requeue: dict[str, Entry] = field(default_factory=dict)  # not confirmed: send again
    failed: list[PathFailed] = field(default_factory=list)
    raced: int = 0
    dest_error: str | None = None  # the run failed as a whole: back off
    unattributed: bool = False  # destination errors no path could be blamed for


def settle(batch: dict[str, Entry], res: Result, source_root: str,
           before: dict[str, Sig], after: Callable[[str], Sig | None],
           done_wall: float) -> Outcome:
    """Decide, per path of ``batch``, what the run ``res`` did for it. ``before`` holds the
    signatures taken before the run for the paths that were sent as files (empty for a
    full-pass chunk, whose races the watcher reports as new events)."""
    out = Outcome()
    if not res.completed:
        out.requeue = dict(batch)
        out.dest_error = res.error or "rsync failed"
        return out
    errors, other = res.path_errors()
    blame = Attribution(batch, source_root)
    failing: dict[str, tuple[str, str]] = {}
    unpinned = [ln for ln in other]
    for err in errors:
        paths = blame.paths_for(err)
        if not paths:
            unpinned.append(err.line)
        for p in paths:
            failing.setdefault(p, (err.side, err.line))
    if unpinned and res.exit_code != 0:
        if len(batch) == 1:
            only = next(iter(batch))
            failing.setdefault(only, ("destination", unpinned[0]))
        else:
            out.requeue = {p: e for p, e in batch.items() if p not in failing}
            out.failed = [PathFailed(p, s, m, batch[p]) for p, (s, m) in failing.items()]
            out.dest_error = "; ".join(unpinned[:3])
            out.unattributed = True
            return out
    sent = set(res.sent)
    for path, entry in batch.items():
        if path in failing:
            side, line = failing[path]
            out.failed.append(PathFailed(path, side, line, entry))
        elif path in before and path in sent and after(path) != before[path]:
            out.requeue[path] = entry  # changed while being sent: send again
            out.raced += 1
        else:
            out.confirmed[path] = entry
            if path in sent:
                out.lags.append(max(0.0, done_wall - entry.wall))
    return out
