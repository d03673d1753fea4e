"""Walking the source once for every destination: no symlinks, no lost+found, chunks."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from rrdsync.scan import Passes, walk


def tree(root: Path) -> None:
    for rel in ("b/2.rrd", "b/1.rrd", "a/x/3.rrd", "top.rrd", "a/skip.txt",
                "lost+found/old.rrd", "c/lost+found/kept.rrd"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 10)
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "secret.rrd").write_bytes(b"s")
    os.symlink(outside, root / "ext")
    os.symlink("..", root / "b" / "loop")
    os.symlink(root / "top.rrd", root / "link.rrd")


def rrd(name: str) -> bool:
    return name.endswith(".rrd")


def test_walk_never_follows_links_nor_enters_root_lost_found(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    tree(root)
    got = [rel for rel, _ in walk(str(root), rrd)]
    assert got == ["top.rrd", "a/x/3.rrd", "b/1.rrd", "b/2.rrd", "c/lost+found/kept.rrd"]


def test_an_unreadable_directory_is_reported_not_fatal(tmp_path):
    root = tmp_path / "src"
    (root / "ok").mkdir(parents=True)
    (root / "ok" / "a.rrd").write_text("a")
    seen = []
    got = list(walk(str(root), rrd, lambda rel, e: seen.append(rel)))
    assert [r for r, _ in got] == ["ok/a.rrd"]
    # (a directory this root-run test cannot make unreadable is covered by integration tests)


def run_pass(passes: Passes) -> None:
    stop = threading.Event()
    t = threading.Thread(target=passes.run, args=(stop,))
    t.start()
    while passes.newest() is None or not passes.newest().done:
        time.sleep(0.01)
    stop.set()
    t.join()


def test_every_destination_gets_every_chunk_and_memory_is_released(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    for i in range(25):
        (root / f"f{i:02}.rrd").write_bytes(b"x")
    passes = Passes(str(root), rrd, ["a", "b"], wake=lambda: None, chunk_files=10)
    passes.request("startup")
    run_pass(passes)
    p = passes.newest()
    assert p is not None and p.total == 25 and len(p.chunks) == 3
    got = {"a": [], "b": []}
    for _ in range(3):
        for who in ("a", "b"):
            data = passes.next_chunk(who).data
            got[who] += [x for x in data.split(b"\0") if x]
            passes.advance(who)
    assert got["a"] == got["b"] and len(got["a"]) == 25
    assert passes.complete("a") and passes.finished("a") is p and passes.finished("a") is None
    assert p.chunks[0] is None  # both are past it
    assert passes.progress("b") == (25, 25)


def test_a_fast_destination_takes_several_chunks_per_run(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    for i in range(25):
        (root / f"f{i:02}.rrd").write_bytes(b"x")
    passes = Passes(str(root), rrd, ["a"], wake=lambda: None, chunk_files=10)
    passes.request("startup")
    run_pass(passes)
    assert passes.chunk_ready("a")
    take = passes.next_chunk("a", max_files=20, max_bytes=1000)  # two chunks of 10, not 3
    assert take.chunks == 2 and take.files == 20 and take.size == 20
    assert len([x for x in take.data.split(b"\0") if x]) == 20
    passes.advance("a", take.chunks)
    take = passes.next_chunk("a", max_files=1, max_bytes=1)  # one chunk at least, always
    assert take.chunks == 1 and take.files == 5
    passes.advance("a", take.chunks)
    assert not passes.chunk_ready("a") and passes.finished("a") is not None


def test_a_slow_destination_finishes_its_pass_then_takes_the_newest(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "a.rrd").write_bytes(b"x")
    passes = Passes(str(root), rrd, ["fast", "slow"], wake=lambda: None)
    passes.request("startup")
    run_pass(passes)
    first = passes.newest()
    passes.next_chunk("slow")  # slow starts the first pass and is still in it
    for reason in ("interval", "overflow"):
        passes.request(reason)
        run_pass(passes)
    # fast jumps to the newest pass; slow first finishes the one it is in
    assert passes.next_chunk("fast").pass_.reason == "overflow"
    assert passes.next_chunk("slow").pass_ is first
    passes.advance("slow")
    assert passes.finished("slow") is first
    assert passes.next_chunk("slow").pass_.reason == "overflow"


def test_empty_tree_still_reaches_the_destination(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    passes = Passes(str(root), rrd, ["a"], wake=lambda: None)
    passes.request("startup")
    run_pass(passes)
    assert passes.next_chunk("a").data == b""


def test_rsync_gets_whole_directories_where_every_file_in_them_is_ours(tmp_path):
    """A chunk hands rsync ``dir/.`` (sent with ``--dirs``) for a directory whose regular
    files are all included and all in this chunk; anything else file by file: the root
    (its lost+found must not be created at the destination), a directory with an excluded
    file (rsync would send it), a directory split across chunks, a one-file directory."""
    root = tmp_path / "src"
    for rel in ("top.rrd", "whole/1.rrd", "whole/2.rrd", "whole/sub/3.rrd", "mixed/4.rrd",
                "mixed/5.rrd", "mixed/notes.txt", "one/6.rrd",
                *(f"big/{i:02}.rrd" for i in range(12))):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    os.symlink(root / "top.rrd", root / "whole" / "link.rrd")  # rsync skips links anyway
    passes = Passes(str(root), rrd, ["a"], wake=lambda: None, chunk_files=10)
    passes.request("startup")
    run_pass(passes)
    files: list[bytes] = []
    send: list[bytes] = []
    while passes.chunk_ready("a"):
        take = passes.next_chunk("a")
        files += [x for x in take.data.split(b"\0") if x]
        send += [x for x in take.send.split(b"\0") if x]
        passes.advance("a")
    assert len(files) == 19 and b"whole/1.rrd" in files  # progress and settling: files
    assert b"whole/." in send and b"whole/1.rrd" not in send
    assert b"whole/sub/3.rrd" in send  # a one-file directory: listed as the file
    assert b"top.rrd" in send and b"./." not in send and b"." not in send
    assert b"mixed/4.rrd" in send and b"mixed/." not in send
    assert b"one/6.rrd" in send and b"one/." not in send
    assert b"big/." not in send and send.count(b"big/00.rrd") == 1  # 12 > a chunk of 10
    assert len([s for s in send if s.startswith(b"big/")]) == 12
