"""RRDSYNC_DEST: one or several destinations, each form, each mistake named."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from rrdsync.config import ConfigError, Destination, load_sidecar


def dests(raw: str, **env: str) -> tuple[Destination, ...]:
    return load_sidecar({"RRDSYNC_DEST": raw, **env}, require_paths=False).dests


GOOD = [
    # entry, (host, user, port, path), label, rsync_target, ssh_host
    ("u@host:/srv/rrd", ("host", "u", 22, "/srv/rrd"), "host:/srv/rrd", "u@host:/srv/rrd/",
     "u@host"),
    ("host.example.org:/srv/rrd/", ("host.example.org", None, 22, "/srv/rrd/"),
     "host.example.org:/srv/rrd/", "host.example.org:/srv/rrd/", "host.example.org"),
    ("rrdsync@10.0.0.5:/", ("10.0.0.5", "rrdsync", 22, "/"), "10.0.0.5:/", "rrdsync@10.0.0.5:/",
     "rrdsync@10.0.0.5"),
    ("u@[fd00::5]:/srv", ("fd00::5", "u", 22, "/srv"), "[fd00::5]:/srv", "u@[fd00::5]:/srv/",
     "u@fd00::5"),
    ("[::1]:/srv", ("::1", None, 22, "/srv"), "[::1]:/srv", "[::1]:/srv/", "::1"),
    ("ssh://u@host:2222/srv/rrd", ("host", "u", 2222, "/srv/rrd"), "ssh://host:2222/srv/rrd",
     "u@host:/srv/rrd/", "u@host"),
    ("ssh://host/srv", ("host", None, 22, "/srv"), "ssh://host/srv", "host:/srv/", "host"),
    ("ssh://u@[fd00::5]:2222/srv", ("fd00::5", "u", 2222, "/srv"),
     "ssh://[fd00::5]:2222/srv", "u@[fd00::5]:/srv/", "u@fd00::5"),
    ("ssh://[fd00::5]/srv", ("fd00::5", None, 22, "/srv"), "ssh://[fd00::5]/srv",
     "[fd00::5]:/srv/", "fd00::5"),
    ("/mnt/nfs/rrd", (None, None, None, "/mnt/nfs/rrd"), "/mnt/nfs/rrd", "/mnt/nfs/rrd/", None),
    ("/", (None, None, None, "/"), "/", "/", None),
]


@pytest.mark.parametrize("entry,parts,label,target,ssh_host", GOOD)
def test_forms(entry, parts, label, target, ssh_host):
    (d,) = dests(f"  {entry} ")
    assert (d.host, d.user, d.port, d.path) == parts
    assert d.raw == entry and d.label == label and str(d) == label
    assert d.rsync_target() == target and d.is_remote == (ssh_host is not None)
    if ssh_host:
        assert d.ssh_host() == ssh_host


def test_ssh_port_applies_to_entries_without_their_own():
    a, b, c = dests("a:/x,ssh://b/x,ssh://c:22/x", RRDSYNC_SSH_PORT="2222")
    assert (a.port, b.port, c.port) == (2222, 2222, 22)


def test_several_keep_order_and_have_unique_safe_keys():
    raw = ("u@host:/srv/rrd, v@host:/srv/rrd2,ssh://host:2222/srv/rrd,/srv/rrd,"
           "[fd00::5]:/srv/rrd," + "h:/" + "x" * 80)
    ds = dests(raw)
    assert [d.raw for d in ds] == [e.strip() for e in raw.split(",")]
    keys = [d.key for d in ds]
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,40}-[0-9a-f]{8}", key), key
        assert not key.startswith((".", "-"))
    assert ds[0].key == dests("other@host:/srv/rrd")[0].key  # the user is not part of it
    assert ds[0].key == "host_srv_rrd-" + ds[0].key.rsplit("-", 1)[1]


def test_destination_from_parts():
    d = Destination(path="/x", host="fd00::5", user="u", port=22)
    assert d.raw == "u@[fd00::5]:/x" and d.label == "[fd00::5]:/x"
    with pytest.raises(ValueError):
        Destination(path="/x").ssh_host()


BAD = [
    ("", "empty"), ("a:/x,,b:/y", "entry 2 ''"), ("a:/x,", "entry 2 ''"),
    (",a:/x", "entry 1 ''"), ("host:relative/path", "absolute"), ("relative", "absolute"),
    ("a:/x,b:rel", "entry 2 'b:rel'"), ("-oProxyCommand=x:/p", "not a host"),
    ("u@-h:/p", "not a host"), ("fd00::5:/srv", "brackets"), ("u@fd00::5:/srv", "brackets"),
    ("[fd00::zz]:/srv", "IPv6"), ("[10.0.0.1]:/srv", "IPv6"), ("host::module", "daemon"),
    ("rsync://host/module", "ssh://"), ("ssh://host:0/x", "bad port"),
    ("ssh://host:65536/x", "bad port"), ("ssh://host:/x", "bad port"),
    ("ssh://host:22a/x", "bad port"), ("ssh://host", "no path"), ("ssh:///x", "ssh://"),
    ("ssh://u@/x", "ssh://"), ("ssh://fd00::5:22/x", "ssh://"), ("a b:/x", "not a host"),
    ("h:/x\ny", "control"), ("u@v@h:/x", "not a destination"),
    # duplicates: same host, port and path, whatever the user
    ("u@h:/x,v@h:/x", "entry 2 'v@h:/x' is the same destination as entry 1 'u@h:/x'"),
    ("h:/x,H:/x/", "entry 2"), ("h:/x,ssh://h:22/x", "entry 2"), ("/a,/a/", "entry 2"),
    ("/a,/b/../a", "entry 2"), ("[fd00::5]:/x,ssh://[fd00:0::5]:22/x", "entry 2"),
]


@pytest.mark.parametrize("raw,why", BAD)
def test_bad_entries_name_the_variable_and_the_entry(raw, why):
    with pytest.raises(ConfigError) as e:
        dests(raw)
    text = str(e.value)
    assert e.value.name == "RRDSYNC_DEST" and text.startswith("RRDSYNC_DEST=")
    assert why in text and "\n" not in text


def test_same_host_other_port_is_another_destination():
    assert len(dests("h:/x,ssh://h:2222/x,ssh://h:2223/x")) == 3


@pytest.fixture
def argv_printer(tmp_path: Path) -> Path:
    """An ``rsync -e`` program that records its argv (what rsync passes to ssh)."""
    script = tmp_path / "fake-ssh"
    log = tmp_path / "argv"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\nexit 1\n')
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("entry,host", [("u@[fd00::5]:/srv", "fd00::5"),
                                        ("ssh://u@[::1]:2222/srv", "::1"),
                                        ("u@host:/srv", "host")])
def test_real_rsync_reads_the_target_as_ssh_not_daemon(tmp_path, argv_printer, entry, host):
    """The bracketed target makes rsync call the remote shell with the bare address and the
    user as ``-l``; unbracketed, ``fd00::5:/srv`` would be rsync daemon syntax."""
    (d,) = dests(entry)
    src = tmp_path / "f"
    src.write_text("x")
    subprocess.run(["rsync", "-e", str(argv_printer), str(src), d.rsync_target()],
                   capture_output=True, timeout=30, env={**os.environ, "LC_ALL": "C"})
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[:3] == ["-l", "u", host]
    assert argv[3] == "rsync" and "--server" in argv and argv[-1] == "/srv/"
