"""``python -m bench.spy_summary py-spy.txt``: where a py-spy ``--format raw`` profile spent.

Prints the functions with the most samples on top of the stack (self) and anywhere in the
stack (inclusive), as shares of all non-idle samples.
"""

from __future__ import annotations

import sys
from collections import Counter


def summarize(path: str, top: int = 25) -> str:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            count = int(n)
            frames = stack.split(";")
            total += count
            self_c[frames[-1]] += count
            for fr in set(frames[1:]):
                incl[fr] += count
    out = [f"{total} samples"]
    for title, c in (("self", self_c), ("inclusive", incl)):
        out.append(f"-- {title}")
        for fr, n in c.most_common(top):
            out.append(f"{100 * n / max(total, 1):5.1f}%  {fr}")
    return "\n".join(out)


if __name__ == "__main__":
    print(summarize(sys.argv[1]))
