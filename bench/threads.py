"""``python -m bench.threads PID``: CPU seconds per thread of a Python process, by name.

Thread ids come from /proc/PID/task; names and what each thread is doing from
``py-spy dump --nonblocking`` (which does not stop the process).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        rest = (task / "stat").read_bytes().rsplit(b")", 1)[1].split()
        out[int(task.name)] = (int(rest[11]) + int(rest[12])) / TICK
    return out


def thread_names(pid: int) -> dict[int, str]:
    exe = Path(sys.executable).parent / "py-spy"
    dump = subprocess.run([str(exe) if exe.exists() else "py-spy", "dump", "--nonblocking",
                           "--pid", str(pid)], capture_output=True, text=True).stdout
    names: dict[int, str] = {}
    current = None
    for line in dump.splitlines():
        m = re.match(r"Thread (0x[0-9A-Fa-f]+|\d+) \(([^)]*)\): \"(.*)\"", line)
        if m:
            tid = int(m.group(1), 0)
            current = tid
            names[tid] = m.group(3)
        elif current is not None and line.startswith("    ") and " (" in line:
            names[current] += " @ " + line.strip()
            current = None
    return names


def main() -> None:
    pid = int(sys.argv[1])
    cpu, names = thread_cpu(pid), thread_names(pid)
    for tid, sec in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"{sec:8.2f} s  {tid:>7}  {names.get(tid, '?')}")


if __name__ == "__main__":
    main()
