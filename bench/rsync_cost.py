"""What one rsync run costs, by batch size and options, on both ends of one SSH connection.

``python -m bench.rsync_cost [--files 2000] [--runs 20]``: a private sshd, a multiplexed SSH
master (as rrdsync uses), then for each option set and batch size: update ``batch`` RRD
files through librrd, send exactly those with ``--files-from`` over the master, ``runs``
times; report mean CPU per run on the sending side (rsync + ssh client) and on the
receiving side (sshd + rsync server), and wall time per run. Fitting cost = a + b·batch
gives the fixed cost of a run and the cost of one more file, which is what batching trades.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import procstat
from bench.tools import REPO
from bench.workload import STEP, T0, build_tree, last_update, rrd_files

sys.path.insert(0, str(REPO))
from tests.fixtures.sshd import Sshd

# an event batch as rrdsync sends it (transfer.Rsync.send_list with ignore_times)
BASE = ["--times", "--omit-dir-times", "--ignore-times", "--from0"]
VARIANTS = {
    "-z (negotiated: zstd)": ["--compress"],
    "-z zstd:1": ["--compress", "--compress-choice=zstd", "--compress-level=1"],
    "-z lz4": ["--compress", "--compress-choice=lz4"],
    "no -z": [],
    "no -z --no-implied-dirs": ["--no-implied-dirs"],
    "-W (whole file)": ["--whole-file"],
}


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    import rrdtool

    ap = argparse.ArgumentParser(prog="python -m bench.rsync_cost")
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--batches", default="1,10,50,200")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/rrdsync-bench/cost"))
    a = ap.parse_args()
    if a.scratch.exists():
        shutil.rmtree(a.scratch)
    a.scratch.mkdir(parents=True)
    os.chmod(a.scratch, 0o755)
    os.chmod(a.scratch.parent, 0o755)
    src = a.scratch / "src"
    build_tree(src, a.files)
    rels = rrd_files(src)
    version = {r: (last_update((src / r).read_bytes()) - T0) // STEP for r in rels}
    sshd = Sshd(workdir=a.scratch / "sshd", dest=a.scratch / "dest")
    sshd.start()
    assert sshd.proc is not None
    dest_cg = procstat.CpuGroup(f"cost-dest-{os.getpid()}")
    dest_cg.add(sshd.proc.pid)
    ctl = a.scratch / "ctl"
    ssh = ["ssh", "-p", str(sshd.port), "-i", str(sshd.client_key), "-o",
           f"UserKnownHostsFile={sshd.known_hosts}", "-o", "StrictHostKeyChecking=yes",
           "-o", "BatchMode=yes", "-o", f"ControlPath={ctl}"]
    master = subprocess.Popen([*ssh, "-M", "-N", "rrdsync-t@127.0.0.1"])
    while not ctl.exists():
        time.sleep(0.05)
    rsh = " ".join(ssh)
    target = f"rrdsync-t@127.0.0.1:{sshd.dest}/"
    subprocess.run(["rsync", "-a", "-e", rsh, f"{src}/", target], check=True)
    listing = a.scratch / "files"
    batches = [int(x) for x in a.batches.split(",")]
    print(f"{'options':<18}{'batch':>6}{'send ms/run':>13}{'recv ms/run':>13}"
          f"{'wall ms/run':>13}{'recv ms/file':>14}")
    i = 0
    for name, opts in VARIANTS.items():
        for b in batches:
            send = recv = wall = 0.0
            for _ in range(a.runs):
                chosen = [rels[(i + k) % len(rels)] for k in range(b)]
                i += b
                for r in chosen:
                    version[r] += 1
                    rrdtool.update(str(src / r), f"{T0 + STEP * version[r]}:{version[r]}")
                listing.write_bytes(b"".join(os.fsencode(r) + b"\0" for r in sorted(chosen)))
                d0 = dest_cg.cpu()
                m0 = procstat.own_cpu(master.pid)
                c0, t0 = children_cpu(), time.monotonic()
                subprocess.run(["rsync", *BASE, *opts, "--rsh", rsh,
                                f"--files-from={listing}", f"{src}/", target], check=True)
                wall += time.monotonic() - t0
                time.sleep(0.05)  # let the server side exit and be reaped
                send += children_cpu() - c0 + procstat.own_cpu(master.pid) - m0
                recv += dest_cg.cpu() - d0
            n = a.runs
            print(f"{name:<18}{b:>6}{1000 * send / n:>13.1f}{1000 * recv / n:>13.1f}"
                  f"{1000 * wall / n:>13.1f}{1000 * recv / n / b:>14.2f}", flush=True)
    master.terminate()
    master.wait()
    sshd.stop()
    dest_cg.close()
    shutil.rmtree(a.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
