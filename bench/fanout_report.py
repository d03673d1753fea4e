"""The tables and the plot of a ``fanout-*`` run (``bench.fanout``): targets, lag per
destination and period, catch-up, nothing lost, connections, sender and receiver CPU."""

from __future__ import annotations

import math
from pathlib import Path

PERIODS = ("before", "during", "after")
PERIOD_NAMES = {"steady": "updates", "outage": "outage", "return": "return",
                "updates_end": "end of updates", "end": "end of drain"}


def _s(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.{digits}f}"


def _who(r: dict, d: dict) -> str:
    role = {"stopped": "stopped", "healthy": "healthy", "single": "only"}[d["role"]]
    return f"{d['name']} ({role})"


def _sender_periods(r: dict) -> str:
    names = {("steady", "outage"): "before", ("outage", "return"): "during",
             ("return", "updates_end"): "after", ("steady", "updates_end"): "updates",
             ("updates_end", "end"): "drain"}
    parts = []
    for p in r["sender"]["periods"]:
        name = names.get((p["from"], p["to"]), f"{p['from']}→{p['to']}")
        parts.append(f"{name} {p['tree_cores']:.2f}")
    return ", ".join(parts)


def markdown(doc: dict) -> str:
    p, m = doc["profile"], doc["machine"]
    done = [r for r in doc["results"] if "failed" not in r]
    fan = next((r for r in done if r["case"] == "fanout"), None)
    outage = fan.get("outage") if fan else None
    lines = [
        f"Profile `{p['name']}`: {doc['source_files']:,} source files ({p['files']:,} RRDs), "
        f"{p['rate']:g} updates/s for {p['duration']:g} s, drain capped at "
        f"{p['drain_cap']:g} s, on loopback; rrdsync to two destinations (two private sshd, "
        "`RRDSYNC_DEST=ssh://…:PORT_A/…,ssh://…:PORT_B/…`), destination b's sshd killed "
        f"(listener and established sessions) at {p['duration'] * p['outage_at']:g} s into "
        f"the updates and started again {p['outage_s']:g} s later"
        + (f" (measured: down from {outage['stop_s']:.1f} s to {outage['return_s']:.1f} s)"
           if outage else "")
        + "; baseline: the same rrdsync to one destination, no outage, in the same "
        f"invocation. Run started {doc['started']}.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"{m['rsync']}; {m['ssh']}; {m['rrdtool']}; Python {m['python']}; rrdsync at "
        f"{m.get('rrdsync_commit', '?')}, every setting at its default."
        + (f" Destinations on: {doc['dest_fs']}." if doc.get("dest_fs") else ""),
        "",
    ]
    if doc.get("targets"):
        lines += ["| target | measured | |", "|---|---|---|"]
        for t in doc["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | "
                         f"{'met' if t['met'] else '**not met**'} |")
        lines.append("")

    lines += ["Lag by when the update was made (before the outage, while b was down, after "
              "it returned):", "",
              "| run | destination | period | updates | p50 s | p99 s | p99.9 s | max s | "
              "undelivered |", "|---|---|---|---|---|---|---|---|---|"]
    for r in done:
        for d in r["destinations"]:
            periods = [x for x in PERIODS if x in d] or ["all"]
            if periods != ["all"]:
                periods.append("all")
            for per in periods:
                w = d[per]
                lines.append(f"| {r['case']} | {_who(r, d)} | {per} | {w['updates']} | "
                             f"{_s(w['p50_s'])} | {_s(w['p99_s'])} | {_s(w['p999_s'])} | "
                             f"{_s(w['max_s'])} | {w['undelivered']} |")

    lines += ["", "| run | destination | initial sync s | catch-up s | first arrival after "
              "return s | rrdsync's `destination_recovered` after return s | undelivered | "
              "torn / regressions | wrong path | temp files left | differ after drain | "
              "SSH conns | receiver CPU s whole / initial / steady | peak RSS receiver MB |",
              "|" + "---|" * 14]
    for r in done:
        for d in r["destinations"]:
            lines.append(
                f"| {r['case']} | {_who(r, d)} | {_s(d['initial_sync_s'], 1)} | "
                f"{_s(d.get('catch_up_s'))} | {_s(d.get('first_arrival_after_return_s'))} | "
                f"{_s(d.get('recovered_logged_after_return_s'))} | "
                f"{d['undelivered']}/{d['all']['updates']} | "
                f"{d['unknown_contents']} / {d['regressions']} | {d['misplaced']} | "
                f"{d['temp_leftovers']} | {d['differ_after_drain']} | {d['ssh_connections']} | "
                f"{d['cpu_dest_s']:.1f} / {d['initial_cpu_dest_s']:.1f} / "
                f"{d['steady_cpu_dest_s']:.1f} | {d['peak_rss_dest_mb']:.0f} |")

    lines += ["", "| run | sender CPU tree s | initial sync s | steady s | own s | steady own s "
              "(% of a core) | tree CPU in cores per period | peak RSS tree / own MB | "
              "load 1m start→end (other cores) |", "|" + "---|" * 9]
    for r in done:
        s, ml = r["sender"], r["machine_load"]
        lines.append(
            f"| {r['case']} | {s['cpu_tree_s']:.1f} | {s['initial_cpu_tree_s']:.1f} | "
            f"{s['steady_cpu_tree_s']:.1f} | {s['cpu_own_s']:.1f} | "
            f"{s['steady_cpu_own_s']:.1f} ({s['steady_own_core_pct']:.1f} %) | "
            f"{_sender_periods(r)} | {s['peak_rss_tree_mb']:.0f} / {s['peak_rss_own_mb']:.0f} | "
            f"{ml['loadavg_start'][0]:.1f}→{ml['loadavg_end'][0]:.1f} "
            f"({ml['other_cores']:.2f}) |")
    for r in doc["results"]:
        if "failed" in r:
            lines += ["", f"`{r['case']}` did not run: {r['failed']}"]
            continue
        for d in r["destinations"]:
            if d["observer_watch_failures"]:
                lines += ["", f"**{r['case']} {d['name']}: the observer could not watch "
                          f"{d['observer_watch_failures']} directories**: its lag figures are "
                          "not valid."]
    lines += [
        "",
        "Lag: from the update (rrdtool.update returned) to the first time that destination "
        "held that version or a later one, byte for byte; an undelivered update counts as "
        "infinitely late (∞). Periods split the updates by the time they were made: *before* "
        "b's sshd was killed, *during* (killed until listening again), *after*. *catch-up*: "
        "from b listening again until b held every update made before that moment. *first "
        "arrival*: b's first delivered file after the return (rrdsync's retry backoff is "
        "capped at 15 s). *temp files left*: rsync temp files (`.name.XXXXXX`) that the "
        "killed receivers left behind. CPU: user+sys seconds; *sender* is rrdsync's whole "
        "process tree (ssh masters and rsync included), *own* its Python process, *receiver* "
        "that destination's sshd and the rsync servers it ran (cgroup, killed processes "
        "included); *steady* from the first update to the end of the drain.",
    ]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    """``lag-cdf.png``: each destination's lag over the update phase (outage shaded) and
    its CDF per period."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(13, 5))
    colors = {"single": "grey", "healthy": "tab:blue", "stopped": "tab:red"}
    styles = {"before": "-", "during": ":", "after": "--", "all": "-"}
    for r in doc["results"]:
        if "failed" in r:
            continue
        o = r.get("outage")
        if o:
            ax_t.axvspan(o["stop_s"], o["return_s"], color="tab:red", alpha=0.1,
                         label=f"b down ({o['length_s']:.0f} s)")
        for d in r["destinations"]:
            pts = [(t, lag) for t, lag in d["lag_sample"] if not math.isinf(lag)]
            if pts:
                ax_t.scatter([t for t, _ in pts], [max(lag, 1e-3) for _, lag in pts], s=2,
                             color=colors[d["role"]], alpha=0.5,
                             label=f"{r['case']} {_who(r, d)}")
            for per in [x for x in PERIODS if x in d] or ["all"]:
                lags = sorted(lag for t, lag in d["lag_sample"] if _in(r, per, t))
                n = len(lags)
                done = [x for x in lags if not math.isinf(x)]
                if not done:
                    continue
                ax_c.step([max(x, 1e-3) for x in done], [(i + 1) / n for i in range(len(done))],
                          where="post", color=colors[d["role"]], linestyle=styles[per],
                          label=f"{r['case']} {d['name']} {per} (p99 {_s(d[per]['p99_s'])} s)")
    ax_t.set_yscale("log")
    ax_t.set_xlabel("update made at (s since the first update)")
    ax_t.set_ylabel("lag (s, log scale)")
    ax_t.grid(True, which="both", alpha=0.3)
    ax_t.legend(loc="upper left", fontsize=7, markerscale=4)
    ax_c.set_xscale("log")
    ax_c.set_xlabel("lag (s, log scale)")
    ax_c.set_ylabel("fraction of the period's updates delivered")
    ax_c.set_ylim(0, 1.01)
    ax_c.grid(True, which="both", alpha=0.3)
    ax_c.legend(loc="lower right", fontsize=7)
    p = doc["profile"]
    fig.suptitle(f"{p['name']}: {p['files']:,} RRDs, {p['rate']:g} updates/s, "
                 f"{p['duration']:g} s, b down for {p['outage_s']:g} s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _in(r: dict, period: str, t: float) -> bool:
    o = r.get("outage")
    if period == "all" or not o:
        return True
    if period == "before":
        return t < o["stop_s"]
    if period == "during":
        return o["stop_s"] <= t < o["return_s"]
    return t >= o["return_s"]
