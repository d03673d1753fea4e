"""The OpenNMS-like source tree and the updater that rewrites its RRD files in place.

Tree: ``snmp/fs/Servers/node<N>/if<R>/ds<I>.rrd`` with a ``.meta`` beside each RRD and
``ds.properties``/``strings.properties`` per resource, made by the shared test fixture
(``tests.fixtures.rrd.make_tree``: copies of one real ``rrdtool create`` file with
OpenNMS's default RRAs, step 300, one data source, 38,232 bytes each).

Every file then gets its own data rows (``fill_rows``), headers left alike: a fresh
``rrdtool create`` file is 36.8 KB of NaN rows that compresses to 263 bytes, and a tree of
byte-identical copies lets rsync's compressed stream send each file as a back-reference to
the one before. Neither is what an operator's year-old tree looks like, and both make any
tool that compresses look nearly free. The rows model (``ROWS_MODEL``): 70 % of the files
hold rates (a random walk of full-precision doubles at a per-file scale and phase), 30 %
hold mostly-zero counters (errors, discards: zero with a rare small rate). Every row is
filled, as after a year of collection. The tree compresses to ~65 % with zlib or zstd and
~70 % with lz4 (``tree.json`` records the ratio measured on the built tree).

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
import array
import hashlib
import os
import random
import struct
import sys
import time
import zlib
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


ROWS_MODEL = "rows-v1: 70% random-walk rates, 30% mostly-zero counters, every row filled"
EMPTY_MODEL = "empty: byte-identical copies of one fresh rrdtool create file (all rows NaN)"
ZERO_FRACTION = 0.3
_POOL_SIZE = 1 << 16


def build_tree(root: Path, files: int, seed: int = 1, fill: bool = True) -> dict:
    """Build the tree and give every RRD its own rows (``fill=False``: the old workload,
    identical empty copies, kept to show what it changed); returns facts for ``tree.json``."""
    repo = Path(__file__).resolve().parent.parent
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from tests.fixtures.rrd import make_tree

    nodes, resources, per = layout(files)
    root.mkdir(parents=True, exist_ok=True)
    made = make_tree(root, nodes=nodes, resources=resources, files=per, foreign_source=True)
    if fill:
        fill_rows(made, seed)
    return {"files": files, "rows_model": ROWS_MODEL if fill else EMPTY_MODEL,
            "zlib6_ratio": round(compress_ratio(made[:: max(1, len(made) // 200)]), 3)}


def row_area(data: bytes) -> tuple[int, int]:
    """(offset, count) of the rrd_value_t rows: the file's tail, after every header part."""
    ds_cnt, rra_cnt = struct.unpack_from("<QQ", data, 24)
    rows = sum(struct.unpack_from("<Q", data, 128 + 120 * ds_cnt + 120 * i + 24)[0]
               for i in range(rra_cnt))
    n = rows * ds_cnt
    return len(data) - 8 * n, n


def fill_rows(paths: list[Path], seed: int = 1) -> None:
    """Overwrite every file's rows with values of its own (a valid RRD stays valid: rrdtool
    reads rows only to graph or fetch them; the header, its pointers included, is kept)."""
    rng = random.Random(seed)
    walk, x = array.array("d"), 0.5
    for _ in range(_POOL_SIZE):
        x = abs(x + rng.gauss(0, 0.05))
        walk.append(x)
    walk += walk  # a per-file phase can read past the end
    for path in paths:
        with open(path, "r+b") as f:
            off, n = row_area(f.read())
            if rng.random() < ZERO_FRACTION:
                rows = array.array("d", bytes(8 * n))
                for _ in range(max(1, n // 50)):
                    rows[rng.randrange(n)] = rng.randrange(1, 20) / 300
            else:
                scale = rng.uniform(1, 10) * 10 ** rng.randrange(0, 7)
                phase = rng.randrange(_POOL_SIZE)
                rows = array.array("d", [v * scale for v in walk[phase:phase + n]])
            f.seek(off)
            f.write(rows.tobytes())


def compress_ratio(paths: list[Path]) -> float:
    """zlib -6 over the files one after another (what a single compressed stream sees)."""
    raw = b"".join(p.read_bytes() for p in paths)
    return len(zlib.compress(raw, 6)) / max(1, len(raw))


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
        print(build_tree(a.root, a.files))
    else:
        update(a.root, a.log, a.rate, a.duration, a.seed)


if __name__ == "__main__":
    main()
