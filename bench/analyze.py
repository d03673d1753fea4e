"""Joins the updater's log with the observer's log: lag per update, undelivered updates.

An update (file f, version v, done at t) is delivered at the first time the observer saw f
at the destination holding version v or a later one (a later version carries v's data
too: rrdtool never forgets an update). Contents that match no version the updater ever
produced (a torn copy) and a version older than one already delivered (a regression)
are counted: both would be integrity failures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class GenLog:
    rels: list[str] = field(default_factory=list)
    versions: list[dict[str, int]] = field(default_factory=list)  # per file: digest -> version
    updates: list[list[tuple[int, float]]] = field(default_factory=list)  # per file: (v, t)
    final: dict[int, str] = field(default_factory=dict)  # updated file -> last digest
    start: float = 0.0
    end: float = 0.0
    count: int = 0
    rate: float = 0.0
    duration: float = 0.0
    max_late: float = 0.0


def read_genlog(path: Path) -> GenLog:
    g = GenLog()
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            head = parts[0]
            if head.startswith("="):
                g.rels.append(parts[3])
                g.versions.append({parts[2]: int(parts[1])})
                g.updates.append([])
            elif head == "!start":
                g.start, g.rate, g.duration = float(parts[1]), float(parts[2]), float(parts[3])
            elif head == "!end":
                g.end, g.max_late = float(parts[1]), float(parts[3])
            elif len(parts) == 4:
                t, idx, v, d = float(head), int(parts[1]), int(parts[2]), parts[3]
                g.versions[idx][d] = v
                g.updates[idx].append((v, t))
                g.final[idx] = d
                g.count += 1
    return g


@dataclass
class ObsLog:
    arrivals: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)
    overflows: int = 0
    watch_failures: int = 0
    hashing_since: float | None = None


def read_obslog(path: Path, offset: int = 0, into: ObsLog | None = None) -> tuple[ObsLog, int]:
    """Reads complete lines from ``offset``; returns the log and the offset to go on from."""
    o = into or ObsLog()
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    for raw in data[:end].splitlines():
        parts = raw.decode("utf-8", "surrogateescape").split("\t")
        if len(parts) != 3:
            continue
        t, rel, d = float(parts[0]), parts[1], parts[2]
        if rel.startswith("!"):
            if rel == "!overflow":
                o.overflows += 1
            elif rel == "!watch_failed":
                o.watch_failures += 1
            elif rel == "!hashing":
                o.hashing_since = t
            continue
        o.first_seen.setdefault(rel, t)
        if d != "-":
            o.arrivals.setdefault(rel, []).append((t, d))
    return o, offset + end


@dataclass
class Lags:
    lags: list[float]  # delivered updates, seconds
    undelivered: int
    unknown_contents: int
    regressions: int
    total: int

    def percentile(self, q: float) -> float:
        """Over all updates, an undelivered one counting as infinitely late."""
        if not self.total:
            return math.nan
        rank = max(1, math.ceil(q * self.total))
        return self.lags[rank - 1] if rank <= len(self.lags) else math.inf


@dataclass
class Deliveries:
    """Every update with when it was made and how late it arrived (inf: never)."""

    records: list[tuple[float, float]]  # (update time, lag s); file by file, in version order
    unknown_contents: int
    regressions: int

    def window(self, t0: float = -math.inf, t1: float = math.inf) -> Lags:
        """The lags of the updates made in [t0, t1) (e.g. before, during, after an outage)."""
        sel = [lag for t, lag in self.records if t0 <= t < t1]
        done = sorted(x for x in sel if not math.isinf(x))
        return Lags(done, len(sel) - len(done), 0, 0, len(sel))


def deliveries(g: GenLog, o: ObsLog) -> Deliveries:
    out: list[tuple[float, float]] = []
    unknown = regressions = 0
    for idx, ups in enumerate(g.updates):
        if not ups:
            continue
        versions = g.versions[idx]
        arrivals = o.arrivals.get(g.rels[idx], [])
        i, best = 0, -1
        for t, d in arrivals:
            v = versions.get(d)
            if v is None:
                unknown += d != "?"
                continue
            if v < best:
                regressions += 1
                continue
            best = v
            while i < len(ups) and ups[i][0] <= v:
                out.append((ups[i][1], max(0.0, t - ups[i][1])))
                i += 1
        out.extend((t_up, math.inf) for _, t_up in ups[i:])
    return Deliveries(out, unknown, regressions)


def lags(g: GenLog, o: ObsLog) -> Lags:
    d = deliveries(g, o)
    done = sorted(lag for _, lag in d.records if not math.isinf(lag))
    return Lags(done, len(d.records) - len(done), d.unknown_contents, d.regressions, g.count)
