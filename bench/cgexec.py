"""``python -m bench.cgexec CGROUP_PROCS_FILE CMD ARGS...``: join a cgroup, then exec CMD.

So that a tool is accounted from its first instruction, children included (exec keeps the
pid, so the caller's Popen.pid is the tool's own process).
"""

import os
import sys

with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
os.execvp(sys.argv[2], sys.argv[2:])
