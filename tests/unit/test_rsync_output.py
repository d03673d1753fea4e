"""Reading rsync's output back: itemized lines, and errors pinned on the paths they name."""

from __future__ import annotations

from rrdsync.rsync_output import (
    Attribution,
    PathError,
    parse_errors,
    parse_item,
    remote_protocol,
    rsync_version,
    unescape,
    version_tuple,
)


def test_unescape():
    assert unescape(b"a\\#012b") == b"a\nb"
    assert unescape(b"caf\\#303\\#251") == "café".encode()


def test_itemized_lines():
    items = [parse_item(b"rrdsync:<f.st......:1234:snmp/1/a.rrd"),
             parse_item(b"rrdsync:cd+++++++++:0:snmp/1/"),
             parse_item(b"rrdsync:*deleting:0:snmp/1/old.rrd"),
             parse_item(b"rrdsync:<f+++++++++:10:odd:name\\#012.rrd"),
             parse_item(b"sending incremental file list")]
    assert [(i.kind, i.path, i.nbytes) for i in items if i] == [
        ("sent", "snmp/1/a.rrd", 1234), ("other", "snmp/1", 0),
        ("deleted", "snmp/1/old.rrd", 0), ("sent", "odd:name\n.rrd", 10)]
    assert items[-1] is None


STDERR = """\
rsync: [sender] opendir "/src/lost+found" failed: Permission denied (13)
rsync: [sender] send_files failed to open "/src/c/g.rrd": Permission denied (13)
rsync: [receiver] mkstemp "/srv/rrd/a/b/.f1.rrd.g31lt0" failed: Permission denied (13)
rsync: [generator] recv_generator: mkdir "/srv/rrd/x/y" failed: Permission denied (13)
file has vanished: "/src/gone.rrd"
rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c
"""


def test_errors_name_their_side_and_path():
    errors, other = parse_errors(STDERR)
    assert [(e.side, e.path) for e in errors] == [
        ("source", "/src/lost+found"), ("source", "/src/c/g.rrd"),
        ("destination", "/srv/rrd/a/b/.f1.rrd.g31lt0"), ("destination", "/srv/rrd/x/y")]
    assert other == []  # "file has vanished" is no error: there is nothing to send


def test_attribution_maps_errors_back_to_the_run_s_paths():
    paths = ["a/b/f1.rrd", "a/b/f2.rrd", "c/g.rrd", "x/y/1.rrd", "x/y/2.rrd", "top.rrd",
             "b/f1.rrd"]
    blame = Attribution(paths, "/src")
    errors, _ = parse_errors(STDERR)
    got = [sorted(blame.paths_for(e)) for e in errors]
    assert got == [[], ["c/g.rrd"], ["a/b/f1.rrd"], ["x/y/1.rrd", "x/y/2.rrd"]]


def test_receiver_paths_are_matched_by_their_longest_tail():
    blame = Attribution(["f.rrd", "n/f.rrd"], "/src")
    err = PathError("destination", "/data/n/.f.rrd.AbC123", "")
    assert blame.paths_for(err) == ["n/f.rrd"]
    assert blame.paths_for(PathError("destination", "/data/.f.rrd.AbC123", "")) == ["f.rrd"]
    assert blame.paths_for(PathError("destination", "/data/.", "")) == []


def test_version():
    assert rsync_version("rsync  version 3.2.7  protocol version 31") == "3.2.7"
    assert rsync_version("nothing") is None
    assert version_tuple("3.2.7") == (3, 2, 7) and version_tuple("3.4.1pre1") == (3, 4, 1)
    assert version_tuple("3.1.2") < (3, 1, 3) <= version_tuple("3.10")


def test_remote_protocol_from_debug_output():
    """What an rrsync receiver (which refuses `rsync --version`) tells about its rsync."""
    assert remote_protocol("(Client) Protocol versions: remote=31, negotiated=31\n") == 31
    assert remote_protocol("rsync: connection unexpectedly closed\n") is None
