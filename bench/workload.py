"""The OpenNMS-like source tree and the updater that rewrites its RRD files in place.

Tree: ``snmp/fs/Servers/node<N>/if<R>/ds<I>.rrd`` with a ``.meta`` beside each RRD and
``ds.properties``/``strings.properties`` per resource, made by the shared test fixture
(``tests.fixtures.rrd.make_tree``: copies of one real ``rrdtool create`` file with
OpenNMS's default RRAs, step 300, one data source, 38,232 bytes each).

Updater (``python -m bench.workload update ROOT LOG --rate R --duration S``): walks the RRD
files in a fixed shuffled order (every file once per round, like a collector on a 300 s
step) and updates one every 1/R seconds through librrd in-process (the python ``rrdtool``
binding: no fork per update, so two cores keep the rate). Each update uses the file's next
logical timestamp (last update + 300 s), so every update changes the file; right after
``rrdtool.update`` returns (the writer closed the file) it reads the file back and logs
``<monotonic time> <file index> <version> <digest>``. Before the first update it logs, per
file, ``=<index> <version> <digest> <relative path>`` for the content the file had then.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import struct
import sys
import time
from pathlib import Path

T0 = 1_700_000_000  # the fixture's --start; logical time of version 0
STEP = 300
FILES_PER_RESOURCE = 5
RESOURCES_PER_NODE = 10


def layout(files: int) -> tuple[int, int, int]:
    """(nodes, resources per node, files per resource) giving exactly ``files`` RRDs."""
    per_node = FILES_PER_RESOURCE * RESOURCES_PER_NODE
    if files % per_node:
        raise ValueError(f"file count must be a multiple of {per_node}")
    return files // per_node, RESOURCES_PER_NODE, FILES_PER_RESOURCE


def build_tree(root: Path, files: int) -> None:
    repo = Path(__file__).resolve().parent.parent
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from tests.fixtures.rrd import make_tree

    nodes, resources, per = layout(files)
    root.mkdir(parents=True, exist_ok=True)
    make_tree(root, nodes=nodes, resources=resources, files=per, foreign_source=True)


def rrd_files(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            if n.endswith(".rrd"):
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def last_update(data: bytes) -> int:
    """``live_head.last_up`` from an RRD file's header (x86-64 layout of rrdtool 1.x)."""
    ds_cnt, rra_cnt = struct.unpack_from("<QQ", data, 24)
    off = 128 + 120 * ds_cnt + 120 * rra_cnt
    return struct.unpack_from("<q", data, off)[0]


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def update(root: Path, log_path: Path, rate: float, duration: float, seed: int) -> None:
    import rrdtool

    rels = rrd_files(root)
    order = list(range(len(rels)))
    random.Random(seed).shuffle(order)
    version: list[int] = []
    with open(log_path, "w", buffering=1 << 20) as log:
        for i, rel in enumerate(rels):
            data = (root / rel).read_bytes()
            v = (last_update(data) - T0) // STEP
            version.append(v)
            log.write(f"={i}\t{v}\t{digest(data)}\t{rel}\n")
        log.flush()
        paths = [str(root / r) for r in rels]
        n_total = int(rate * duration)
        start = time.monotonic()
        log.write(f"!start\t{start:.6f}\t{rate}\t{duration}\n")
        log.flush()
        late = 0.0
        for i in range(n_total):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                late = max(late, -delay)
            idx = order[i % len(order)]
            v = version[idx] + 1
            version[idx] = v
            path = paths[idx]
            rrdtool.update(path, f"{T0 + STEP * v}:{v % 1000}")
            t = time.monotonic()
            with open(path, "rb") as f:
                d = digest(f.read())
            log.write(f"{t:.6f}\t{idx}\t{v}\t{d}\n")
            if i % 200 == 0:
                log.flush()
        end = time.monotonic()
        log.write(f"!end\t{end:.6f}\t{n_total}\t{late:.6f}\n")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.workload")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("root", type=Path)
    b.add_argument("--files", type=int, required=True)
    u = sub.add_parser("update")
    u.add_argument("root", type=Path)
    u.add_argument("log", type=Path)
    u.add_argument("--rate", type=float, required=True)
    u.add_argument("--duration", type=float, required=True)
    u.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "build":
        build_tree(a.root, a.files)
    else:
        update(a.root, a.log, a.rate, a.duration, a.seed)


if __name__ == "__main__":
    main()
