"""Writes a run's results as JSON, a markdown table and a PNG of the lag CDFs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def _s(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.{digits}f}"


def _load(r: dict) -> str:
    m = r["machine_load"]
    return f"{m['loadavg_start'][0]:.1f}→{m['loadavg_end'][0]:.1f} ({m['other_cores']:.2f})"


COLUMNS = [
    ("tool", lambda r: r["tool"]),
    ("initial sync s", lambda r: _s(r["initial_sync_s"], 1)),
    ("lag p50 s", lambda r: _s(r["lag_p50_s"])),
    ("p95 s", lambda r: _s(r["lag_p95_s"])),
    ("p99 s", lambda r: _s(r["lag_p99_s"])),
    ("p99.9 s", lambda r: _s(r.get("lag_p999_s"))),
    ("max s", lambda r: _s(r["lag_max_s"])),
    ("undelivered", lambda r: f"{r['undelivered']}/{r['updates']}"),
    ("wrong path", lambda r: str(r["misplaced"])),
    ("differ after drain", lambda r: str(r["differ_after_drain"])),
    ("SSH conns", lambda r: str(r["ssh_connections"])),
    ("CPU tree s", lambda r: f"{r['cpu_tree_s']:.1f}"),
    ("CPU own s", lambda r: f"{r['cpu_own_s']:.1f}"),
    ("CPU dest s", lambda r: f"{r['cpu_dest_s']:.1f}"),
    ("steady CPU tree/own/dest s", lambda r: f"{r['steady_cpu_tree_s']:.1f} / "
     f"{r['steady_cpu_own_s']:.1f} / {r['steady_cpu_dest_s']:.1f}"),
    ("peak RSS tree/own MB", lambda r: f"{r['peak_rss_tree_mb']:.0f} / {r['peak_rss_own_mb']:.0f}"),
    ("load 1m start→end (other cores)", _load),
]


def _kb(x: float | None) -> str:
    return "—" if x is None else f"{x / 1000:.1f}"


# over a link (the network model): what crossed the wire, the path each tool saw, the relay
NET_COLUMNS = [
    ("tool", lambda r: r["tool"]),
    ("wire KB/update up / down", lambda r: f"{_kb(r.get('wire_up_per_update'))} / "
     f"{_kb(r.get('wire_down_per_update'))}"),
    ("initial sync wire MB up / down", lambda r: f"{r['wire_initial_up_bytes'] / 1e6:.1f} / "
     f"{r['wire_initial_down_bytes'] / 1e6:.1f}"),
    ("steady wire MB up / down", lambda r: f"{r['wire_steady_up_bytes'] / 1e6:.1f} / "
     f"{r['wire_steady_down_bytes'] / 1e6:.1f}"),
    ("path RTT ms", lambda r: f"{r['network']['rtt_ms']:.1f}"),
    ("path up / down Mbit/s", lambda r: f"{r['network']['up_mbit']:.1f} / "
     f"{r['network']['down_mbit']:.1f}"),
    ("ssh host true s", lambda r: f"{r['network']['ssh_true_s']:.2f}"),
    ("relay CPU s", lambda r: f"{r['cpu_relay_s']:.1f}"),
]


def markdown(doc: dict) -> str:
    p, m = doc["profile"], doc["machine"]
    lines = [
        f"Profile `{p['name']}`: {doc['source_files']:,} source files "
        f"({p['files']:,} RRDs), {p['rate']:g} updates/s for {p['duration']:g} s, "
        f"drain capped at {p['drain_cap']:g} s, "
        + (f"over {p['link']['rate_mbit']:g} Mbit/s and {p['link']['rtt_ms']:g} ms RTT"
           if p.get("link") else "on loopback")
        + f". Run started {doc['started']}.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"{m['rsync']}; {m['ssh']}; lsyncd {m['lsyncd']}; {m['rrdtool']}; Python {m['python']};"
        f" rrdsync at {m.get('rrdsync_commit', '?')}, every setting at its default."
        + (f" Destinations on: {doc['dest_fs']}." if doc.get("dest_fs") else ""),
        "",
        "| " + " | ".join(c for c, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    done = [r for r in doc["results"] if "failed" not in r]
    for r in done:
        lines.append("| " + " | ".join(f(r) for _, f in COLUMNS) + " |")
    for r in doc["results"]:
        if "failed" in r:
            lines += ["", f"`{r['tool']}` did not run: {r['failed']}"]
        elif r.get("observer_watch_failures"):
            lines += ["", f"**`{r['tool']}`: the observer could not watch "
                      f"{r['observer_watch_failures']} destination directories** (inotify "
                      "watch limit, shared with everything else running as root): updates "
                      "in them count as undelivered; its lag figures are not valid."]
    net = doc.get("network")
    if net:
        link, cal = net["link"], net["calibration"]
        lines += [
            "",
            f"Network model: destination in namespace `{net['namespace']}` behind a veth pair, "
            f"tbf {link['rate_mbit']:g} Mbit/s each way (queue {link['queue_ms']:g} ms), "
            f"relay delay {cal['delay_ms']:.3f} ms per direction for {link['rtt_ms']:g} ms "
            f"RTT (RTT at the nominal {cal['nominal_delay_ms']:.2f} ms was "
            f"{cal['rtt_at_nominal_ms']:.2f} ms). Measured through it before each tool: "
            "path RTT (median of 10 one-byte echoes), TCP payload throughput of a ~1 s "
            "transfer each way, and `ssh host true` (one new SSH connection). Wire bytes "
            "from the veth's counters (frames, headers and ACKs included); per update: "
            "steady-phase bytes / delivered updates. Relay CPU is not counted in any tool's.",
            "",
            "| " + " | ".join(c for c, _ in NET_COLUMNS) + " |",
            "|" + "---|" * len(NET_COLUMNS),
        ]
        for r in done:
            lines.append("| " + " | ".join(f(r) for _, f in NET_COLUMNS) + " |")
    tree = doc.get("tree")
    if tree:
        lines += ["", f"Source tree: {tree.get('rows_model', '?')}; zlib -6 over a sample of "
                  f"the files one after another: {tree.get('zlib6_ratio', 0):.0%} of the bytes."]
    lines += [
        "",
        "Lag: from the update (rrdtool.update returned) to the first time the destination "
        "held that version or a later one, byte for byte; undelivered updates count as "
        "infinitely late (∞). CPU: user+sys seconds over the whole run (initial sync, updates, "
        "drain); *tree* is the tool's whole process tree (ssh and rsync children included), "
        "*own* its main process, *dest* the destination's sshd and rsync servers; *steady* "
        "counts from the first update to the end of the drain. *other cores*: CPU the rest of "
        "the machine used meanwhile (other work on the box), in cores.",
    ]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in doc["results"]:
        sample = r.get("lag_sample") or []  # none for a tool that failed
        if not sample or not r["updates"]:
            continue
        delivered_frac = (r["updates"] - r["undelivered"]) / r["updates"]
        n = len(sample)
        ys = [delivered_frac * (i + 1) / n for i in range(n)]
        xs = [max(x, 1e-3) for x in sample]
        ax.step(xs, ys, where="post",
                label=f"{r['tool']} (p99 {_s(r['lag_p99_s'])} s)")
    ax.set_xscale("log")
    ax.set_xlabel("lag from update to byte-identical at destination (s, log scale)")
    ax.set_ylabel("fraction of updates delivered")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    p = doc["profile"]
    ax.set_title(f"{p['name']}: {p['files']:,} RRDs, {p['rate']:g} updates/s, "
                 f"{p['duration']:g} s")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(doc: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)

    def clean(x: object) -> object:
        if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
            return None if math.isnan(x) else "inf"
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    (out / "results.json").write_text(json.dumps(clean(doc), indent=1) + "\n")
    md, plots = markdown, plot
    if doc.get("kind") == "fanout":  # several destinations, one stopped: its own tables
        from bench import fanout_report
        md, plots = fanout_report.markdown, fanout_report.plot
    (out / "results.md").write_text(md(doc))
    try:
        plots(doc, out / "lag-cdf.png")
    except ImportError:  # matplotlib is in bench/setup.sh's venv, not the test extras
        print("matplotlib missing: no lag-cdf.png", file=sys.stderr)


def load(path: Path) -> dict:
    """A results.json read back (``"inf"`` becomes ∞ again), e.g. to re-render it."""

    def back(x: object) -> object:
        if x == "inf":
            return math.inf
        if isinstance(x, dict):
            return {k: back(v) for k, v in x.items()}
        if isinstance(x, list):
            return [back(v) for v in x]
        return x

    return back(json.loads(path.read_text()))  # type: ignore[return-value]


if __name__ == "__main__":
    # python -m bench.report DIR: rewrite DIR's results.md and lag-cdf.png from results.json
    d = Path(sys.argv[1])
    write(load(d / "results.json"), d)
