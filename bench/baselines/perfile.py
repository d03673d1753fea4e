"""The hand-made watchdog script: per changed file, ``ssh mkdir -p`` then one ``rsync``.

Written the way such scripts usually are, but carefully: it copies the tree once at start,
listens for close-after-write as well as modify (rrdtool writes through mmap, which never
raises a modify event), creates the file's directory on the far side and sends the file
into it, synchronously in the event handler, one event at a time.
"""

from __future__ import annotations

import os
import subprocess
import threading

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from bench.baselines.common import parser, rsh, ssh_args

SUFFIXES = (".rrd", ".jrb", ".meta", ".properties")


class Handler(FileSystemEventHandler):
    def __init__(self, a) -> None:
        self.a = a
        self.src = a.src.rstrip("/")

    def send(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.src_path)
        if event.is_directory or not path.endswith(SUFFIXES):
            return
        rel_dir = os.path.dirname(os.path.relpath(path, self.src))
        target = os.path.join(self.a.dest, rel_dir)
        subprocess.run([*ssh_args(self.a), self.a.host, "mkdir", "-p", target], check=False)
        rc = subprocess.run(["rsync", "-a", "-e", rsh(self.a), path,
                             f"{self.a.host}:{target}/"], check=False).returncode
        print(f"sent {path} rc={rc}", flush=True)

    def on_closed(self, event: FileSystemEvent) -> None:
        self.send(event)

    def on_modified(self, event: FileSystemEvent) -> None:
        self.send(event)


def main() -> None:
    a = parser("perfile").parse_args()
    observer = Observer()
    observer.schedule(Handler(a), a.src, recursive=True)
    observer.start()
    print("watching", a.src, flush=True)
    subprocess.run(["rsync", "-a", "-e", rsh(a), a.src.rstrip("/") + "/",
                    f"{a.host}:{a.dest.rstrip('/')}/"], check=False)
    threading.Event().wait()


if __name__ == "__main__":
    main()
