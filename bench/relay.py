"""A TCP delay line: the latency half of the benchmark's network model (bench.netmodel).

This kernel has no ``netem``, so the link's delay is made here, in user space, on the
destination's side of the shaped veth pair: the tool's TCP connection crosses the veth
(rate-limited by ``tbf`` both ways) and ends at this relay, which holds every chunk it
reads for the one-way delay before writing it on, in each direction, in order. A message
that needs an answer therefore takes one round trip (2 x delay) longer, exactly as over a
real path with that RTT. A new connection's TCP handshake is answered by the relay's kernel
at once, so the relay makes up for it: it opens the upstream connection 1.5 RTT after
accepting and delivers nothing before then, which is when a server behind a real path
would see the client's first byte (SYN out, SYN-ACK back, ACK with data out). What it
does not model: TCP's own reaction to the RTT (slow start, cwnd restart after idle),
loss. Those make a real WAN slower for short connections than this model.

Each direction of each connection is one reader thread (queues ``(due, chunk)``; stops
reading while more than ``limit`` bytes wait, so the sender feels TCP's back pressure) and
one writer thread (sleeps until the head is due, writes it). Threads, not asyncio: epoll's
millisecond timeout granularity would round a LAN's 0.25 ms to 1 ms.

``python -m bench.relay --delay S --limit BYTES --map LISTEN=TARGET ... --service
NAME=LISTEN ...`` where LISTEN and TARGET are ``host:port``; services (``echo``, ``sink``:
says ok, reads to EOF, then answers the byte count, ``source``: reads a count and a newline, sends
that many bytes) run in-process behind the same delay line, for measuring the path. Prints
one JSON line ``{"ready": true}`` once every listener is up; runs until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from collections import deque

CHUNK = 256 * 1024


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class Pipe:
    """One direction of one connection, ``delay`` seconds long."""

    def __init__(self, src: socket.socket, delay: float, limit: int, not_before: float) -> None:
        self.src = src
        self.dst: socket.socket | None = None
        self.delay, self.limit, self.not_before = delay, limit, not_before
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.eof = False
        self.broken = False
        self.cv = threading.Condition()

    def read_loop(self) -> None:
        while True:
            try:
                data = self.src.recv(CHUNK)
            except OSError:
                data = b""
            now = time.monotonic()
            with self.cv:
                if not data or self.broken:
                    self.eof = True
                    self.cv.notify_all()
                    return
                self.queue.append((max(now + self.delay, self.not_before), data))
                self.queued += len(data)
                self.cv.notify_all()
                while self.queued > self.limit and not self.broken:
                    self.cv.wait()

    def write_loop(self, on_broken) -> None:
        assert self.dst is not None
        while True:
            with self.cv:
                while not self.queue and not self.eof:
                    self.cv.wait()
                if not self.queue:
                    break
                due = self.queue[0][0]
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self.cv:  # everything due by now goes out in one write
                now = time.monotonic()
                parts = []
                while self.queue and self.queue[0][0] <= now:
                    parts.append(self.queue.popleft()[1])
            data = b"".join(parts)
            try:
                self.dst.sendall(data)
            except OSError:
                on_broken()
                return
            with self.cv:
                self.queued -= len(data)
                self.cv.notify_all()
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)

    def break_(self) -> None:
        with self.cv:
            self.broken = True
            self.cv.notify_all()


class Relay:
    def __init__(self, delay: float, limit: int) -> None:
        self.delay, self.limit = delay, limit
        self.handshake = 3 * delay  # 1.5 RTT: see the module docstring

    def serve(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        srv = socket.create_server(listen, backlog=256, reuse_port=False)
        threading.Thread(target=self._accept_loop, args=(srv, target), daemon=True).start()

    def _accept_loop(self, srv: socket.socket, target: tuple[str, int]) -> None:
        while True:
            client, _ = srv.accept()
            t = time.monotonic()
            threading.Thread(target=self._connection, args=(client, target, t),
                             daemon=True).start()

    def _connection(self, client: socket.socket, target: tuple[str, int], t0: float) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up = Pipe(client, self.delay, self.limit, t0 + self.handshake)
        threading.Thread(target=up.read_loop, daemon=True).start()
        wait = t0 + self.handshake - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            server = socket.create_connection(target)
        except OSError:
            up.break_()
            client.close()
            return
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        down = Pipe(server, self.delay, self.limit, 0.0)
        down.dst, up.dst = client, server
        done = threading.Semaphore(0)

        def broken() -> None:
            for p in (up, down):
                p.break_()
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

        def writer(p: Pipe) -> None:
            p.write_loop(broken)
            done.release()

        threading.Thread(target=down.read_loop, daemon=True).start()
        threading.Thread(target=writer, args=(up,), daemon=True).start()
        threading.Thread(target=writer, args=(down,), daemon=True).start()
        done.acquire()
        done.acquire()
        client.close()
        server.close()


def _serve_forever(handler) -> tuple[str, int]:
    """A thread-per-connection server on 127.0.0.1 (behind the relay); returns its address."""
    srv = socket.create_server(("127.0.0.1", 0))

    def loop() -> None:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=_run_service, args=(handler, conn), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[:2]


def _run_service(handler, conn: socket.socket) -> None:
    with conn, contextlib.suppress(OSError):
        handler(conn)


def echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(CHUNK):
        conn.sendall(data)


def sink(conn: socket.socket) -> None:
    conn.sendall(b"ok\n")  # the client starts its clock when this arrives
    n = 0
    while data := conn.recv(CHUNK):
        n += len(data)
    conn.sendall(f"{n}\n".encode())


def source(conn: socket.socket) -> None:
    buf = b""
    while b"\n" not in buf:
        data = conn.recv(64)
        if not data:
            return
        buf += data
    n = int(buf.split(b"\n", 1)[0])
    block = b"\xa5" * CHUNK
    while n > 0:
        conn.sendall(block[:n])
        n -= min(n, CHUNK)


SERVICES = {"echo": echo, "sink": sink, "source": source}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.relay")
    ap.add_argument("--delay", type=float, required=True, help="one-way delay, seconds")
    ap.add_argument("--limit", type=int, default=1 << 20,
                    help="bytes held per direction and connection before reading pauses")
    ap.add_argument("--map", action="append", default=[], help="LISTEN=TARGET")
    ap.add_argument("--service", action="append", default=[], help="NAME=LISTEN")
    a = ap.parse_args(argv)
    sys.setswitchinterval(0.0005)  # a busy thread must not hold a due chunk for 5 ms
    relay = Relay(a.delay, a.limit)
    for m in a.map:
        listen, target = m.split("=", 1)
        relay.serve(_addr(listen), _addr(target))
    for s in a.service:
        name, listen = s.split("=", 1)
        relay.serve(_addr(listen), _serve_forever(SERVICES[name]))
    print(json.dumps({"ready": True}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
